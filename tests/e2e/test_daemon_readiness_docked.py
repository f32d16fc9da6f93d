"""A camera docked nearly flat charges on the dock: the daemon judges its readiness again while it
stays docked (its battery log grows), `devices` shows the verdict and when it was judged, and
the undock makes the verdict final. A camera docked full is judged again once the wipe after
confirmation freed its storage (a real exFAT volume, FUSE-mounted, found by mountwatch)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.devices.fake import write_event
from scripts.simulator.cameras import CameraSpec, build_image, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera, wait_until
from tests.support.evidence import rows
from tests.support.volumes import mount_exfat

_TIME = "%Y-%m-%d %H:%M:%S"


def _flat_at_dock(battery_csv: Path) -> tuple[str, datetime]:
    """Make the log's last row (the one written at the USB connection) say 5 %; returns the
    row's other fields as a template and its time."""
    lines = battery_csv.read_text().splitlines()
    fields = lines[-1].split(",")
    fields[1] = "5"
    lines[-1] = ",".join(fields)
    battery_csv.write_text("\n".join(lines) + "\n")
    return ",".join(fields[2:]), datetime.strptime(fields[0], _TIME)


def _charging(battery_csv: Path, rest: str, since: datetime, percents: list[int]) -> None:
    with battery_csv.open("a") as log:
        for n, pct in enumerate(percents, start=1):
            log.write(f"{(since + timedelta(minutes=10 * n)).strftime(_TIME)},{pct},{rest}\n")


def _docked(station: Station) -> dict[str, Any]:
    (camera,) = station.json("devices")["docked"]
    readiness: dict[str, Any] = camera["readiness"]
    return readiness


def test_a_camera_docked_flat_turns_ready_while_docked_and_final_at_undock(
    station: Station, tmp_path: Path
) -> None:
    cam = tmp_path / "cam"
    write_camera(CameraSpec(serial="RDY0001", days=1, files_per_day=3, file_size=64 << 10), cam)
    battery_csv = cam / "LOG" / "BATTERY.CSV"
    rest, at_dock = _flat_at_dock(battery_csv)
    spool = tmp_path / "spool"
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[health]\nreadiness_recheck_s = 1\n'
        # No wipe pass (which judges again too): only the re-judge while docked can see it.
        '[ingest]\nwipe_policy = "never"\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
    )
    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    try:
        daemon.wait_event("daemon.started")
        dock_camera(spool, "RDY0001", cam)
        taken = daemon.wait_event("device.taken_in", timeout=60)
        first = _docked(station)
        # Judged at the dock: 5 % is a warning, the only one, and the verdict is not final.
        assert first["verdict"] == "warning", first
        assert [r["text"] for r in first["reasons"] if r["severity"] != "info"] == [
            "charge 5 %: charge before issue"
        ]
        assert first["judged_at"] and first["final"] is False

        # The camera charges on the dock and logs it: judged again, without a re-dock.
        _charging(battery_csv, rest, at_dock, [35, 70, 100])
        wait_until(lambda: _docked(station)["verdict"] == "ready", 30, "ready while docked")
        now = _docked(station)
        assert now["judged_at"] > first["judged_at"] and now["final"] is False
        assert now["reasons"] and all(r["severity"] == "info" for r in now["reasons"])
        daemon.wait_event("health.readiness_rejudged", verdict="ready")

        write_event(spool, "undock-RDY0001", action="removed", key="usb-RDY0001")
        daemon.wait_event("device.removed")
        wait_until(
            lambda: (
                rows(station.data_dir, "SELECT readiness_final FROM session_health")[0][
                    "readiness_final"
                ]
                == 1
            ),
            10,
            "the verdict final",
        )
        # Undocked, nothing reads the camera: a log that changes now changes no verdict.
        _charging(battery_csv, rest, at_dock + timedelta(hours=1), [4])
        time_after = rows(station.data_dir, "SELECT readiness_at FROM session_health")[0]
        time.sleep(3)  # three re-judge intervals
    finally:
        assert daemon.stop() == 0
    (health,) = rows(station.data_dir, "SELECT * FROM session_health")
    assert health["session_id"] == taken["session_id"]
    assert health["readiness"] == "ready" and health["readiness_final"] == 1
    assert health["readiness_at"] == time_after["readiness_at"]
    assert '"charge_pct": 100' in health["battery"]
    assert station.json("devices")["docked"] == []


@pytest.mark.fuse
@pytest.mark.usefixtures("fuse")
def test_a_full_camera_is_judged_again_once_the_wipe_freed_its_storage(
    station: Station, tmp_path: Path
) -> None:
    image = tmp_path / "RDY0002.img"  # exFAT: fusefat reports no free space (statvfs)
    spec = CameraSpec(
        serial="RDY0002", days=1, files_per_day=6, file_size=512 << 10, large_files=2,
        large_size=28 << 20, split_every=0,
    )  # fmt: skip
    build_image(spec, image, "exfat")  # ~60 MiB of recordings: about 45 % of the volume
    root = tmp_path / "media"
    root.mkdir()
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "after_confirm"\n'
        # Judged again only by the wipe here (the interval is an hour), on storage alone.
        "[health]\nreadiness_recheck_s = 3600\ncharge_warn_pct = 0\n"
        "storage_warn_free_pct = 70\nstorage_not_ready_free_pct = 60\n"
        f'[devices]\nsources = ["mountwatch"]\nmount_root = "{root}"\nrequire_enrollment = false\n'
    )
    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    try:
        daemon.wait_event("daemon.started")
        (root / "RDY0002").mkdir()
        with mount_exfat(image, root / "RDY0002", readonly=False):
            daemon.wait_event("device.taken_in", timeout=120)
            first = _docked(station)
            assert first["verdict"] == "not ready", first
            (storage,) = [r for r in first["reasons"] if r["area"] == "storage"]
            assert storage["severity"] == "not_ready" and "% free after offload" in storage["text"]
            daemon.wait_event("device.rechecked", timeout=120)
            wait_until(lambda: _docked(station)["verdict"] == "ready", 60, "ready after the wipe")
            now = _docked(station)
            assert now["judged_at"] > first["judged_at"] and now["final"] is False
            (freed,) = [r for r in now["reasons"] if r["area"] == "storage"]
            assert freed["severity"] == "info"
            assert int(freed["text"].split(" %")[0]) > 90
    finally:
        assert daemon.stop() == 0
    (session,) = rows(station.data_dir, "SELECT wipe_state FROM sessions")
    assert session["wipe_state"] == "wiped"
    (health,) = rows(station.data_dir, "SELECT * FROM session_health")
    assert health["readiness"] == "ready" and health["storage_free_bytes"] > 0
