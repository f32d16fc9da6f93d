"""The station-signed binding (DOCKAGENT.BND) on real FAT32 and exFAT volumes through FUSE.

With `[devices] bind_cameras = true`, an enrolled camera is bound at its first dock on a writable
volume, and from then on a dock of that serial is refused, before any evidence is read, when its
volume shows no binding, another camera's, or a forged one; the refusal is recorded, and
enrolling the serial again is how it is bound anew. A verified binding is not evidence: it is
not copied, never wiped, and does not stop a wipe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts.simulator.cameras import CameraSpec, build_image, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.volumes import mount_exfat, mount_fat, sha256_tree

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

BINDING = "DOCKAGENT.BND"
CONFIG = (
    'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "after_seal"\n'
    "[devices]\nrequire_enrollment = true\nbind_cameras = true\n"
)


def _spec(serial: str) -> CameraSpec:
    return CameraSpec(serial=serial, days=1, files_per_day=3, file_size=16 << 10)


def _import(station: Station, path: Path) -> tuple[int, dict[str, Any], str]:
    proc = station.run("import", str(path), "--json")
    return proc.returncode, json.loads(proc.stdout) if proc.returncode == 0 else {}, proc.stderr


def _files_of(station: Station, serial: str) -> list[dict[str, Any]]:
    return rows(station.data_dir, "SELECT * FROM files WHERE device_serial=?", (serial,))


def _bind_fat_camera(station: Station, tmp_path: Path, serial: str) -> bytes:
    """Enrol `serial` and dock its FAT32 volume writable once; returns its binding's bytes."""
    assert station.run("devices", "enroll", serial).returncode == 0
    image = tmp_path / f"{serial}.img"
    build_image(_spec(serial), image, "fat32")
    point = tmp_path / serial
    point.mkdir()
    with mount_fat(image, point, readonly=False):
        status, summary, err = _import(station, point)
        assert status == 0, err
        assert summary["identity_check"].endswith("binding written")
        return (point / BINDING).read_bytes()


def test_a_camera_is_bound_at_its_first_dock_and_verified_at_the_next(
    station: Station, tmp_path: Path
) -> None:
    station.configure(CONFIG)
    assert station.run("devices", "enroll", "CAMBIND1").returncode == 0
    image = tmp_path / "cam.img"
    build_image(_spec("CAMBIND1"), image, "exfat")
    point = tmp_path / "mnt"
    point.mkdir()
    with mount_exfat(image, point, readonly=False):
        status, summary, err = _import(station, point)
        assert status == 0, err
        assert summary["identity_check"].endswith("binding written")
        lines = (point / BINDING).read_text("ascii").splitlines()
        assert not (point / "DOCKAGENT.BN~").exists()  # written aside, then renamed into place
        assert lines[:3] == ["dockagent-binding 1", "station=T", "serial=CAMBIND1"]
    (device,) = station.json("devices", "enrolled")["enrolled"]
    assert device["bound_at"]
    with mount_exfat(image, point, readonly=False):
        left_before = sha256_tree(point)
        status, summary, err = _import(station, point)
        assert status == 0, err
        assert f"binding of {device['bound_at']} verified" in summary["identity_check"]
        # Accounted for, not evidence: no row, no problem, the wipe not held up, the file kept.
        assert summary["problems"] == [] and summary["wipe"]["state"] == "wiped"
        assert sha256_tree(point)[BINDING.encode()] == left_before[BINDING.encode()]
    names = {r["camera_name"] for r in _files_of(station, "CAMBIND1")}
    assert BINDING not in names and "DEVICE.INF" in names
    assert station.run("verify").returncode == 0


