"""Every parser of camera bytes is total and linear: SYSTEM.LOG, BATTERY.CSV, DEVICE.INF, names.

Hypothesis feeds arbitrary and structured input to each parser: it never raises anything but
its documented error, and what it keeps is bounded whatever the input. Explicit adversarial
inputs of a mebibyte each (the shapes that made a backtracking parser quadratic) must parse
within BUDGET_S_PER_MIB, generous for a loaded machine: the quadratic field regex took hours.
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.camera import deviceinfo, profile
from agent.core.config import HealthConfig
from agent.core.errors import CameraRefused, CameraUnreadable
from agent.core.model import display_name
from agent.custody.staging import staged_name
from agent.health import battery, logs

MIB = 1 << 20
BUDGET_S_PER_MIB = 2.0
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
GENERIC = profile.load("generic")
LIMITS = HealthConfig()
STAMP = "2024-03-10 08:00:00"


def _within_budget(parse: Callable[[bytes], object], data: bytes) -> None:
    """parse(data) takes at most BUDGET_S_PER_MIB per started MiB of data."""
    budget = BUDGET_S_PER_MIB * max(1, -(-len(data) // MIB))
    started = time.process_time()
    parse(data)
    took = time.process_time() - started
    assert took < budget, f"{len(data)} bytes took {took:.2f} s (budget {budget:.1f} s)"


def _fill(line: bytes, total: int = MIB) -> bytes:
    """Lines like `line` up to `total` bytes."""
    return (line + b"\n") * (total // (len(line) + 1))


# ---- SYSTEM.LOG ----------------------------------------------------------------------------

TOKEN = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}=[a-z0-9:=-]{0,6}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_-]{0,8}", fullmatch=True),
    st.sampled_from(["=", " ", "\r", "\t", "\u202e", "\xff", "USB_CONNECT", STAMP]),
)
EVENT = st.sampled_from([*sorted(logs.KNOWN_EVENTS), "SELF_TEST", "X", "9BAD", ""])
LINE = st.builds(
    lambda stamp, event, tokens: f"{stamp} {event} {' '.join(tokens)}".encode(),
    st.sampled_from([STAMP, "2024-13-40 08:00:00", "2024-03-10", ""]),
    EVENT,
    st.lists(TOKEN, max_size=8),
)
LOG_BYTES = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.one_of(LINE, st.binary(max_size=40)), max_size=30).map(b"\n".join),
)


@PROPERTY
@given(LOG_BYTES, st.integers(min_value=0, max_value=3))
def test_system_log_parse_is_total_and_bounded(data: bytes, head_skipped: int) -> None:
    parsed = logs.parse_system_log(data, head_skipped)
    lines = list(logs.split_lines(data, head_skipped))
    assert parsed.lines == len(lines)
    assert parsed.malformed + parsed.event_count == parsed.lines
    assert parsed.unknown == sum(parsed.unknown_kinds.values()) + parsed.unknown_other
    assert len(parsed.unknown_kinds) <= logs.MAX_UNKNOWN_KINDS
    assert len(parsed.malformed_samples) <= 5
    assert len(parsed.events) <= logs.MAX_EVENTS + logs.UNKNOWN_SAMPLE
    assert [e.index for e in parsed.events] == sorted(e.index for e in parsed.events)
    for event in parsed.events:
        assert len(event.line) <= logs.MAX_LINE
        assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in event.line)


@PROPERTY
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=5))
def test_split_lines_cuts_long_lines_and_keeps_the_others(data: bytes, repeat: int) -> None:
    data = data * repeat * 3
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    cap = logs.MAX_LINE_BYTES
    got = list(logs.split_lines(data, 0))
    assert got == [
        line[: cap + 1] if len(line) > cap else line.removesuffix(b"\r") for line in expected
    ]


KEY = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
VALUE = st.text(alphabet="ab09:- ", max_size=12)


@PROPERTY
@given(st.lists(st.tuples(KEY, VALUE), max_size=8))
def test_fields_read_back_as_written(pairs: list[tuple[str, str]]) -> None:
    """A value runs up to the next `key=`, spaces and all (TIME_SET's times hold one)."""
    text = " ".join(f"{k}={v}" for k, v in pairs)
    assert logs.parse_fields(text) == dict(pairs)


@PROPERTY
@given(st.text(alphabet="ab=_ ", max_size=3000))
def test_fields_kept_are_bounded(text: str) -> None:
    fields = logs.parse_fields(text)
    assert len(fields) <= logs.MAX_FIELDS
    assert all(len(k) <= logs.MAX_KEY and len(v) <= logs.MAX_VALUE for k, v in fields.items())


@PROPERTY
@given(
    st.lists(st.sampled_from([*sorted(logs.KNOWN_EVENTS), "SELF_TEST", "X", "EV_"]), max_size=200),
    st.integers(1, 60),
)
def test_unknown_events_are_counted_by_kind_within_bounds(names: list[str], spread: int) -> None:
    data = b"".join(
        f"{STAMP} {name}{i % spread if name not in logs.KNOWN_EVENTS else ''}\n".encode()
        for i, name in enumerate(names)
    )
    parsed = logs.parse_system_log(data)
    unknown = [e for e in parsed.events if not e.known]
    assert parsed.unknown == sum(1 for n in names if n not in logs.KNOWN_EVENTS)
    assert len(unknown) == min(parsed.unknown, logs.UNKNOWN_SAMPLE)
    assert len(parsed.unknown_kinds) <= logs.MAX_UNKNOWN_KINDS


LONG_LOGS = {
    "one line of letters": f"{STAMP} BOOT ".encode() + b"a" * MIB,
    "capped lines of letters": _fill(f"{STAMP} BOOT ".encode() + b"a" * 4000),
    "capped lines of spaced letters": _fill(f"{STAMP} BOOT k=".encode() + b"ab " * 1300),
    "capped lines of keys": _fill(f"{STAMP} FAULT ".encode() + b"a= " * 1300),
    "capped lines of equals": _fill(f"{STAMP} FAULT a".encode() + b"=" * 4000),
    "lines over the cap": _fill(b"x" * 5000),
    "short unknown events": b"".join(
        f"{STAMP} EV{i}\n".encode() for i in range(MIB // len(f"{STAMP} EV00000\n"))
    ),
    "empty lines": b"\n" * (MIB // 2),
    "carriage returns": b"\r" * MIB,
}


@pytest.mark.parametrize("data", LONG_LOGS.values(), ids=LONG_LOGS.keys())
def test_a_mebibyte_of_hostile_log_within_budget(data: bytes) -> None:
    _within_budget(logs.parse_system_log, data)
    parsed = logs.parse_system_log(data)
    assert len(parsed.events) <= logs.MAX_EVENTS + logs.UNKNOWN_SAMPLE


def test_a_long_log_line_is_one_malformed_line() -> None:
    """The regression: 1 MiB of letters after an event name, no `=`, no newline."""
    parsed = logs.parse_system_log(LONG_LOGS["one line of letters"] + f"\n{STAMP} BOOT".encode())
    assert (parsed.lines, parsed.malformed, parsed.overlong, parsed.event_count) == (2, 1, 1, 1)


def test_a_long_log_line_read_from_a_file_within_budget(tmp_path: Path) -> None:
    """The tail reader holds one capped line: a 3 MiB line without a newline is not joined."""
    (tmp_path / "SYSTEM.LOG").write_bytes(b"a" * (3 * MIB) + f"\n{STAMP} USB_CONNECT\n".encode())
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        tail = logs.open_tail(root, b"SYSTEM.LOG")
        assert tail is not None
        with tail:
            started = time.process_time()
            parsed = logs.parse_system_log(tail.lines(), tail.skipped)
            took = time.process_time() - started
    finally:
        os.close(root)
    assert took < 4 * BUDGET_S_PER_MIB
    assert [e.event for e in parsed.events] == ["USB_CONNECT"]
    assert parsed.overlong == 1


# ---- BATTERY.CSV ---------------------------------------------------------------------------

ROW = st.lists(
    st.one_of(st.from_regex(r"-?[0-9]{0,6}(\.[0-9]{0,2})?", fullmatch=True), st.just(STAMP)),
    max_size=10,
).map(lambda parts: ",".join(parts).encode())
BATTERY_BYTES = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.one_of(ROW, st.binary(max_size=30)), max_size=30).map(
        lambda rows: b"\n".join([battery.HEADER.encode(), *rows])
    ),
)


@PROPERTY
@given(BATTERY_BYTES, st.integers(min_value=0, max_value=3))
def test_battery_assess_is_total(data: bytes, head_skipped: int) -> None:
    report = battery.assess(data, LIMITS, head_skipped)
    assert report.valid + report.truncated + report.garbled == report.rows
    assert report.verdict in ("ok", "warning", "bad", "unknown")
    log = battery.parse(data, head_skipped)
    assert len(log.samples) == report.valid


LONG_BATTERY = {
    "one line of digits": battery.HEADER.encode() + b"\n" + b"9" * MIB,
    "capped rows of digits": _fill(f"{STAMP},".encode() + b",".join([b"9" * 580] * 7)),
    "capped rows of commas": _fill(b"," * 4000),
    "lines over the cap": _fill(b"1," * 3000),
    "short garbled rows": _fill(b"\xff,1,2"),
}


@pytest.mark.parametrize("data", LONG_BATTERY.values(), ids=LONG_BATTERY.keys())
def test_a_mebibyte_of_hostile_battery_log_within_budget(data: bytes) -> None:
    _within_budget(lambda d: battery.assess(d, LIMITS), data)


def test_a_long_battery_row_is_one_garbled_row() -> None:
    report = battery.assess(LONG_BATTERY["one line of digits"], LIMITS)
    assert (report.rows, report.valid, report.garbled + report.truncated) == (1, 0, 1)


# ---- DEVICE.INF ----------------------------------------------------------------------------

INFO_LINE = st.one_of(
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(["serial", "SERIAL ", "vendor", "model", "officer_id", "unit", "x"]),
        st.text(max_size=40),
    ),
    st.text(max_size=40),
)
INFO_BYTES = st.one_of(
    st.binary(max_size=500),
    st.lists(INFO_LINE, max_size=10).map(lambda lines: "\n".join(lines).encode("utf-8", "replace")),
)


