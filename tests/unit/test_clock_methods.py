"""Clock and battery methods of a profile (ClockSpec, BatterySpec): the files a clock method
writes, what a camera with no log lets the station know of its drift, how the correction is
checked at the next dock, and how readiness weighs a battery or clock the station cannot read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.camera.methods import ClockSpec
from agent.core.config import HealthConfig
from agent.health import battery, clock_dock, clock_files, readiness
from agent.health.clock_dock import UnlockReadings
from scripts.simulator.firmware import parse_timeset
from tests.unit.test_ledger_readiness import BASE

DOCKED = datetime(2026, 12, 4, 2, 3, 4, tzinfo=UTC)
NOVATEK = ClockSpec(method="file:novatek-timeset", path="TIMESET.txt", max_error_s=62)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_timeset_is_19_characters_of_the_station_time_in_the_camera_zone() -> None:
    text = clock_files.clock_file_text(NOVATEK, DOCKED, SHANGHAI)
    assert text == b"2026.12.04 10:03:04"
    assert len(text) == 19
    # The generic method is today's TIME.TXT line.
    generic = clock_files.clock_file_text(ClockSpec(), DOCKED, UTC)
    assert generic == b"2026-12-04 02:03:04\n"
    with pytest.raises(ValueError, match="writes no file"):
        clock_files.clock_file_text(ClockSpec(method="scsi"), DOCKED, UTC)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 86400 * 366 * 20))
def test_the_firmware_reads_what_the_station_writes_within_the_method_error(secs: int) -> None:
    # Any station time 2010-2030: the firmware's clamps (minute 00 -> 01, second 00 -> 01) make
    # it at most 61 s late, never early; the profile's max_error_s must cover that.
    now = datetime(2010, 1, 1, tzinfo=UTC) + timedelta(seconds=secs)
    applied = parse_timeset(clock_files.timeset_text(now, UTC))
    assert applied is not None
    error = (applied.replace(tzinfo=UTC) - now).total_seconds()
    assert 0 <= error <= 61


@settings(max_examples=300, deadline=None)
@given(
    drift=st.integers(-86400, 86400),
    gap=st.integers(0, 7 * 86400),
    offsets=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20),
    undock_known=st.booleans(),
)
def test_bounds_from_recordings_always_hold_the_true_drift(
    drift: int, gap: int, offsets: list[float], undock_known: bool
) -> None:
    # Recordings at true times between the last undock and this dock; the camera names their
    # start in whole seconds and FAT rounds their end up to even seconds.
    undock = DOCKED - timedelta(seconds=gap)
    times = []
    for f in offsets:
        true = undock + timedelta(seconds=gap * f)
        cam = true + timedelta(seconds=drift)
        times.append(cam.replace(microsecond=0))
        times.append(cam.replace(microsecond=0) + timedelta(seconds=2))
    times = [min(t, DOCKED + timedelta(seconds=drift + 2)) for t in times]
    bounds = clock_files.drift_bounds(times, undock if undock_known else None, DOCKED)
    assert bounds.low_s is not None and bounds.low_s <= drift
    if undock_known:
        assert bounds.high_s is not None and drift <= bounds.high_s
    proven = bounds.proven()
    if proven is not None:  # what they prove is never more than the truth
        assert abs(proven) <= abs(drift) and (proven > 0) == (drift > 0)


def test_bounds_prove_a_drift_only_when_they_exclude_zero() -> None:
    ahead = clock_files.drift_bounds([DOCKED + timedelta(seconds=3590)], None, DOCKED)
    assert ahead.proven() == 3588  # recorded just before the dock, an hour ahead
    assert ahead.within(62) is False
    loose = clock_files.drift_bounds(
        [DOCKED - timedelta(hours=5), DOCKED - timedelta(hours=1)],
        DOCKED - timedelta(hours=6),
        DOCKED,
    )
    assert loose.proven() is None and loose.within(62) is None
    assert "between -3602 and +3602 s" in loose.describe()
    nothing = clock_files.drift_bounds([], DOCKED - timedelta(hours=6), DOCKED)
    assert not nothing.known and "not bounded" in nothing.describe()


def test_a_file_set_clock_is_checked_at_the_next_dock() -> None:
    tight = clock_files.Bounds(-30, 40, 6)
    behind = clock_files.Bounds(-40000, -35000, 3)
    loose = clock_files.Bounds(-3000, 4000, 2)
    check = clock_files.check_file_correction
    assert check(NOVATEK, True, None, tight)[0] == "did not take"
    assert "still on the camera" in check(NOVATEK, True, None, tight)[1]
    assert check(NOVATEK, False, None, tight)[0] == "took"
    status, detail = check(NOVATEK, False, None, behind)
    assert status == "did not hold" and "-35000" in detail
    status, detail = check(NOVATEK, False, None, loose)
    assert status == "took" and "nothing contradicts it" in detail
    # A log's measured drift is allowed the measurement's 2 s on top of the method's error.
    generic = ClockSpec(max_error_s=2)
    assert check(generic, False, 4, loose)[0] == "took"
    assert check(generic, False, -5, loose)[0] == "did not hold"
    scsi = ClockSpec(method="scsi", max_error_s=2)
    assert clock_files.check_scsi_correction(scsi, None, behind)[0] == "did not hold"
    assert clock_files.check_scsi_correction(scsi, None, loose)[0] == "took"


def test_an_unlock_result_is_read_as_data() -> None:
    assert clock_dock.readback_drift(UnlockReadings(drift_s=-42)) == -42
    assert clock_dock.readback_drift(UnlockReadings(drift_s=10**20)) is None  # hostile
    assert clock_dock.readback_drift(None) is None
    assert clock_dock.scsi_correction(None)[0] == "not written"
    done = clock_dock.scsi_correction(UnlockReadings(clock_set=True, clock_detail="set to X"))
    assert done == ("written", "set to X")


def test_battery_sources_scsi_and_none() -> None:
    read = battery.from_scsi(15)
    assert (read.verdict, read.charge_pct, read.source) == ("ok", 15, "scsi")
    assert battery.from_scsi(None).verdict == "unknown"
    hostile = battery.from_scsi(250)
    assert hostile.verdict == "unknown" and hostile.charge_pct is None
    assert "250 is no percentage" in hostile.reasons[0]
    assert battery.not_reported().source == "none"


def test_readiness_weighs_a_missing_battery_source_by_configuration() -> None:
    limits = HealthConfig()
    none = replace(BASE, battery=battery.not_reported().as_dict())
    result = readiness.assess(none, limits)
    assert result.verdict == "ready"  # a model without a battery source is not held against it
    assert any(r.area == "battery" and r.severity == "info" for r in result.reasons)
    strict = replace(limits, battery_reading_required=True)
    assert readiness.assess(none, strict).verdict == "not ready"
    # A SCSI reading is judged on its charge.
    low = replace(BASE, battery=battery.from_scsi(10).as_dict())
    assert readiness.assess(low, limits).verdict == "warning"
    failed = replace(BASE, battery=battery.from_scsi(None).as_dict())
    assert readiness.assess(failed, limits).verdict == "warning"


def test_readiness_of_clocks_that_cannot_be_timed_exactly() -> None:
    limits = HealthConfig()
    none = replace(BASE, drift_s=None, clock_method="none")
    result = readiness.assess(none, limits)
    assert result.verdict == "ready"
    assert any("clock method none" in r.text for r in result.reasons)
    bounded = replace(
        BASE,
        drift_s=None,
        clock_method="file:novatek-timeset",
        drift_bounds="drift between -3000 and +4000 s",
    )
    assert readiness.assess(bounded, limits).verdict == "ready"
    ahead = replace(bounded, drift_proven=3588, correction="not written", correction_detail="x")
    result = readiness.assess(ahead, limits)
    assert result.verdict == "not ready"
    assert any("off by at least +3588 s" in r.text for r in result.reasons)
    fixed = replace(ahead, correction="written", clock_file="TIMESET.txt")
    result = readiness.assess(fixed, limits)
    assert result.verdict == "ready"
    assert any("TIMESET.txt written" in r.text for r in result.reasons)
