"""Clock drift through the real pipeline, with the station's time and clock state injected.

Cameras with drift -90 s, +2 s and +3600 s: drift measured within 2 s, TIME.TXT only above
the profile's threshold and only from a synchronised station, every file's corrected time equal
to its raw time minus the drift (and signed into its custody record). A clock that runs away
over five docks is flagged; a correction is checked at the next dock; a read-only volume gives
a fault, never a crash.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from agent.cli import render
from agent.custody.verify import verify
from agent.health import clock
from agent.reporting import history as ledger_history
from tests.support.docking import DockingStation, inject_station_clock, insert_log_line, make_camera

DOCKED = datetime(2024, 3, 10, 20, 0, 0)  # true local time of the dock
THRESHOLD = 30  # generic.toml clock_threshold_s


@pytest.fixture
def dockstation(tmp_path: Path) -> Iterator[DockingStation]:
    config = tmp_path / "config.toml"
    config.write_text(
        'station_id = "CLOCK-TEST"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
    )
    station = DockingStation.open(tmp_path / "data", config)
    yield station
    station.close()


def _dock_offsets(
    station: DockingStation, root: Path, offsets: list[int]
) -> dict[int, tuple[Path, int]]:
    out = {}
    for offset in offsets:
        cam, _ = make_camera(
            root,
            f"cam{offset}",
            serial=f"CLK{abs(offset)}{'M' if offset < 0 else 'P'}",
            clock_offset_s=float(offset),
            first_day=date(2024, 3, 9),
            days=2,
            docked_at=DOCKED,
        )
        summary = station.dock(cam, DOCKED)
        assert summary.complete, summary.problems
        out[offset] = (cam, summary.session_id)
    return out


def test_drift_measured_and_camera_set_only_above_threshold_from_a_synced_station(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject_station_clock(monkeypatch, synchronised=True)
    docked = _dock_offsets(dockstation, tmp_path, [-90, 2, 3600])
    store = dockstation.store
    for offset, (cam, session_id) in docked.items():
        health = store.health(session_id)
        assert health is not None
        drift = health.clock_drift_s
        assert abs(drift - offset) <= 2, (offset, drift)
        assert health.station_synced == 1
        time_txt = cam / "TIME.TXT"
        if abs(offset) > THRESHOLD:
            assert health.clock_correction == "written"
            # one line, the station's time in the camera's zone, at the moment of writing
            written = datetime.strptime(time_txt.read_text(), "%Y-%m-%d %H:%M:%S\n")
            assert abs((written - DOCKED).total_seconds()) < 5
        else:
            assert health.clock_correction == "not needed"
            assert not time_txt.exists()
        files = [r for r in store.all_files() if r.session_id == session_id and r.recorded_start]
        assert files
        for row in files:
            assert row.clock_drift_s == drift
            for raw_key in ("recorded_start", "recorded_end"):
                raw = datetime.fromisoformat(getattr(row, raw_key)).astimezone()
                corrected = datetime.fromisoformat(getattr(row, f"{raw_key}_corrected"))
                # corrected = raw minus drift, exactly; and within 2 s of the true time
                assert corrected == raw - timedelta(seconds=drift)
                assert abs((corrected - (raw - timedelta(seconds=offset))).total_seconds()) <= 2
            assert f"drift {drift:+d} s" in row.time_basis
            body = json.loads(store.record(row.record_seq).body)  # type: ignore[union-attr]
            assert body["recorded_start"] == row.recorded_start  # raw kept
            assert body["recorded_start_corrected"] == row.recorded_start_corrected
            assert body["clock_drift_s"] == drift
            assert body["time_basis"] == row.time_basis
            assert body["retention_class"] in ("standard", "important")
    report = verify(store, dockstation.key, dockstation.config.staging_path)
    assert report.ok, report.problems


def test_an_unsynchronised_station_never_sets_a_camera(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject_station_clock(monkeypatch, synchronised=False)
    docked = _dock_offsets(dockstation, tmp_path, [-90, 3600])
    verdicts = {}
    for offset, (cam, session_id) in docked.items():
        assert not (cam / "TIME.TXT").exists()
        health = dockstation.store.health(session_id)
        assert health is not None
        assert health.clock_correction == "not written"
        assert "never set from an unsynchronised clock" in health.clock_correction_detail
        assert abs(health.clock_drift_s - offset) <= 2  # still measured and applied
        verdicts[offset] = health.readiness
        reasons = json.loads(health.readiness_reasons)
        assert any(r["area"] == "clock" and "not corrected" in r["text"] for r in reasons)
    assert verdicts == {-90: "warning", 3600: "not ready"}


def test_a_clock_that_runs_away_over_five_days_is_flagged(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject_station_clock(monkeypatch, synchronised=False)
    sessions: dict[str, list[int]] = {"RUNAWAY1": [], "STEADY1": []}
    for day in range(5):
        when = DOCKED + timedelta(days=day)
        for serial, offset in (("RUNAWAY1", 12.0 * day), ("STEADY1", -20.0)):
            cam, _ = make_camera(
                tmp_path,
                f"{serial}-{day}",
                serial=serial,
                clock_offset_s=offset,
                first_day=when.date(),
                docked_at=when,
                files_per_day=2,
            )
            summary = dockstation.dock(cam, when)
            assert summary.complete, summary.problems
            sessions[serial].append(summary.session_id)
    store = dockstation.store
    last = store.health(sessions["RUNAWAY1"][-1])
    assert last is not None
    assert last.drift_flagged == 1
    assert 10 < last.drift_rate_s_per_day < 14
    assert "runs away" in last.drift_trend
    assert last.readiness == "warning"
    steady = store.health(sessions["STEADY1"][-1])
    assert steady is not None and steady.drift_flagged == 0
    assert abs(steady.drift_rate_s_per_day) < 1
    faults = [f for f in store.faults(camera="RUNAWAY1") if f.code == "drift_runaway"]
    assert faults
    assert not [f for f in store.faults(camera="STEADY1") if f.code == "drift_runaway"]
    history = ledger_history.device_history(store, "RUNAWAY1", dockstation.config)
    assert history["drift_trend"]["flagged"]
    assert [d["clock_drift_s"] for d in history["docks"]] == pytest.approx(
        [0, 12, 24, 36, 48], abs=2
    )
    text = render.device_history(history)
    assert "FLAGGED" in text and "RUNAWAY1" in text


def test_the_next_dock_says_whether_the_correction_took(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject_station_clock(monkeypatch, synchronised=True)
    results = {}
    for serial, applied in (("SETOK1", True), ("SETNO1", False)):
        first, _ = make_camera(
            tmp_path,
            f"{serial}-1",
            serial=serial,
            clock_offset_s=-90.0,
            first_day=DOCKED.date(),
            docked_at=DOCKED,
        )
        dockstation.dock(first, DOCKED)
        assert (first / "TIME.TXT").exists()
        nxt = DOCKED + timedelta(days=1)
        second, _ = make_camera(
            tmp_path,
            f"{serial}-2",
            serial=serial,
            clock_offset_s=1.0 if applied else -92.0,
            first_day=nxt.date(),
            docked_at=nxt,
        )
        if applied:
            boot = nxt.replace(hour=6, minute=30)
            insert_log_line(
                second,
                f"{boot:%Y-%m-%d %H:%M:%S} TIME_SET old={boot - timedelta(seconds=90):%Y-%m-%dT%H:%M:%S} "
                f"new={boot:%Y-%m-%dT%H:%M:%S}",
            )
        summary = dockstation.dock(second, nxt)
        health = dockstation.store.health(summary.session_id)
        assert health is not None
        results[serial] = (health.correction_check, health.correction_check_detail)
    assert results["SETOK1"][0] == "took"
    assert "TIME_SET" in results["SETOK1"][1]
    assert results["SETNO1"][0] == "did not take"
    faults = [f for f in dockstation.store.faults(camera="SETNO1") if f.code == "clock_not_set"]
    assert faults and "did not take" in faults[0].detail


def test_a_read_only_volume_is_a_fault_not_a_crash(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject_station_clock(monkeypatch, synchronised=True)
    cam, _ = make_camera(
        tmp_path,
        "rocam",
        serial="ROCAM1",
        clock_offset_s=-90.0,
        first_day=DOCKED.date(),
        docked_at=DOCKED,
    )
    mnt = tmp_path / "ro"
    mnt.mkdir()
    # A read-only mount, as the daemon mounts cameras (mount(8): bind, then remount ro).
    subprocess.run(["mount", "--bind", str(cam), str(mnt)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], check=True)
        summary = dockstation.dock(mnt, DOCKED)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert summary.complete, summary.problems
    assert summary.files_sealed > 0
    health = dockstation.store.health(summary.session_id)
    assert health is not None
    assert health.clock_correction == "failed"
    assert health.clock_correction_detail == "clock not corrected: volume read-only"
    faults = dockstation.store.faults(session_id=summary.session_id)
    assert [f.code for f in faults] == ["clock_not_corrected"]
    assert "clock not corrected: volume read-only" in faults[0].detail
    assert not (cam / "TIME.TXT").exists()


def test_a_failing_health_check_never_stops_the_offload(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("simulated bug in a health check")

    inject_station_clock(monkeypatch, synchronised=True)
    monkeypatch.setattr(clock, "write_time_file", broken)
    monkeypatch.setattr(clock, "measure_drift", broken)
    cam, _ = make_camera(tmp_path, "bug", serial="BUG1", first_day=DOCKED.date(), docked_at=DOCKED)
    summary = dockstation.dock(cam, DOCKED)
    assert summary.complete and summary.files_sealed == summary.files_found
    faults = dockstation.store.faults(session_id=summary.session_id)
    assert any(f.code == "check_failed" and "docked" in f.detail for f in faults)


def test_a_retry_of_the_same_dock_keeps_its_drift_and_faults_without_repeating_them(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject_station_clock(monkeypatch, synchronised=False)
    cam, _ = make_camera(
        tmp_path,
        "retry",
        serial="RETRY1",
        clock_offset_s=-45.0,
        first_day=DOCKED.date(),
        docked_at=DOCKED,
    )
    insert_log_line(cam, f"{DOCKED:%Y-%m-%d} 19:30:00 FAULT code=E12")
    first = dockstation.dock(cam, DOCKED)
    again = dockstation.dock(cam, DOCKED + timedelta(minutes=20))  # the technician retries
    one, two = (dockstation.store.health(s.session_id) for s in (first, again))
    assert one is not None and two is not None
    assert abs(one.clock_drift_s + 45) <= 2
    assert two.clock_drift_s == one.clock_drift_s  # not 20 minutes off
    assert two.clock_detail.startswith(f"same dock as session {first.session_id}")
    assert one.readiness == two.readiness == "not ready"
    for health in (one, two):
        reasons = json.loads(health.readiness_reasons)
        assert any(r["area"] == "faults" and "FAULT E12" in r["text"] for r in reasons)
    faults = [f for f in dockstation.store.faults(camera="RETRY1") if f.source == "camera_log"]
    assert len(faults) == 1 and faults[0].session_id == first.session_id
    assert "unexplained" in faults[0].detail
