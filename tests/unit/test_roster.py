"""The roster CSV parser (agent.reporting.roster) on hostile bytes: it answers every input with
rows, named problems or RosterUnreadable, within a time bound; a good roster reads back the same
in each encoding a station meets."""

from __future__ import annotations

import codecs
import contextlib
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.reporting import roster

PROPERTY = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
BUDGET_S = 2.0  # for a file at the size bound

SERIAL = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=1, max_size=32)
BADGE = st.text(alphabet="0123456789", min_size=1, max_size=12)
# Names as a unit writes them: Chinese (GBK has them) and Latin letters, spaces inside.
NAME = st.text(alphabet="张王李赵刘陈杨黄周吴警员东城分局派出所ABCxyz ", max_size=20).map(str.strip)
UNIT = st.text(alphabet="0123456789", max_size=12)


def _row_text(cells: tuple[str, ...]) -> str:
    return ",".join(f'"{c}"' if "," in c else c for c in cells) + "\r\n"


@PROPERTY
@given(st.binary(max_size=4000))
def test_any_bytes_give_rows_problems_or_unreadable(data: bytes) -> None:
    try:
        parsed = roster.parse(data)
    except roster.RosterUnreadable as exc:
        assert str(exc)
        return
    assert bool(parsed.rows) != bool(parsed.problems)  # all good, or nothing and why
    for problem in parsed.problems:
        assert problem.startswith(("row ", "the file lists")) and "\n" not in problem


@PROPERTY
@given(
    st.lists(
        st.tuples(SERIAL, BADGE, NAME, UNIT, NAME),
        min_size=1,
        max_size=40,
        unique_by=lambda r: r[0],
    ),
    st.sampled_from([("utf-8-sig", "UTF-8 with BOM"), ("utf-8", "UTF-8"), ("gbk", "GBK")]),
)
def test_a_good_roster_reads_back_in_every_encoding(
    cameras: list[tuple[str, str, str, str, str]], encoding: tuple[str, str]
) -> None:
    codec, said = encoding
    data = ("serial,badge,name,unit,unit name\r\n" + "".join(map(_row_text, cameras))).encode(codec)
    parsed = roster.parse(data)
    assert parsed.problems == ()
    assert parsed.encoding == said or (said == "GBK" and data.isascii())
    assert [
        (r.serial, r.officer_id, r.officer_name, r.unit_id, r.unit_name) for r in parsed.rows
    ] == cameras
    assert [r.line for r in parsed.rows] == list(range(2, len(cameras) + 2))


@PROPERTY
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=2))
def test_a_file_at_the_size_bound_is_judged_in_bounded_time(chunk: bytes, shape: int) -> None:
    line = chunk.replace(b"\n", b"").replace(b"\r", b"")[:100] or b"x"
    if shape == 0:  # many short lines: row limit or row problems
        data = (line + b"\r\n") * (roster.MAX_BYTES // (len(line) + 2))
    elif shape == 1:  # one endless line
        data = line * (roster.MAX_BYTES // len(line))
    else:  # an endless quoted field across lines
        data = b'CAM1,"' + (line + b"\n") * (roster.MAX_BYTES // (len(line) + 1) - 1)
    data = data[: roster.MAX_BYTES]
    started = time.monotonic()
    with contextlib.suppress(roster.RosterUnreadable):
        roster.parse(data)
    assert time.monotonic() - started < BUDGET_S


def test_over_the_size_bound_is_unreadable_before_decoding() -> None:
    data = b"\xff" * (roster.MAX_BYTES + 1)  # not UTF-8, not GBK: the size is said first
    try:
        roster.parse(data)
    except roster.RosterUnreadable as exc:
        assert "larger than" in str(exc)
    else:
        raise AssertionError("a file over the bound was parsed")


def test_utf16_is_named_not_garbled() -> None:
    data = codecs.BOM_UTF16_LE + "CAM1,100001\r\n".encode("utf-16-le")
    try:
        roster.parse(data)
    except roster.RosterUnreadable as exc:
        assert "UTF-16" in str(exc)
    else:
        raise AssertionError("UTF-16 was parsed")


def test_a_broken_quote_is_a_named_row_not_a_crash() -> None:
    parsed = roster.parse(b'CAM1,100001,"abc"def,1,x\r\nCAM2,100002\r\n')
    assert parsed.rows == ()
    assert parsed.problems and parsed.problems[0].startswith("row 1: not CSV")


def test_the_largest_roster_accepted_is_parsed_in_bounded_time() -> None:
    good = "".join(
        f"CAM{i:05d},{100000 + i},警员{i}号,110101,东城分局第{i % 9}派出所\r\n"
        for i in range(roster.MAX_ROWS)
    ).encode("gbk")
    assert len(good) <= roster.MAX_BYTES
    started = time.monotonic()
    parsed = roster.parse(good)
    assert len(parsed.rows) == roster.MAX_ROWS and parsed.encoding == "GBK"
    bad = good.replace(b"CAM", b"CA/")
    parsed = roster.parse(bad)
    assert len(parsed.problems) == roster.MAX_ROWS and parsed.rows == ()
    assert time.monotonic() - started < 2 * BUDGET_S
    with_one_more = good + b"CAMX,1\r\n"
    try:
        roster.parse(with_one_more)
    except roster.RosterUnreadable as exc:
        assert f"more than {roster.MAX_ROWS} rows" in str(exc)
    else:
        raise AssertionError("a roster over the row bound was parsed")
