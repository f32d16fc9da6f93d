"""The CLI's words, times and sizes for people (agent.cli.words, agent.core.zones).

A stored UTC time is shown in the station's zone with the zone named; `--since` is read in that
zone; the doctor's texts with values in them are said in Chinese from the health rules' own
templates, and hostile values in them neither break nor slow that down; English is left exactly
as written; a table aligns Chinese text by display width.
"""

# ruff: noqa: RUF001 - the Chinese output is asserted with its own full-width punctuation

from __future__ import annotations

import dataclasses
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli import words
from agent.cli.output import table
from agent.core.config import Config
from agent.core.zones import parse_utc, stamp, zone_name
from agent.health import installation, station
from agent.reporting.times import parse_since


def _config(language: str, zone: str) -> Config:
    base = Config()
    return dataclasses.replace(
        base, station=dataclasses.replace(base.station, language=language, timezone=zone)
    )


@pytest.fixture
def chinese() -> Iterator[None]:
    words.speak(_config("zh_CN", "Asia/Shanghai"), {})
    yield
    words.speak(_config("en", "UTC"), {})


@pytest.fixture
def english() -> Iterator[None]:
    words.speak(_config("en", "Asia/Shanghai"), {})
    yield
    words.speak(_config("en", "UTC"), {})


def test_a_stored_time_is_shown_in_the_station_zone_with_the_zone_named(chinese: None) -> None:
    assert words.when("2026-12-07T14:52:01.123+00:00") == "2026-12-07 22:52:01 CST"
    assert words.when("2026-12-07T14:52:01Z") == "2026-12-07 22:52:01 CST"
    assert words.when("") == "-" and words.when(None, empty="") == ""
    assert words.when("not a time\x1b[2J") == "not a time\\u001b[2J"  # escaped, not parsed


def test_a_zone_without_an_abbreviation_is_named_by_its_offset() -> None:
    moment = parse_utc("2026-12-07T12:00:00+00:00")
    assert moment is not None
    assert stamp(moment, ZoneInfo("Asia/Dubai")) == "2026-12-07 16:00:00 +04:00"
    assert stamp(moment, ZoneInfo("Asia/Kolkata"), seconds=False) == "2026-12-07 17:30 IST"
    assert zone_name(moment) == "UTC"


def test_since_is_read_in_the_station_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    assert parse_since("2026-12-07T08:00", shanghai) == "2026-12-07T00:00:00.000+00:00"
    assert parse_since("2026-12-07", shanghai) == "2026-12-06T16:00:00.000+00:00"
    # A zone given in the text wins over the station's.
    assert parse_since("2026-12-07T08:00+00:00", shanghai) == "2026-12-07T08:00:00.000+00:00"
    # New York's clocks went back on 2026-11-01: the offset of the day is used (-05:00).
    assert parse_since("2026-12-07", ZoneInfo("America/New_York")).startswith("2026-12-07T05:00")


def test_doctor_texts_with_values_are_said_from_their_templates(chinese: None) -> None:
    key = station.key_file(station.KeyFile(path=Path("/srv/k"), mode=None))
    assert key is not None
    assert words.say(key.detail, (station.NO_KEY,)) == "/srv/k 尚无本站密钥"
    refused = station.REFUSED.format(
        count=2, hours=24.0, at="2026-12-07T14:00:00.000+00:00", identity="X1", reason="no"
    )
    assert words.say(refused, (station.REFUSED,)) == (
        "最近 24.0 小时内拒绝了 2 个设备；最近一次 2026-12-07 22:00:00 CST：X1：no"
    )
    # A detail inside a detail; the more specific template first, whatever the order given.
    low = station.staging(station.Staging(Path("/srv"), 2 << 30, 100 << 30, 1 << 30))
    said = words.say(low.detail, (station.SPACE, station.LITTLE_ROOM))
    assert said == "/srv：剩余 2.0 GiB，保留 1.0 GiB：磁盘剩余不足 10 %"
    # A template of another check is not tried: "... is ..." stays as written.
    assert words.say("off (tsa_url is not set)", ()) == "off (tsa_url is not set)"
    fixes = "; ".join([station.AS_SERVICE_USER, "chmod 600 /srv/k"])
    assert (
        words.say(fixes) == "以服务用户运行：sudo -u dockagent dockagent doctor; chmod 600 /srv/k"
    )


def test_english_is_left_exactly_as_written(english: None) -> None:
    text = installation.SERVICE_STATE.format(name="dockagent.service", state="failed")
    assert words.say(text, (installation.SERVICE_STATE,)) == text
    assert words.when("2026-12-07T14:52:01+00:00") == "2026-12-07 22:52:01 CST"


_TEMPLATES = (
    station.REFUSED,
    station.OLDEST_UNCONFIRMED,
    station.NO_ROOM,
    station.SPACE,
    installation.SERVICE_STATE_SAYING,
    installation.SERVICE_STATE,
)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.text(max_size=200), min_size=5, max_size=5),
    template=st.sampled_from(_TEMPLATES),
)
def test_hostile_values_in_a_template_never_break_the_saying(
    values: list[str], template: str
) -> None:
    words.speak(_config("zh_CN", "Asia/Shanghai"), {})
    try:
        names = ["count", "hours", "at", "identity", "reason", "file_id", "serial", "state",
                 "detail", "where", "free", "reserve", "name", "status"]  # fmt: skip
        filled = template.format(**dict(zip(names, values * 3, strict=False)))
        started = time.monotonic()
        assert isinstance(words.say(filled, _TEMPLATES), str)
        assert time.monotonic() - started < 1
    finally:
        words.speak(_config("en", "UTC"), {})


def test_a_huge_text_is_shown_as_written_at_once(chinese: None) -> None:
    huge = station.SPACE.format(where="/" + "x; is " * 200_000, free="1 B", reserve="2 B")
    started = time.monotonic()
    assert words.say(huge, _TEMPLATES) == huge
    assert time.monotonic() - started < 0.5
    # Just under the bound, built to make the templates' patterns try every split: quick.
    for near in (
        ("a is b; " * 300)[:2000],
        ("1 device(s) refused in the last " + "2 h; latest :" * 2)[:60] * 33,
        "station clock " + "x: " * 660,
        "is " * 660,
    ):
        started = time.monotonic()
        words.say(near, _TEMPLATES)
        assert time.monotonic() - started < 0.5, near[:80]


def _display(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def test_a_table_aligns_chinese_names_by_display_width(chinese: None) -> None:
    text = table(
        [("王小明", "东城分局", "1"), ("Li Hua", "West", "2"), ("欧阳娜娜娜", "-", "3")],
        [words._("name"), words._("unit"), words._("id")],
    )
    lines = text.splitlines()
    assert lines[0].startswith("姓名")
    for column, cell in ((1, ("单位", "东城分局", "West", "-")), (2, ("编号", "1", "2", "3"))):
        starts = {
            _display(line[: line.index(value)]) for line, value in zip(lines, cell, strict=True)
        }
        assert len(starts) == 1, (column, lines)