@PROPERTY
@given(INFO_BYTES)
def test_device_info_parse_refuses_or_answers(data: bytes) -> None:
    try:
        info = deviceinfo.parse_device_info(data, "DEVICE.INF", "/cam")
    except CameraRefused as exc:
        assert len(exc.message) < 400  # a hostile value is quoted cut short
        return
    assert deviceinfo.SERIAL.fullmatch(info.serial)


LONG_INFO = {
    "one long serial": b"serial=" + b"A" * MIB,
    "one long value": b"serial=CAM1\nmodel=" + b"a" * MIB,
    "many lines": _fill(b"serial=CAM1"),
    "no newline or equals": b"a" * MIB,
}


@pytest.mark.parametrize("data", LONG_INFO.values(), ids=LONG_INFO.keys())
def test_a_mebibyte_of_hostile_device_info_within_budget(data: bytes) -> None:
    def parse(raw: bytes) -> None:
        try:
            deviceinfo.parse_device_info(raw, "DEVICE.INF", "/cam")
        except CameraRefused as exc:
            assert len(exc.message) < 400

    _within_budget(parse, data)


def test_a_device_info_over_the_limit_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "DEVICE.INF").write_bytes(b"serial=CAM1\nmodel=" + b"a" * MIB)
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(CameraUnreadable, match="more than the 65536 allowed"):
            deviceinfo.read_device_info(root, GENERIC, str(tmp_path))
    finally:
        os.close(root)


