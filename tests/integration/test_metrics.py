"""The metrics file the daemon writes parses as Prometheus text and agrees with the CLI.

A station with files in several states (confirmed by the directory sink, sealed, taken in by
the daemon), a docked camera whose clock is an hour off and whose battery has faded, and a
refused device: the daemon's metrics file parses with prometheus_client's own parser, and every
number in it is the one `status --json`, `devices --json`, `devices --refused --json` and
`queue --json` show; `dockagent metrics` prints the same.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera
from tests.support.evidence import rows

AWAITING = ("staged", "sealed", "uploading", "held")


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _dock(spool: Path, name: str, serial: str, mountpoint: Path, vendor: str = "2b0e") -> None:
    dock_camera(spool, serial, mountpoint, name=name, vendor=vendor)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _configure(station: Station, spool: Path, metrics_path: Path) -> None:
    station.configure(f"""station_id = "METRICS"
[storage]
reserve_bytes = 0
[ingest]
wipe_policy = "never"
[devices]
sources = ["fake"]
fake_spool = "{spool}"
require_enrollment = false
[service]
metrics_path = "{metrics_path}"
metrics_interval_s = 1
""")


def _import_two(station: Station, tmp_path: Path) -> None:
    cameras = {
        "MET001": CameraSpec(serial="MET001", days=1, files_per_day=3),
        "MET002": CameraSpec(serial="MET002", days=1, files_per_day=2, seed=2),
        "MET003": CameraSpec(
            serial="MET003", days=1, files_per_day=2, seed=3, clock_offset_s=3600, battery="faded"
        ),
    }
    for serial, spec in cameras.items():
        write_camera(spec, tmp_path / serial)
    # MET001: imported and confirmed by the directory sink; MET002: imported, sealed.
    assert station.run("import", str(tmp_path / "MET001")).returncode == 0
    assert station.run("sync", "--once").returncode == 0
    assert station.run("import", str(tmp_path / "MET002")).returncode == 0
    # The daemon uploads too; an upload window far from now keeps MET002/MET003 sealed.
    hour = (datetime.now().hour + 12) % 24
    station.configure(station.config_text + f'[sync]\nwindows = ["{hour:02d}:00-{hour:02d}:01"]\n')


def _next_metrics(metrics_path: Path, after: float) -> Metrics:
    """The next metrics file written after `after`: at most one interval later."""
    deadline = time.monotonic() + 10
    while True:
        text = metrics_path.read_text() if metrics_path.exists() else ""
        got = parse(text) if text else {}
        if got.get(("dockagent_metrics_timestamp_seconds", ()), 0) > after:
            return got
        assert time.monotonic() < deadline, "no metrics file written after the dock"
        time.sleep(0.2)


def _assert_counts(got: Metrics, status: Any, docked: Any, refused: Any, queue: Any) -> None:
    # Files per state, and in all.
    for state, count in status["states"].items():
        assert got[("dockagent_files", (("state", state),))] == count, state
    assert sum(v for (name, _), v in got.items() if name == "dockagent_files") == status["files"]
    assert status["states"]["confirmed"] > 0
    assert status["states"]["sealed"] > 0
    assert got[("dockagent_custody_records", ())] == status["chain_length"]
    # Bytes awaiting upload: what `queue` lists in staging, not yet confirmed.
    waiting = sum(item["size"] for item in queue if item["state"] in AWAITING)
    assert waiting > 0
    assert got[("dockagent_bytes_awaiting_upload", ())] == waiting
    # Cameras docked, devices refused.
    assert got[("dockagent_cameras_docked", ())] == len(docked) == 1
    assert got[("dockagent_refused_devices_total", ())] == len(refused) == 1


def _assert_readiness(got: Metrics, status: Any) -> None:
    # Readiness and the alarms behind it, as `status` shows them.
    by_readiness = Counter(r["readiness"] for r in status["readiness"])
    for verdict, count in by_readiness.items():
        assert got[("dockagent_cameras_by_readiness", (("readiness", verdict),))] == count
    for kind, area in (("drift", "clock"), ("battery", "battery")):
        alarmed = sum(
            any(reason.startswith(f"{area}:") for reason in r["reasons"])
            for r in status["readiness"]
        )
        assert got[("dockagent_camera_alarms", (("kind", kind),))] == alarmed, kind
    assert got[("dockagent_camera_alarms", (("kind", "drift"),))] >= 1  # MET003: 1 h off
    assert got[("dockagent_camera_alarms", (("kind", "battery"),))] >= 1  # MET003: faded
    synced = status["station_clock"]["synchronised"]
    assert got[("dockagent_station_clock_synchronised", ())] == int(synced)


def _assert_times(got: Metrics, data_dir: Path) -> None:
    # Times: the oldest unconfirmed file and the last confirmation, from the rows themselves.
    files = rows(data_dir)
    oldest = min(_epoch(r["discovered_at"]) for r in files if r["state"] != "confirmed")
    assert abs(got[("dockagent_oldest_unconfirmed_timestamp_seconds", ())] - oldest) < 0.01
    taken = got[("dockagent_metrics_timestamp_seconds", ())]
    age = got[("dockagent_oldest_unconfirmed_age_seconds", ())]
    assert abs(age - (taken - oldest)) < 0.01
    last = max(_epoch(r["confirmed_at"]) for r in files if r["confirmed_at"])
    assert abs(got[("dockagent_last_confirmed_upload_timestamp_seconds", ())] - last) < 0.01


def test_daemon_metrics_parse_and_match_status(station: Station, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    metrics_path = tmp_path / "textfile" / "dockagent.prom"
    metrics_path.parent.mkdir()
    _configure(station, spool, metrics_path)
    _import_two(station, tmp_path)

    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    try:
        daemon.wait_event("service.ready_notified")
        _dock(spool, "dock-MET003", "MET003", tmp_path / "MET003")
        daemon.wait_event("device.taken_in", timeout=60)
        _dock(spool, "dock-rogue", "ROGUE1", tmp_path / "MET003", vendor="dead")
        daemon.wait_event("device.refused")
        got = _next_metrics(metrics_path, time.time())
        assert metrics_path.stat().st_mode & 0o777 == 0o644  # node_exporter reads it
        status = station.json("status")
        docked = station.json("devices")["docked"]
        refused = station.json("devices", "--refused")["refused"]
        queue = station.json("queue")["files"]
        printed = station.run("metrics")
    finally:
        daemon.stop()
    assert printed.returncode == 0, printed.stderr

    _assert_counts(got, status, docked, refused, queue)
    _assert_readiness(got, status)
    _assert_times(got, station.data_dir)

    # `dockagent metrics` prints the same numbers (its own timestamp and age aside).
    moving = {"dockagent_metrics_timestamp_seconds", "dockagent_oldest_unconfirmed_age_seconds"}
    again = parse(printed.stdout)
    assert {k: v for k, v in again.items() if k[0] not in moving} == {
        k: v for k, v in got.items() if k[0] not in moving
    }
