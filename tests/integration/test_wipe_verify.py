"""Verify, then delete: a camera file is wiped only when its bytes, read again, are the sealed ones.

Real FAT32 images through fusefat and exFAT through exfat-fuse, written read-write. fusefat
reports no volume size, so the station never wipes through it (the used space cannot be
accounted for): the wipes themselves are proven on exFAT. A recording rewritten with other bytes of
the same size and the same mtime (a hostile device, a name reused after a clock reset, FAT's
2 s mtimes) must be taken in as new evidence and never wiped before those bytes are held.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.camera import profile, volume
from agent.core.model import ProblemKind
from agent.ingest.session import Importer
from agent.ingest.wipe import CONTENT_CHANGED
from scripts.simulator.cameras import CameraSpec, ImageFormat, build_image
from tests.conftest import Station
from tests.support.docking import DockingStation
from tests.support.evidence import rows
from tests.support.volumes import Mounted, mount_exfat, mount_fat, sha256_file

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

SPEC = {"days": 1, "files_per_day": 4, "file_size": 48 * 1024, "other_files": 0}


@contextlib.contextmanager
def _camera(tmp_path: Path, serial: str, fs: ImageFormat) -> Iterator[Mounted]:
    """A camera image of `fs`, mounted read-write."""
    image = tmp_path / "cam.img"
    build_image(CameraSpec(serial=serial, **SPEC), image, fs)  # type: ignore[arg-type]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount = mount_fat if fs == "fat32" else mount_exfat
    with mount(image, mnt, readonly=False) as mounted:
        yield mounted


def _recordings(mount: Path) -> list[Path]:
    return sorted(p for p in (mount / "RECORD").rglob("*") if p.is_file())


def _rewrite_same_size_and_mtime(path: Path) -> bytes:
    """Other bytes of the same length in place, and the mtime put back to the nanosecond."""
    st = os.stat(path)
    new = bytes(b ^ 0x5A for b in path.read_bytes())
    with open(path, "r+b") as f:
        f.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    return new


def _versions(data_dir: Path, serial: str, rel: bytes) -> list[dict[str, Any]]:
    return rows(
        data_dir,
        "SELECT * FROM files WHERE device_serial=? AND camera_path=? ORDER BY id",
        (serial, rel),
    )


def _sealed_record(data_dir: Path, file_id: int) -> dict[str, Any]:
    (record,) = rows(
        data_dir, "SELECT body FROM records WHERE kind='file' AND file_id=?", (file_id,)
    )
    body: dict[str, Any] = json.loads(record["body"])
    return body


@pytest.mark.parametrize("fs", ["fat32", "exfat"])
def test_bytes_rewritten_under_a_held_identity_are_taken_in_before_the_file_is_wiped(
    station: Station, tmp_path: Path, fs: ImageFormat
) -> None:
    with _camera(tmp_path, "REWRITE1", fs) as mounted:
        first = station.json("import", str(mounted.path))
        assert first["problems"] == [] and first["files_sealed"] >= 4
        target = _recordings(mounted.path)[1]
        rel = target.relative_to(mounted.path).as_posix().encode()
        original = target.read_bytes()
        (held,) = _versions(station.data_dir, "REWRITE1", rel)
        new = _rewrite_same_size_and_mtime(target)
        assert sha256_file(target) != held["sha256"]

        # The same path, size and mtime, other bytes: after_seal now wipes what is held.
        station.configure(station.config_text.replace('"never"', '"after_seal"'))
        second = station.json("import", str(mounted.path))
        assert second["files_sealed"] == 1, second
        if fs == "exfat":
            assert second["wipe"]["state"] == "wiped", second["wipe"]
            assert _recordings(mounted.path) == []
        else:
            assert second["wipe"]["state"] == "not wiped", second["wipe"]
            assert target.read_bytes() == new
            # Docked again: both contents are held now, nothing is taken twice.
            third = station.json("import", str(mounted.path))
            assert third["files_sealed"] == 0 and third["problems"] == [], third
            assert third["files_already_held"] == third["files_found"]

    old, version = _versions(station.data_dir, "REWRITE1", rel)
    assert old["id"] == held["id"] and old["sha256"] == held["sha256"]
    assert sha256_file(station.staging / old["staged_path"]) == held["sha256"]
    assert (station.staging / old["staged_path"]).read_bytes() == original
    # The rewritten bytes: a row of their own, sealed in a custody record with their hash,
    # and their staged copy holds exactly them. Only then was the camera file removed.
    assert version["state"] == "sealed"
    assert (version["wiped_at"] is not None) == (fs == "exfat")
    assert old["wiped_at"] is None
    assert (station.staging / version["staged_path"]).read_bytes() == new
    assert _sealed_record(station.data_dir, version["id"])["sha256"] == sha256_file(
        station.staging / version["staged_path"]
    )
    assert version["sha256"] != old["sha256"]
    assert station.run("verify").returncode == 0
    # Rebuilt from the signed sidecars, the station still holds both contents of that path.
    rebuilt = station.run("rebuild", "--force")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert [v["sha256"] for v in _versions(station.data_dir, "REWRITE1", rel)] == [
        old["sha256"],
        version["sha256"],
    ]


def test_bytes_rewritten_between_seal_and_wipe_are_not_wiped_but_taken_in(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n'
        '[ingest]\nwipe_policy = "after_seal"\n[devices]\nrequire_enrollment = false\n'
    )
    data_dir = tmp_path / "data"
    dock = DockingStation.open(data_dir, config)
    rewritten: dict[str, bytes] = {}
    try:
        with _camera(tmp_path, "REWRITE2", "exfat") as mounted:
            recordings = _recordings(mounted.path)
            target = recordings[2]
            rel = target.relative_to(mounted.path).as_posix().encode()
            original = target.read_bytes()

            def writable(on: bool) -> None:
                # Called once every file is sealed and just before the wipe pass: the camera's
                # bytes change under their sealed identity at that moment.
                if on:
                    rewritten["bytes"] = _rewrite_same_size_and_mtime(target)

            importer = Importer(dock.config, dock.store, dock.sealer, profile.load("generic"))
            summary = importer.import_volume(str(mounted.path), make_writable=writable)
            new = rewritten["bytes"]
            # Not wiped, and why; every other recording was proven and wiped.
            assert summary.wipe["wiped"] == len(recordings) - 1, summary.wipe
            (refusal,) = summary.wipe["refused"]
            assert refusal["kind"] == ProblemKind.CHANGED_ON_CAMERA.value
            assert refusal["reason"] == CONTENT_CHANGED
            assert target.read_bytes() == new
            assert _recordings(mounted.path) == [target]

            # Taken in at this same dock: a row of its own, sealed with the new bytes' hash.
            old, version = _versions(data_dir, "REWRITE2", rel)
            assert old["wiped_at"] is None and old["wipe_started_at"] is None
            assert (data_dir / "staging" / old["staged_path"]).read_bytes() == original
            assert version["state"] == "sealed" and version["wiped_at"] is None
            assert (data_dir / "staging" / version["staged_path"]).read_bytes() == new
            assert _sealed_record(data_dir, version["id"])["sha256"] == version["sha256"]
            assert version["sha256"] == sha256_file(target)
            assert summary.files_sealed == summary.files_found + 1

            # The next pass of this dock (as the daemon's, once it is rechecked) proves the new
            # bytes held and only then wipes them; the first content's row is no file of it.
            again = Importer(dock.config, dock.store, dock.sealer, profile.load("generic"))
            later = again.import_volume(
                str(mounted.path), make_writable=lambda on: None, continues=summary.session_id
            )
            assert later.files_sealed == 0
            assert later.wipe == {"state": "wiped", "wiped": 1, "refused": []}
            assert _recordings(mounted.path) == []
        assert _versions(data_dir, "REWRITE2", rel)[1]["wiped_at"] is not None
    finally:
        dock.close()


@pytest.mark.parametrize("fs", ["fat32", "exfat"])
def test_the_unlink_removes_only_the_file_that_was_hashed(tmp_path: Path, fs: ImageFormat) -> None:
    with _camera(tmp_path, "SWAPPED1", fs) as mounted:
        root = os.open(mounted.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            first, second = _recordings(mounted.path)[:2]
            rel = first.relative_to(mounted.path).as_posix().encode()
            fd = os.open(first, os.O_RDONLY)
            held = os.fstat(fd)
            # Another file put under the name after it was hashed (same size is not enough).
            swapped = first.with_name("SWAP.TMP")
            swapped.write_bytes(first.read_bytes())
            os.utime(swapped, ns=(held.st_atime_ns, held.st_mtime_ns))
            os.replace(swapped, first)
            with pytest.raises(volume.NotTheFileHeldError):
                volume.unlink(root, rel, held=os.fstat(fd))
            os.close(fd)
            assert first.exists()
            # The file hashed, its descriptor still open: the same inode through the name.
            rel2 = second.relative_to(mounted.path).as_posix().encode()
            fd = os.open(second, os.O_RDONLY)
            volume.unlink(root, rel2, held=os.fstat(fd))
            os.close(fd)
            assert not second.exists()
        finally:
            os.close(root)