def test_a_binding_copied_onto_another_cameras_volume_is_refused(
    station: Station, tmp_path: Path
) -> None:
    station.configure(CONFIG)
    copied = _bind_fat_camera(station, tmp_path, "CAMA01")
    assert station.run("devices", "enroll", "CAMB01").returncode == 0
    image = tmp_path / "b.img"
    build_image(_spec("CAMB01"), image, "fat32")
    point = tmp_path / "b"
    point.mkdir()
    with mount_fat(image, point, readonly=False):
        (point / BINDING).write_bytes(copied)
        status, _summary, err = _import(station, point)
        assert status == 77, err
        assert "copied: it binds camera CAMA01, not CAMB01" in err
        assert (point / "RECORD").is_dir()  # nothing was wiped
    assert _files_of(station, "CAMB01") == []
    assert rows(station.data_dir, "SELECT * FROM sessions WHERE device_serial='CAMB01'") == []
    refusal = station.json("devices", "--refused")["refused"][0]
    assert refusal["source"] == "import" and "copied" in refusal["reason"]


def test_a_bound_camera_is_refused_without_its_binding_or_with_a_forged_one(
    station: Station, tmp_path: Path
) -> None:
    station.configure(CONFIG)
    genuine = _bind_fat_camera(station, tmp_path, "CAMC01")
    sessions = len(rows(station.data_dir, "SELECT * FROM sessions"))
    forged = genuine.replace(b"hmac=", b"hmac=0", 1)[:-2] + b"\n"  # one digit changed
    other_station = genuine.replace(b"station=T\n", b"station=T2\n")
    cases: dict[str, bytes | None] = {
        "missing, although this station bound CAMC01": None,
        "forged": forged,
        "written by station T2, not this one": other_station,
        "cannot be read": b"x" * 4096,  # over the bound: not read whole
        "malformed (it is not ASCII)": b"\xff" * 64,
    }
    for index, (reason, content) in enumerate(cases.items()):
        volume = tmp_path / f"other{index}"
        write_camera(_spec("CAMC01"), volume)  # a volume claiming to be the bound camera
        if content is not None:
            (volume / BINDING).write_bytes(content)
        status, _summary, err = _import(station, volume)
        assert status == 77, (reason, err)
        assert f"binding {BINDING}: {reason}" in err
        assert (volume / "RECORD").is_dir()
    assert len(rows(station.data_dir, "SELECT * FROM sessions")) == sessions
    refused = station.json("devices", "--refused")["refused"]
    assert len(refused) == len(cases)
    # Enrolling it again (an audited action) is how a reformatted camera is taken back.
    assert station.run("devices", "enroll", "CAMC01").returncode == 0
    reformatted = tmp_path / "reformatted"
    write_camera(_spec("CAMC01"), reformatted)
    status, summary, err = _import(station, reformatted)
    assert status == 0, err
    assert summary["identity_check"].endswith("binding written")
    assert (reformatted / BINDING).read_bytes() != genuine


def test_a_read_only_camera_is_not_bound_and_not_yet_required_to_be(
    station: Station, tmp_path: Path
) -> None:
    station.configure(CONFIG)
    assert station.run("devices", "enroll", "CAMRO1").returncode == 0
    image = tmp_path / "ro.img"
    build_image(_spec("CAMRO1"), image, "exfat")
    point = tmp_path / "ro"
    point.mkdir()
    with mount_exfat(image, point, readonly=True):
        status, summary, err = _import(station, point)
        assert status == 0, err
        assert "binding not written" in summary["identity_check"]
        assert not (point / BINDING).exists()
    (device,) = station.json("devices", "enrolled")["enrolled"]
    assert device["bound_at"] is None


def test_a_rebuilt_store_still_requires_the_binding(station: Station, tmp_path: Path) -> None:
    station.configure(CONFIG)
    assert station.run("devices", "enroll", "CAMR01").returncode == 0
    first = tmp_path / "first"
    write_camera(_spec("CAMR01"), first)
    status, _summary, err = _import(station, first)
    assert status == 0, err
    (bound,) = station.json("devices", "enrolled")["enrolled"]
    (station.data_dir / "dockagent.db").write_bytes(b"")  # the database lost
    rebuilt = station.run("rebuild", "--json")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    (device,) = station.json("devices", "enrolled")["enrolled"]
    assert device["bound_at"] == bound["bound_at"]  # replayed from the signed record
    lookalike = tmp_path / "lookalike"
    write_camera(_spec("CAMR01"), lookalike)
    status, _summary, err = _import(station, lookalike)
    assert status == 77 and "missing, although this station bound CAMR01" in err
