"""A camera still docked when the central server confirms its files is wiped then (after_confirm),
by the daemon, with nothing but the embedded defaults for the sink (a directory); the wipe is
part of the dock's one session, which its unplug ends, and the ledger shows that one session."""

from __future__ import annotations

from pathlib import Path

from agent.devices.fake import write_event
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
        docked = station.json("devices")["docked"]
        assert len(docked) == 1 and docked[0]["verdict"].startswith("complete; wipe: wiped")
        write_event(spool, "undock-WOC0001", action="removed", key="usb-WOC0001")
        daemon.wait_event("device.removed")
        wait_until(
            lambda: (
                rows(station.data_dir, "SELECT undocked_at FROM sessions")[0]["undocked_at"]
                is not None
            ),
            10,
            "undock",
        )
    finally:
        assert daemon.stop() == 0
    # One physical dock, one session: its copy, its confirmation and its wipe inside it.
    (session,) = rows(station.data_dir, "SELECT * FROM sessions")
    assert session["id"] == first["session_id"]
    assert session["docked_at"] and session["undocked_at"]
    assert session["docked_at"] <= session["ended_at"] <= session["undocked_at"]
    assert session["outcome"] == "complete"
    assert session["wipe_state"] == "wiped"
    assert session["files_sealed"] == len(manifest.entries)
    assert session["bytes_copied"] == sum(e.size for e in manifest.entries)
    # The dock's health was read once: one health row, no faults from the wipe pass.
    assert len(rows(station.data_dir, "SELECT * FROM session_health")) == 1
    assert rows(station.data_dir, "SELECT * FROM faults") == []
    ledger = station.json("ledger")
    (entry,) = ledger["sessions"]
    assert entry["session_id"] == first["session_id"]
    assert entry["docked_at"] and entry["undocked_at"]
    assert entry["wipe"].startswith("wiped")
    assert entry["files_sealed"] == len(manifest.entries)
    files = rows(station.data_dir, "SELECT * FROM files")
    assert {r["state"] for r in files} == {"confirmed"}
    assert sum(1 for r in files if r["wiped_at"]) == len(recordings)
    assert sorted(p.name for p in cam.rglob("*") if p.is_file()) == [
        "BATTERY.CSV",
        "DEVICE.INF",
        "SYSTEM.LOG",
    ]
    assert station.run("verify").returncode == 0
