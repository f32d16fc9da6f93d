"""One physical dock is one session, found by id: left docked read-only after confirmation, a
camera is not taken in again, and why it was not wiped is recorded once; an unplug ends the
handover whatever the source's key, also for a volume the daemon found mounted by device. A
camera docked read-only with every file already confirmed gets one reason on its session, not a
refusal per file.

The `fake` source drives the daemon. The read-only camera is a FAT image mounted read-only with
fusefat; the externally mounted one is an exFAT image on a loop device mounted with exfat-fuse
(fuseblk, so mountinfo carries the loop device's number, as for a kernel mount): its events name
only the devnode, as the udev source's do, and its key is not a path the session knows.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.devices.fake import write_event
from scripts.simulator.cameras import CameraSpec, build_image
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera, wait_until
from tests.support.evidence import rows
from tests.support.volumes import mount_exfat, mount_fat

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

LEFT_DOCKED_S = 60


def _config(spool: Path) -> str:
    # The shipped wipe policy (after_confirm) and sink (a directory), as installed.
    return (
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
    )


def _unplug(spool: Path, serial: str) -> None:
    write_event(spool, f"undock-{serial}", action="removed", key=f"usb-{serial}")


def _sessions(station: Station, serial: str) -> list[dict[str, object]]:
    sql = "SELECT * FROM sessions WHERE device_serial=? ORDER BY id"
    return rows(station.data_dir, sql, (serial,))


def _all_confirmed(station: Station, serial: str, count: int) -> bool:
    sql = "SELECT state FROM files WHERE device_serial=?"
    states = [r["state"] for r in rows(station.data_dir, sql, (serial,))]
    return len(states) == count and set(states) == {"confirmed"}


def test_a_read_only_camera_left_docked_is_one_session_with_one_reason(
    station: Station, tmp_path: Path
) -> None:
    spec = CameraSpec(serial="RO00001", days=1, files_per_day=3, file_size=64 << 10)
    manifest = build_image(spec, tmp_path / "cam.img", "fat32")
    spool, point = tmp_path / "spool", tmp_path / "cam"
    point.mkdir()
    station.configure(_config(spool))
    with mount_fat(tmp_path / "cam.img", point, readonly=True):
        daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
        try:
            daemon.wait_event("daemon.started")
            dock_camera(spool, "RO00001", point)
            daemon.wait_event("device.taken_in", timeout=60)
            wait_until(
                lambda: _all_confirmed(station, "RO00001", len(manifest.entries)), 60, "confirmed"
            )
            blocked = daemon.wait_event("device.wipe_impossible", timeout=30)
            time.sleep(LEFT_DOCKED_S)
            (session,) = _sessions(station, "RO00001")
            assert session["id"] == blocked["session_id"]
            assert session["undocked_at"] is None  # still docked
            _unplug(spool, "RO00001")
            daemon.wait_event("device.removed")
            wait_until(
                lambda: _sessions(station, "RO00001")[0]["undocked_at"] is not None, 10, "undock"
            )
        finally:
            assert daemon.stop() == 0
        events = daemon.events()
    names = [e.get("event") for e in events]
    assert names.count("device.taken_in") == 1
    assert names.count("device.wipe_impossible") == 1
    assert "device.rechecked" not in names
    assert "file.wipe_refused" not in names
    (session,) = _sessions(station, "RO00001")
    assert session["outcome"] == "complete"
    assert session["wipe_state"] == "not wiped"
    assert "mounted read-only" in str(session["wipe_detail"])
    assert session["docked_at"] and session["undocked_at"]
    assert station.run("verify").returncode == 0


def test_an_unplug_ends_the_session_of_a_volume_found_by_its_device(
    station: Station, tmp_path: Path
) -> None:
    spec = CameraSpec(serial="EXT0001", days=1, files_per_day=2, file_size=64 << 10)
    build_image(spec, tmp_path / "cam.img", "exfat")
    spool, point = tmp_path / "spool", tmp_path / "cam"
    point.mkdir()
    station.configure(
        _config(spool).replace(
            "require_enrollment = false\n", "require_enrollment = false\nmount_wait_s = 10\n"
        )
    )
    with mount_exfat(tmp_path / "cam.img", point, readonly=True) as camera:
        assert camera.loop_device is not None
        daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
        try:
            daemon.wait_event("daemon.started")
            # As from udev: the devnode, no mount point; the key is not a path.
            dock_camera(spool, "EXT0001", fs_type="exfat", devnode=camera.loop_device)
            taken = daemon.wait_event("device.taken_in", timeout=60)
            (session,) = _sessions(station, "EXT0001")
            assert session["id"] == taken["session_id"]
            assert session["source"] == str(point)  # found by device number
            assert session["undocked_at"] is None
            _unplug(spool, "EXT0001")
            daemon.wait_event("device.removed")
            wait_until(
                lambda: _sessions(station, "EXT0001")[0]["undocked_at"] is not None, 10, "undock"
            )
        finally:
            assert daemon.stop() == 0


def test_a_confirmed_camera_docked_again_read_only_gets_one_reason_not_per_file_refusals(
    station: Station, tmp_path: Path
) -> None:
    spec = CameraSpec(serial="RO00002", days=1, files_per_day=3, file_size=64 << 10)
    # exFAT: fusefat reports no size (statvfs f_blocks 0), so no wipe is ever allowed on it.
    manifest = build_image(spec, tmp_path / "cam.img", "exfat")
    spool, point = tmp_path / "spool", tmp_path / "cam"
    point.mkdir()
    station.configure(_config(spool))
    with mount_exfat(tmp_path / "cam.img", point, readonly=True):
        daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
        try:
            daemon.wait_event("daemon.started")
            dock_camera(spool, "RO00002", point, fs_type="exfat")
            daemon.wait_event("device.taken_in", timeout=60)
            wait_until(
                lambda: _all_confirmed(station, "RO00002", len(manifest.entries)), 60, "confirmed"
            )
            daemon.wait_event("device.wipe_impossible", timeout=30)
            _unplug(spool, "RO00002")
            wait_until(
                lambda: _sessions(station, "RO00002")[0]["undocked_at"] is not None, 10, "undock"
            )
            # Docked again, still read-only: every file is confirmed at this dock's first pass,
            # so the wipe is allowed but cannot happen as the camera is mounted.
            dock_camera(spool, "RO00002", point, name="RO00002-again", fs_type="exfat")
            wait_until(lambda: len(_sessions(station, "RO00002")) == 2, 60, "second dock")
            second = _sessions(station, "RO00002")[1]
            daemon.wait_event("device.wipe_impossible", timeout=30, session_id=second["id"])
            _unplug(spool, "RO00002-again")
            wait_until(
                lambda: _sessions(station, "RO00002")[1]["undocked_at"] is not None, 10, "undock"
            )
        finally:
            assert daemon.stop() == 0
        events = daemon.events()
    names = [e.get("event") for e in events]
    assert "file.wipe_refused" not in names
    assert names.count("device.taken_in") == 2  # one pass per dock
    assert names.count("device.wipe_impossible") == 2  # one reason per dock
    first, second = _sessions(station, "RO00002")
    for session in (first, second):
        assert session["outcome"] == "complete"
        assert session["wipe_state"] == "not wiped"
        assert "mounted read-only" in str(session["wipe_detail"])
        assert session["docked_at"] and session["undocked_at"]
    assert second["files_found"] == len(manifest.entries)
    assert second["files_new"] == 0
    assert rows(station.data_dir, "SELECT * FROM faults WHERE source='wipe'") == []
    assert station.run("verify").returncode == 0
