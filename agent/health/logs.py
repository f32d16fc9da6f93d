"""SYSTEM.LOG parsed into events (camera-layout.md), and the safe tail read of a camera log.

A camera log is hostile, possibly garbled input: malformed lines and unknown events are
counted and kept (escaped), never fatal, and nothing here raises on content. Text kept from a
log goes through display_name() and is cut short; no log line is ever written to our own logs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.camera import volume
from agent.core.model import display_name

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
_CHUNK = 64 << 10  # bytes read at a time from a camera log
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
    event_count: int = 0  # events parsed; `events` may hold only those the caller kept

    def summary(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "events": self.event_count,
            "malformed": self.malformed,
            "unknown": self.unknown,
            "head_skipped_bytes": self.head_skipped_bytes,
            "malformed_samples": self.malformed_samples,
        }


class Tail:
    """The last `limit` bytes of a camera file, read line by line in chunks of _CHUNK bytes.

    A camera's logs grow at every dock until the camera rotates them: reading one whole, and
    then splitting it into a list of every line, made the daemon's peak memory at a dock (and
    so its RSS, which the allocator does not give back) grow with the logs' size. lines()
    holds one chunk and one line at a time. OSError may come from lines() as from open().
    """

    def __init__(self, fd: int, limit: int) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.skipped = max(0, self.size - limit)  # bytes before the tail, not read

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def chunks(self) -> Iterator[bytes]:
        offset = self.skipped
        while offset < self.size:
            data = os.pread(self.fd, min(_CHUNK, self.size - offset), offset)
            if not data:
                break
            offset += len(data)
            yield data

    def lines(self) -> Iterator[bytes]:
        return _lines(self.chunks(), self.skipped)


def open_tail(root_fd: int, rel: bytes, limit: int = LOG_READ_LIMIT) -> Tail | None:
    """The tail of a camera file (None when absent), opened through agent.camera.volume (no links,
    no special files); the caller closes it."""
    try:
        fd = volume.open_file(root_fd, rel)
    except FileNotFoundError:
        return None
    try:
        return Tail(fd, limit)
    except BaseException:
        os.close(fd)
        raise


def _lines(chunks: Iterable[bytes], head_skipped: int) -> Iterator[bytes]:
    """Lines of a log; a partial first line (when the head was skipped) and CRs dropped."""
    pending = b""
    drop_first = bool(head_skipped)
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            if drop_first:
                drop_first = False
            else:
                yield pending[start:end].removesuffix(b"\r")
            start = end + 1
        pending = pending[start:]
    if pending and not drop_first:
        yield pending.removesuffix(b"\r")


def split_lines(data: bytes, head_skipped: int) -> Iterator[bytes]:
    """Lines of a log held in memory (see _lines)."""
    return _lines((data,), head_skipped)


def parse_system_log(
    data: bytes | Iterable[bytes],
    head_skipped: int = 0,
    keep: Callable[[LogEvent], bool] | None = None,
) -> ParsedLog:
    """SYSTEM.LOG as bytes or as lines; only the events `keep` accepts are held (default all),
    every one is counted."""
    parsed = ParsedLog(head_skipped_bytes=head_skipped)
    lines = split_lines(data, head_skipped) if isinstance(data, bytes) else data
    for number, raw in enumerate(lines, start=1):
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
        parsed.event_count += 1
        item = LogEvent(number, when, event, fields, display_name(text)[:MAX_LINE], known)
        if keep is None or keep(item):
            parsed.events.append(item)
    return parsed


def _malformed(parsed: ParsedLog, raw: bytes) -> None:
    parsed.malformed += 1
    if len(parsed.malformed_samples) < _SAMPLES:
        parsed.malformed_samples.append(display_name(raw[:120]))
