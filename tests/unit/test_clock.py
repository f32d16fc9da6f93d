"""Clock drift: measurement, correction decision, corrected times, trend, the kernel's clock state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.health import clock
from agent.health.logs import parse_system_log
from agent.store import HealthRow

DOCKED = datetime(2024, 3, 10, 12, 0, 0, tzinfo=UTC)


def _log_with_connect(camera_time: datetime, *extra: str) -> bytes:
    lines = [*extra, f"{camera_time:%Y-%m-%d %H:%M:%S} USB_CONNECT"]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("offset", [-90, 2, 3600])
def test_drift_is_camera_usb_connect_minus_station_time_at_detection(offset: int) -> None:
    # The station notices the dock 0.4 s after the camera logged it.
    camera = (DOCKED + timedelta(seconds=offset)).replace(tzinfo=None)
    events = parse_system_log(_log_with_connect(camera)).events
    drift = clock.measure_drift(events, DOCKED + timedelta(seconds=0.4), UTC, set())
    assert drift.drift_s is not None
    assert abs(drift.drift_s - offset) <= 2
    assert drift.connect_at == f"{camera:%Y-%m-%d %H:%M:%S}"


def test_the_last_usb_connect_counts_and_a_known_one_measures_nothing() -> None:
    old = datetime(2024, 3, 9, 12, 0, 0)
    new = (DOCKED + timedelta(seconds=-90)).replace(tzinfo=None)
    data = _log_with_connect(
        new, f"{old:%Y-%m-%d %H:%M:%S} USB_CONNECT", "2024-03-10 08:00:00 BOOT"
    )
    events = parse_system_log(data).events
    assert clock.measure_drift(events, DOCKED, UTC, set()).drift_s == -90
    known = {events[-1].line}
    again = clock.measure_drift(events, DOCKED, UTC, known)
    assert again.drift_s is None and "same dock" in again.detail
    none = clock.measure_drift(
        parse_system_log(b"2024-03-10 08:00:00 BOOT\n").events, DOCKED, UTC, set()
    )
    assert none.drift_s is None and "no USB_CONNECT" in none.detail


def test_corrected_time_is_raw_minus_drift_and_never_invented() -> None:
    assert clock.corrected_time("2024-03-10T08:00:00", -90, UTC) == "2024-03-10T08:01:30+00:00"
    assert clock.corrected_time("2024-03-10T08:00:00", 3600, UTC) == "2024-03-10T07:00:00+00:00"
    assert clock.corrected_time("2024-03-10T08:00:00", None, UTC) == ""
    assert clock.corrected_time("", 5, UTC) == ""
    shanghai = clock.camera_zone("", "Asia/Shanghai")
    assert clock.corrected_time("2024-03-10T08:00:00", 10, shanghai) == "2024-03-10T07:59:50+08:00"


SYNCED = clock.FixedClock(True).read()
UNSYNCED = clock.FixedClock(False).read()


@pytest.mark.parametrize(
    ("drift", "state", "write", "status"),
    [
        (-90, SYNCED, True, "written"),
        (3600, SYNCED, True, "written"),
        (2, SYNCED, False, "not needed"),
        (30, SYNCED, False, "not needed"),  # at the threshold: not above it
        (-90, UNSYNCED, False, "not written"),
        (3600, UNSYNCED, False, "not written"),
        (None, SYNCED, False, "not written"),
    ],
)
def test_time_txt_only_from_a_synchronised_station_above_the_threshold(
    drift: int | None, state: clock.StationClockState, write: bool, status: str
) -> None:
    decision = clock.decide_correction(drift, 30, state)
    assert (decision.write, decision.status) == (write, status)
    if state is UNSYNCED and drift is not None and abs(drift) > 30:
        assert "never set from an unsynchronised clock" in decision.reason


def test_time_txt_line_is_station_time_in_the_camera_zone() -> None:
    shanghai = clock.camera_zone("Asia/Shanghai")
    assert clock.time_file_text(DOCKED, shanghai) == b"2024-03-10 20:00:00\n"


def test_correction_check_at_the_next_dock() -> None:
    with_set = parse_system_log(
        b"2024-03-11 07:00:00 BOOT\n"
        b"2024-03-11 07:00:01 TIME_SET old=2024-03-11T07:01:31 new=2024-03-11T07:00:01\n"
        b"2024-03-11 20:00:00 USB_CONNECT\n"
    ).events
    assert clock.check_correction(with_set, 1, 30)[0] == "took"
    assert clock.check_correction(with_set, -95, 30)[0] == "did not hold"
    status, detail = clock.check_correction(with_set[:1], -92, 30)
    assert status == "did not take" and "no TIME_SET" in detail


def test_a_clock_running_away_is_flagged_and_a_steady_one_is_not() -> None:
    days = [DOCKED + timedelta(days=d) for d in range(5)]
    running = clock.drift_trend(list(zip(days, [0, 10, 20, 31, 40], strict=True)), 24, 3.0)
    assert running.flagged and running.rate_s_per_day is not None
    assert 9 < running.rate_s_per_day < 11 and "runs away" in running.detail
    steady = clock.drift_trend(list(zip(days, [-90, -91, -90, -89, -90], strict=True)), 24, 3.0)
    assert not steady.flagged
    short = clock.drift_trend([(DOCKED, 0), (DOCKED + timedelta(hours=2), 50)], 24, 3.0)
    assert not short.flagged and short.rate_s_per_day is None
    assert not clock.drift_trend([(DOCKED, 0)], 24, 3.0).flagged


def test_trend_restarts_where_a_correction_took() -> None:
    rows = [
        {"docked_at": "2024-03-01T12:00:00+00:00", "clock_drift_s": 500, "clock_detail": ""},
        {
            "docked_at": "2024-03-02T12:00:00+00:00",
            "clock_drift_s": 0,
            "clock_detail": "",
            "correction_check": "took",
        },
        {"docked_at": "2024-03-03T12:00:00+00:00", "clock_drift_s": 1, "clock_detail": ""},
        {
            "docked_at": "2024-03-03T13:00:00+00:00",
            "clock_drift_s": 1,
            "clock_detail": "same dock as session 3",
        },
    ]
    history = [
        HealthRow(session_id=n, device_serial="CAM1", **row) for n, row in enumerate(rows, 1)
    ]
    points = clock.trend_points(history)
    assert [d for _, d in points] == [0, 1]


def test_station_clock_is_the_kernels_unless_a_test_injects_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKAGENT_TEST_STATION_CLOCK", "synced")  # the environment alone: no effect
    assert isinstance(clock.station_clock(), clock.KernelClock)
    try:
        clock.install(clock.FixedClock(True))
        assert clock.station_clock().read().synchronised
        clock.install(clock.FixedClock(False))
        assert not clock.station_clock().read().synchronised
    finally:
        clock.install(None)
    state = clock.KernelClock().read()  # adjtimex(2) with modes=0 needs no privilege
    assert state.source == "adjtimex"
    assert state.state.startswith("TIME_")
    # synchronised exactly when the kernel does not say TIME_ERROR or STA_UNSYNC
    assert state.synchronised == ("TIME_ERROR" not in state.state and "UNSYNC" not in state.state)
    assert state.esterror_us is not None and state.esterror_us >= 0
    assert "synchronised" in state.describe()


def test_log_parsing_counts_malformed_and_unknown_lines_and_never_raises() -> None:
    data = (
        b"2024-03-10 08:00:00 BOOT\n"
        b"garbage without a time\n"
        b"\xff\xfe\x00binary\n"
        b"2024-13-40 08:00:00 BOOT\n"
        b"2024-03-10 08:00:01 SELF_TEST result=ok\n"
        b"2024-03-10 08:05:00 REC_INTERRUPT reason=battery file=A_1_20240310080000_0001.MP4\r\n"
        b"2024-03-10 09:00:00 FAULT code=E12\n"
    )
    parsed = parse_system_log(data)
    assert (parsed.lines, parsed.malformed, parsed.unknown) == (7, 3, 1)
    assert [e.event for e in parsed.events] == ["BOOT", "SELF_TEST", "REC_INTERRUPT", "FAULT"]
    interrupt = parsed.events[2]
    assert interrupt.fields == {"reason": "battery", "file": "A_1_20240310080000_0001.MP4"}
    assert "\\xff" in parsed.malformed_samples[1]
    # a value with a space (TIME_SET times) stays whole
    spaced = parse_system_log(
        b"2024-03-10 08:00:00 TIME_SET old=2024-03-10 07:58:30 new=2024-03-10 08:00:00\n"
    )
    assert spaced.events[0].fields == {"old": "2024-03-10 07:58:30", "new": "2024-03-10 08:00:00"}
