"""BATTERY.CSV: verdicts for healthy, faded, hot, garbled and truncated logs, with exact counts."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from agent.core.config import HealthConfig
from agent.health import battery
from scripts.simulator.cameras import CameraSpec, write_camera

LIMITS = HealthConfig()
HEADER = battery.HEADER


def _row(
    t: datetime,
    pct: int,
    temp: float = 30.0,
    cycles: int = 200,
    full: int = 2900,
    design: int = 3000,
) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S},{pct},{3400 + 8 * pct},-600,{temp:.1f},{cycles},{full},{design}"


def _day(full: int = 2900, temps: tuple[float, float] = (25.0, 36.0), end: int = 40) -> list[str]:
    start = datetime(2024, 3, 10, 7, 0, 0)
    rows = []
    for i in range(13):
        frac = i / 12
        rows.append(
            _row(
                start + timedelta(minutes=50 * i),
                round(100 - (100 - end) * frac),
                temps[0] + (temps[1] - temps[0]) * frac,
                full=full,
            )
        )
    return rows


def _csv(rows: list[str], header: bool = True) -> bytes:
    return ("\n".join(([HEADER] if header else []) + rows) + "\n").encode()


def test_a_healthy_battery_is_ok() -> None:
    report = battery.assess(_csv(_day()), LIMITS)
    assert report.verdict == "ok", report.reasons
    assert (report.rows, report.valid, report.truncated, report.garbled) == (13, 13, 0, 0)
    assert report.charge_pct == 40 and report.cycle_count == 200
    assert report.capacity_pct == pytest.approx(96.7)
    assert report.peak_temp_c == 36.0
    assert report.deep_discharges == 0 and report.sudden_drops == 0


def test_a_battery_faded_to_70_percent_is_a_warning() -> None:
    report = battery.assess(_csv(_day(full=2100)), LIMITS)
    assert report.capacity_pct == 70.0
    assert report.verdict == "warning"
    assert any("faded to 70 % of design" in r for r in report.reasons)
    worse = battery.assess(_csv(_day(full=1650)), LIMITS)
    assert worse.verdict == "bad" and "replace the battery" in worse.reasons[0]


def test_an_overheating_battery_is_bad_and_a_warm_one_a_warning() -> None:
    hot = battery.assess(_csv(_day(temps=(31.0, 63.5))), LIMITS)
    assert hot.verdict == "bad"
    assert hot.peak_temp_c == 63.5
    assert any("overheating: peak 63.5 °C" in r for r in hot.reasons)
    warm = battery.assess(_csv(_day(temps=(30.0, 47.0))), LIMITS)
    assert warm.verdict == "warning" and any("ran hot" in r for r in warm.reasons)


def test_truncated_and_garbled_rows_are_skipped_and_counted_exactly() -> None:
    good = _day()
    rows = [
        good[0],
        good[1][:17],  # truncated mid-write: only part of the time
        good[2],
        "",  # a row lost entirely
        good[3].split(",", 1)[0] + ",,,",  # fields lost
        good[4],
        "\x00\xff\xfe??#",  # flash garbage (not text)
        good[5],
        good[6].replace(",30", ",3O"),  # a letter where a number belongs
        good[7],
        good[8].replace(",-600,", ",-600,999,"),  # a field too many
        _row(datetime(2024, 3, 10, 14, 0), 140),  # percent out of range
        good[9],
        good[10][: good[10].rfind(",")],  # last field lost
    ]
    data = ("\n".join([HEADER, *rows]) + "\n").encode("latin-1")
    report = battery.assess(data, LIMITS)
    assert report.rows == 14
    assert report.truncated == 4
    assert report.garbled == 4
    assert report.valid == 6
    assert report.verdict == "warning"
    assert any("8 of 14 rows skipped (4 truncated, 4 garbled)" in r for r in report.reasons)
    assert report.charge_pct is not None  # judged on the rows that were readable


def test_deep_discharges_and_sudden_drops() -> None:
    t = datetime(2024, 3, 10, 7, 0, 0)
    rows = []
    for day in range(3):  # three days that each end at 3 %
        for i, pct in enumerate((100, 70, 40, 10, 3)):
            rows.append(_row(t + timedelta(days=day, hours=2 * i), pct))
    rows.append(_row(t + timedelta(days=3), 90))
    rows.append(_row(t + timedelta(days=3, minutes=10), 60))  # 30 points in 10 minutes
    report = battery.assess(_csv(rows), LIMITS)
    assert report.deep_discharges == 3
    assert report.sudden_drops == 1
    assert report.verdict == "warning"
    assert any("3 deep discharges" in r for r in report.reasons)
    assert any("1 sudden drops" in r for r in report.reasons)


def test_missing_or_unreadable_log_is_unknown_not_an_error() -> None:
    assert battery.assess(None, LIMITS).verdict == "unknown"
    junk = battery.assess(b"\xff\xfe\x00\x01garbage\n\x00\x00\n", LIMITS)
    assert junk.verdict == "unknown" and junk.garbled == 2
    assert "no valid row" in junk.reasons[0]
    no_header = battery.assess(_csv(_day(), header=False), LIMITS)
    assert not no_header.header_ok and no_header.valid == 13


_VALID = re.compile(
    rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{1,3},\d+,-?\d+,-?\d+(\.\d+)?,\d+,\d+,\d+$"
)


@pytest.mark.parametrize(
    ("mode", "verdict"),
    [("healthy", "ok"), ("faded", "bad"), ("hot", "bad"), ("garbled", "warning")],
)
def test_simulated_battery_modes(tmp_path: Path, mode: str, verdict: str) -> None:
    spec = CameraSpec(
        serial="BAT1",
        days=3,
        files_per_day=2,
        other_files=0,
        battery=mode,  # type: ignore[arg-type]
        first_day=date(2024, 3, 7),
        docked_at=datetime(2024, 3, 10, 8, 0, 0),
    )
    write_camera(spec, tmp_path / "cam")
    data = (tmp_path / "cam" / "LOG" / "BATTERY.CSV").read_bytes()
    report = battery.assess(data, LIMITS)
    assert report.verdict == verdict, report.reasons
    lines = data.split(b"\n")[1:-1]
    # an independent count of the rows that are not 8 well-formed values
    assert report.skipped == sum(1 for line in lines if not _VALID.match(line))
    assert report.valid == sum(1 for line in lines if _VALID.match(line))
    if mode == "garbled":
        assert report.skipped >= 2
    if mode == "faded":
        assert report.capacity_pct == pytest.approx(56.3)
    if mode == "hot":
        assert report.peak_temp_c is not None and report.peak_temp_c >= 60


def test_battery_trend_across_sessions() -> None:
    reps = [
        ("2024-03-01", {"capacity_pct": 90.0, "cycle_count": 400, "verdict": "ok"}),
        ("2024-03-05", {"capacity_pct": 88.0, "cycle_count": 440, "verdict": "ok"}),
        ("2024-03-09", {"capacity_pct": 86.0, "cycle_count": 480, "verdict": "ok"}),
    ]
    trend = battery.trend(reps)
    assert trend["capacity_change_pct"] == -4.0
    assert trend["fade_per_100"] == 5.0
    assert len(trend["sessions"]) == 3