# ---- names ---------------------------------------------------------------------------------


@PROPERTY
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(os.fsencode)))
def test_names_are_classified_shown_and_staged_safely(name: bytes) -> None:
    info = GENERIC.classify(name)
    assert info.stem == name.rpartition(b".")[0] or info.stem == name
    shown = display_name(name)
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in shown)
    staged = staged_name(7, name)
    assert staged.startswith("00000007.") and staged.isascii() and "/" not in staged


LONG_NAMES = {
    "recording-like": b"A" * 32 + b"_" + b"1" * MIB + b"_20240310080000_0001.MP4",
    "officer run": b"CAM1_" + b"a" * MIB,
    "dots": b".a" * (MIB // 2),
    "extensions": b".aaaaaaaa" * (MIB // 9),
    "controls": bytes(range(1, 32)) * (MIB // 31),
    "undecodable": b"\xff\xfe" * (MIB // 2),
}


@pytest.mark.parametrize("name", LONG_NAMES.values(), ids=LONG_NAMES.keys())
def test_a_mebibyte_name_within_budget(name: bytes) -> None:
    """Names on a camera are at most 255 bytes (NAME_MAX); a mebibyte one is still linear."""

    def parse(raw: bytes) -> None:
        GENERIC.classify(raw)
        display_name(raw)
        staged_name(1, raw)

    _within_budget(parse, name)
