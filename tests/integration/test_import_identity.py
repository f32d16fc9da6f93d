"""`dockagent import PATH` checks the camera's USB serial against DEVICE.INF, as the daemon does.

The camera is a real exFAT image on a loop device mounted by exfat-fuse (fuseblk: the mount's
device number is the loop device's); udev, under umockdev, describes that block device as the
partition of a USB camera whose serial the test chooses (tests/support/umockdev_station.py).
`dockagent import MOUNT` runs inside that testbed, as a technician's would on a station.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, build_image, write_camera
from tests.conftest import Station
from tests.support.cli import run_cli
from tests.support.evidence import rows
from tests.support.umockdev_station import description, in_testbed, umockdev_station_missing
from tests.support.volumes import mount_exfat, sha256_tree

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

ENFORCING = (
    'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
    "[devices]\nrequire_enrollment = true\n"
)


@pytest.fixture(autouse=True)
def _umockdev() -> None:
    missing = umockdev_station_missing()
    if missing:
        pytest.fail("needs " + "; ".join(missing), pytrace=False)


def _image(tmp_path: Path, info_serial: str) -> Path:
    spec = CameraSpec(serial=info_serial, days=1, files_per_day=3, file_size=16 << 10)
    image = tmp_path / f"{info_serial}.img"
    build_image(spec, image, "exfat")
    return image


def _import_as_usb(
    station: Station, tmp_path: Path, usb_serial: str, info_serial: str
) -> tuple[int, str, str, dict[bytes, str]]:
    """`dockagent import --json` of an exFAT volume whose DEVICE.INF names `info_serial`, on
    a USB device reporting `usb_serial`; returns exit status, stdout, stderr and the hashes
    of the volume's files."""
    image = _image(tmp_path, info_serial)
    point = tmp_path / "media" / usb_serial
    point.mkdir(parents=True)
    with mount_exfat(image, point) as camera:
        assert camera.loop_device is not None
        text = description(usb_serial, camera.loop_device)
        prefix = in_testbed(text, tmp_path / "udev")
        proc = run_cli(
            ("import", str(point), "--json"),
            env=station.env(),
            log=station.cli_log,
            prefix=prefix,
        )
        return proc.returncode, proc.stdout, proc.stderr, sha256_tree(point)


def test_a_volume_whose_device_inf_names_another_enrolled_camera_is_refused(
    station: Station, tmp_path: Path
) -> None:
    station.configure(ENFORCING)
    assert station.run("devices", "enroll", "CAMB01").returncode == 0
    status, _out, err, _files = _import_as_usb(station, tmp_path, "CAMA01", "CAMB01")
    assert status == 77, err
    assert "DEVICE.INF serial CAMB01 does not match the USB serial CAMA01" in err
    assert rows(station.data_dir, "SELECT * FROM files") == []
    assert rows(station.data_dir, "SELECT * FROM sessions") == []
    assert not [p for p in station.staging.rglob("*") if p.is_file() and ".mp4" in p.name.lower()]
    (refusal,) = station.json("devices", "--refused")["refused"]
    assert refusal["source"] == "import"
    assert "CAMA01" in refusal["identity"] and "does not match" in refusal["reason"]


def test_a_volume_on_the_usb_device_its_device_inf_names_is_imported(
    station: Station, tmp_path: Path
) -> None:
    station.configure(ENFORCING)
    assert station.run("devices", "enroll", "CAMB02").returncode == 0
    status, out, err, files = _import_as_usb(station, tmp_path, "CAMB02", "CAMB02")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["usb_identity"] == "CAMB02" and summary["files_sealed"] == len(files)
    sealed = rows(station.data_dir, "SELECT camera_path, sha256 FROM files")
    assert {bytes(r["camera_path"]): r["sha256"] for r in sealed} == files
    (session,) = rows(station.data_dir, "SELECT * FROM sessions")
    assert session["usb_serial"] == "CAMB02"
    assert session["identity_check"] == "USB serial CAMB02 matches DEVICE.INF"


def test_a_plain_directory_is_imported_and_recorded_as_having_no_usb_identity(
    station: Station, tmp_path: Path
) -> None:
    station.configure(ENFORCING)
    cam = tmp_path / "cam"
    write_camera(CameraSpec(serial="CAMDIR1", days=1, files_per_day=1, file_size=4096), cam)
    proc = station.run("import", str(cam), "--enroll")
    assert proc.returncode == 0, proc.stderr
    assert "no USB identity" in proc.stdout and "technician's word" in proc.stdout
    (session,) = rows(station.data_dir, "SELECT * FROM sessions")
    assert session["usb_serial"] == "" and session["identity_check"].startswith("no USB identity")
