"""SYSTEM.LOG parsed into events (camera-layout.md), and the safe tail read of a camera log.

A camera log is hostile, possibly garbled input: malformed lines and unknown events are
counted and kept (escaped), never fatal, and nothing here raises on content. Text kept from a
log goes through display_name() and is cut short; no log line is ever written to our own logs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent import volume
from agent.model import display_name

KNOWN_EVENTS = frozenset(
    {
        "BOOT",
        "REC_START",
        "REC_STOP",
        "REC_INTERRUPT",
        "LOW_BATTERY",
        "STORAGE_FULL",
        "TIME_SET",
        "FAULT",
        "USB_CONNECT",
    }
)
LOG_READ_LIMIT = 4 << 20  # the tail kept of a log; a camera's month of events is far less
MAX_LINE = 512  # characters of a line kept as text
_SAMPLES = 5

_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) ([A-Za-z_][A-Za-z0-9_]*)(?: (.*))?$")
_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*?)(?= [A-Za-z_][A-Za-z0-9_]*=|$)")


@dataclass(frozen=True)
class LogEvent:
    index: int  # line number in what was read (1-based)
    camera_time: datetime  # camera clock, zone-less
    event: str
    fields: dict[str, str]
    line: str  # the line as text, escaped and cut to MAX_LINE
    known: bool


@dataclass
class ParsedLog:
    events: list[LogEvent] = field(default_factory=list)
    lines: int = 0
    malformed: int = 0
    unknown: int = 0
    head_skipped_bytes: int = 0  # the log was longer than LOG_READ_LIMIT: its start not read
    malformed_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "events": len(self.events),
            "malformed": self.malformed,
            "unknown": self.unknown,
            "head_skipped_bytes": self.head_skipped_bytes,
            "malformed_samples": self.malformed_samples,
        }


def read_tail(root_fd: int, rel: bytes, limit: int = LOG_READ_LIMIT) -> tuple[bytes, int] | None:
    """The last `limit` bytes of a camera file and how many bytes before them were skipped.

    None when the file is absent. Opened through agent.volume (no links, no special files).
    """
    try:
        fd = volume.open_file(root_fd, rel)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - limit)
        chunks: list[bytes] = []
        offset = start
        while offset < size:
            data = os.pread(fd, min(1 << 20, size - offset), offset)
            if not data:
                break
            chunks.append(data)
            offset += len(data)
        return b"".join(chunks), start
    finally:
        os.close(fd)


def split_lines(data: bytes, head_skipped: int) -> Iterator[bytes]:
    """Lines of a log; a partial first line (when the head was skipped) and CRs dropped."""
    lines = data.split(b"\n")
    if head_skipped and lines:
        lines = lines[1:]
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    for line in lines:
        yield line.removesuffix(b"\r")


def parse_system_log(data: bytes, head_skipped: int = 0) -> ParsedLog:
    parsed = ParsedLog(head_skipped_bytes=head_skipped)
    for number, raw in enumerate(split_lines(data, head_skipped), start=1):
        parsed.lines += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            _malformed(parsed, raw)
            continue
        match = _LINE.match(text)
        if not match:
            _malformed(parsed, raw)
            continue
        try:
            when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            _malformed(parsed, raw)
            continue
        event = match.group(2)
        rest = match.group(3) or ""
        fields = {m.group(1): m.group(2) for m in _FIELD.finditer(rest)}
        known = event in KNOWN_EVENTS
        if not known:
            parsed.unknown += 1
        parsed.events.append(
            LogEvent(number, when, event, fields, display_name(text)[:MAX_LINE], known)
        )
    return parsed


def _malformed(parsed: ParsedLog, raw: bytes) -> None:
    parsed.malformed += 1
    if len(parsed.malformed_samples) < _SAMPLES:
        parsed.malformed_samples.append(display_name(raw[:120]))
