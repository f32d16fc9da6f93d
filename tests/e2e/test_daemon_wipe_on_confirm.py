"""A camera still docked when the central server confirms its files is wiped then (after_confirm),
by the daemon, with nothing but the embedded defaults for the sink (a directory)."""

from __future__ import annotations

from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera, wait_until
from tests.support.evidence import rows


def test_a_docked_camera_is_wiped_once_every_file_is_confirmed(
    station: Station, tmp_path: Path
) -> None:
    cam = tmp_path / "cam"
    manifest = write_camera(
        CameraSpec(serial="WOC0001", days=2, files_per_day=4, file_size=128 << 10), cam
    )
    spool = tmp_path / "spool"
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
    )
    recordings = [e.rel_path for e in manifest.entries if e.rel_path.startswith(b"RECORD/")]
    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    try:
        daemon.wait_event("daemon.started")
        dock_camera(spool, "WOC0001", cam)
        first = daemon.wait_event("device.taken_in", timeout=60)
        # Nothing was confirmed when it was taken in, so nothing was wiped then.
        assert (
            rows(
                station.data_dir,
                "SELECT wipe_state FROM sessions WHERE id=?",
                (first["session_id"],),
            )[0]["wipe_state"]
            == "not wiped"
        )
        daemon.wait_event("device.rechecked", timeout=60)
        wait_until(lambda: not any((cam / p.decode()).exists() for p in recordings), 60, "wiped")
        docked = station.json("devices")
        assert len(docked) == 1 and docked[0]["verdict"].startswith("complete; wipe: wiped")
    finally:
        assert daemon.stop() == 0
    files = rows(station.data_dir, "SELECT * FROM files")
    assert {r["state"] for r in files} == {"confirmed"}
    assert sum(1 for r in files if r["wiped_at"]) == len(recordings)
    assert sorted(p.name for p in cam.rglob("*") if p.is_file()) == [
        "BATTERY.CSV",
        "DEVICE.INF",
        "SYSTEM.LOG",
    ]
    assert station.run("verify").returncode == 0
