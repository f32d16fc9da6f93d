"""The unit's camera roster as a CSV file: parsed and checked row by row before anything is
written.

Columns, in this order: camera serial, officer badge number, officer name, unit number, unit
name (the fields of a recorder's own device record, agent.devices.dialects.DeviceRecord). A
first row naming the columns is recognised and skipped. The file is hostile input: its size and
line length are bounded before it is decoded, its encoding is detected (UTF-8 with or without a
BOM, or GBK as Excel and WPS save a CSV on a Chinese Windows) and named, never guessed. Every
bad row is reported with its line number; nothing here touches the store.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from dataclasses import dataclass

from agent.core.model import SERIAL_PATTERN, display_name

MAX_BYTES = 1024 * 1024  # a roster of thousands of cameras is a few hundred KiB
MAX_LINE = 1024  # characters of one line; a row of five short fields is far below
MAX_ROWS = 10_000
MAX_NAME = 64  # characters of an officer's or a unit's name
BADGE_PATTERN = re.compile(r"[A-Za-z0-9-]{1,32}")  # as `dockagent assign` takes it
UNIT_PATTERN = re.compile(r"[A-Za-z0-9-]{0,32}")
COLUMNS = ("serial", "officer_id", "officer_name", "unit_id", "unit_name")
# First cells that make the first row a header (lower-cased, spaces removed).
_HEADER_FIRST = {
    "serial",
    "serialnumber",
    "cameraserial",
    "camera",
    "序列号",
    "设备序列号",
    "设备编号",
    "产品序号",
    "记录仪编号",
    "执法记录仪编号",
}


@dataclass(frozen=True, slots=True)
class RosterRow:
    """One camera of the roster and the officer it is issued to, checked."""

    line: int
    serial: str
    officer_id: str
    officer_name: str
    unit_id: str
    unit_name: str


@dataclass(frozen=True, slots=True)
class Roster:
    """A parsed roster: its rows if all were good, else one problem line per bad row."""

    encoding: str
    rows: tuple[RosterRow, ...]
    problems: tuple[str, ...]


class RosterUnreadable(ValueError):
    """The file as a whole cannot be a roster (size, encoding, line length); str() says why."""


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name) of the file's bytes: UTF-8 with BOM, UTF-8, or GBK, each strictly."""
    if len(data) > MAX_BYTES:
        raise RosterUnreadable(f"the file is larger than {MAX_BYTES} bytes")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise RosterUnreadable(
            "the file is UTF-16 (Excel's 'Unicode text'); save it as 'CSV UTF-8' instead"
        )
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "UTF-8 with BOM"
        except UnicodeDecodeError as exc:
            raise RosterUnreadable(f"it starts with a UTF-8 BOM but is not UTF-8: {exc}") from exc
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("gbk"), "GBK"
        except UnicodeDecodeError:
            raise RosterUnreadable(
                "the file is neither UTF-8 nor GBK (first byte not UTF-8 at offset "
                f"{utf8_error.start}); save it as 'CSV UTF-8'"
            ) from None


def _check_lines(text: str) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE:
            raise RosterUnreadable(f"line {number} is longer than {MAX_LINE} characters")
        if "\x00" in line:
            raise RosterUnreadable(f"line {number} holds a NUL character")
        if number > MAX_ROWS + 1:  # a header line besides the rows
            raise RosterUnreadable(f"the file has more than {MAX_ROWS} rows")


def _name_problem(what: str, value: str) -> str | None:
    if len(value) > MAX_NAME:
        return f"{what} is longer than {MAX_NAME} characters"
    if any(unicodedata.category(c).startswith("C") for c in value):
        return f"{what} {display_name(value)!r} holds a control character"
    return None


def row_problems(cells: list[str]) -> list[str]:
    if len(cells) < 2 or len(cells) > len(COLUMNS):
        return [f"{len(cells)} columns; expected {len(COLUMNS)}: {', '.join(COLUMNS)}"]
    serial, badge, name, unit, unit_name = (cells + [""] * len(COLUMNS))[: len(COLUMNS)]
    problems = []
    if not SERIAL_PATTERN.fullmatch(serial):
        problems.append(f"{display_name(serial)!r} is not a camera serial (1-32 of A-Z a-z 0-9 -)")
    if not BADGE_PATTERN.fullmatch(badge):
        problems.append(f"{display_name(badge)!r} is not a badge number (1-32 of A-Z a-z 0-9 -)")
    if not UNIT_PATTERN.fullmatch(unit):
        problems.append(f"{display_name(unit)!r} is not a unit number (0-32 of A-Z a-z 0-9 -)")
    for what, value in (("officer name", name), ("unit name", unit_name)):
        problem = _name_problem(what, value)
        if problem:
            problems.append(problem)
    return problems


def _is_header(cells: list[str]) -> bool:
    return bool(cells) and cells[0].replace(" ", "").lower() in _HEADER_FIRST


def parse_text(text: str, encoding: str = "UTF-8") -> Roster:
    """The roster in `text`; problems name the file's line of each bad row."""
    _check_lines(text)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[RosterRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    first = True
    counted = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"row {reader.line_num}: not CSV: {exc}")
            break  # the reader cannot resynchronise after a broken quote
        cells = [c.strip() for c in record]
        if first and _is_header(cells):
            first = False
            continue
        first = False
        if not any(cells):
            continue  # a blank line (a spreadsheet's trailing rows)
        line = reader.line_num
        counted += 1
        if counted > MAX_ROWS:
            raise RosterUnreadable(f"the file has more than {MAX_ROWS} rows")
        found = row_problems(cells)
        serial = cells[0]
        if not found and serial in seen:
            found = [f"camera {serial} is listed twice (also row {seen[serial]})"]
        if found:
            problems.append(f"row {line}: " + "; ".join(found))
            continue
        seen[serial] = line
        padded = (cells + [""] * len(COLUMNS))[: len(COLUMNS)]
        rows.append(RosterRow(line, *padded))
    if not rows and not problems:
        problems.append("the file lists no camera")
    return Roster(encoding, tuple(rows) if not problems else (), tuple(problems))


def parse(data: bytes) -> Roster:
    """The roster in a file's bytes. Raises RosterUnreadable when the file as a whole is not
    one (too large, undecodable, an overlong line)."""
    text, encoding = decode(data)
    return parse_text(text, encoding)
