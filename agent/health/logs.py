"""SYSTEM.LOG parsed into events (camera-layout.md), and the safe tail read of a camera log.

A camera log is hostile, possibly garbled input: malformed lines and unknown events are
counted and a sample kept (escaped), never fatal, and nothing here raises on content. Text
kept from a log goes through display_name() and is cut short; no log line is ever written to
our own logs.

Time and memory are bounded whatever the camera wrote: at most LOG_READ_LIMIT bytes of a log
are read, a line is held to at most MAX_LINE_BYTES (the rest of a longer line is dropped as it
is read, and the line counted as malformed), every step over a line is linear in its length (no
backtracking regular expression meets a field), and what is kept of a parse is capped:
MAX_EVENTS kept events, UNKNOWN_SAMPLE unknown ones, MAX_UNKNOWN_KINDS distinct unknown kinds,
each event's text cut to MAX_LINE characters and its fields to MAX_FIELDS of MAX_VALUE. So what a
dock may store of one log is at most 1,020 events of ~2 KiB, whatever the camera wrote.
"""

from __future__ import annotations

import heapq
import os
import re
from collections import deque
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
# Bytes of one line looked at; a camera writes lines of well under 200 bytes. A longer line is
# cut to MAX_LINE_BYTES + 1 bytes as it is read (so its length still says it was longer) and
# is counted as malformed, never parsed.
MAX_LINE_BYTES = 4096
MAX_LINE = 512  # characters of a line kept as text
# Events held from one parse: the newest MAX_EVENTS the caller keeps (a log's tail holds
# ~100,000 lines; the clock needs the last USB_CONNECT and TIME_SET, which are the newest).
MAX_EVENTS = 1000
UNKNOWN_SAMPLE = 20  # the newest unknown events held as a sample; all are counted
MAX_UNKNOWN_KINDS = 32  # distinct unknown event names counted by name; the rest together
MAX_KIND = 64  # characters of an unknown event's name kept as its kind
# Fields kept of one event: at most MAX_FIELDS keys of MAX_KEY characters (longer keys are
# dropped), values cut to MAX_VALUE characters; camera-layout.md's events have one or two.
MAX_FIELDS = 8
MAX_KEY = 32
MAX_VALUE = 128
_CHUNK = 64 << 10  # bytes read at a time from a camera log
_SAMPLES = 5

# Linear: anchored, no nested or overlapping repetition; only ever meets a capped line.
_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) ([A-Za-z_][A-Za-z0-9_]*)(?: (.*))?$")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # with fullmatch, on one token


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
    overlong: int = 0  # lines longer than MAX_LINE_BYTES (counted in `malformed` too)
    # Unknown events by name, at most MAX_UNKNOWN_KINDS names; the others in unknown_other.
    unknown_kinds: dict[str, int] = field(default_factory=dict)
    unknown_other: int = 0
    events_dropped: int = 0  # kept events beyond MAX_EVENTS / UNKNOWN_SAMPLE, not held

    def summary(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "events": self.event_count,
            "malformed": self.malformed,
            "unknown": self.unknown,
            "head_skipped_bytes": self.head_skipped_bytes,
            "malformed_samples": self.malformed_samples,
            "overlong": self.overlong,
            "unknown_kinds": dict(self.unknown_kinds),
            "unknown_other_kinds": self.unknown_other,
            "events_not_kept": self.events_dropped,
        }

    def count_unknown(self, event: str) -> None:
        self.unknown += 1
        kind = event[:MAX_KIND]
        if kind in self.unknown_kinds:
            self.unknown_kinds[kind] += 1
        elif len(self.unknown_kinds) < MAX_UNKNOWN_KINDS:
            self.unknown_kinds[kind] = 1
        else:
            self.unknown_other += 1


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
    """Lines of a log; a partial first line (when the head was skipped) and CRs dropped.

    A line longer than MAX_LINE_BYTES comes out cut to MAX_LINE_BYTES + 1 bytes: the rest is
    dropped as it is read, so memory stays one chunk and one capped line, and time linear in
    the bytes read (a 4 MiB line without a newline used to be joined chunk by chunk).
    """
    keep = MAX_LINE_BYTES + 1
    pending = b""
    drop_first = bool(head_skipped)
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            stop = len(chunk) if end < 0 else end
            if not drop_first and len(pending) < keep:
                pending += chunk[start : min(stop, start + keep - len(pending))]
            if end < 0:
                break
            if drop_first:
                drop_first = False
            else:
                yield pending.removesuffix(b"\r")
            pending = b""
            start = end + 1
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
    """SYSTEM.LOG as bytes or as lines; every line is counted, and of the events `keep` accepts
    (default all) the newest MAX_EVENTS known and UNKNOWN_SAMPLE unknown ones are held, in log
    order. Time is linear in the bytes given; lines over MAX_LINE_BYTES count as malformed."""
    parsed = ParsedLog(head_skipped_bytes=head_skipped)
    held: deque[LogEvent] = deque(maxlen=MAX_EVENTS)
    sample: deque[LogEvent] = deque(maxlen=UNKNOWN_SAMPLE)
    lines = split_lines(data, head_skipped) if isinstance(data, bytes) else data
    for number, raw in enumerate(lines, start=1):
        parsed.lines += 1
        item = _event(number, raw)
        if item is None:
            _malformed(parsed, raw)
            continue
        parsed.event_count += 1
        if not item.known:
            parsed.count_unknown(item.event)
        if keep is None or keep(item):
            into = held if item.known else sample
            parsed.events_dropped += len(into) == into.maxlen
            into.append(item)
    parsed.events = list(heapq.merge(held, sample, key=lambda e: e.index))
    return parsed


def _event(number: int, raw: bytes) -> LogEvent | None:
    """One line as an event; None when it is malformed (over-long, not UTF-8, no time/name)."""
    if len(raw) > MAX_LINE_BYTES:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    match = _LINE.match(text)
    if not match:
        return None
    try:
        when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    event = match.group(2)
    fields = parse_fields(match.group(3) or "")
    line = display_name(text[:MAX_LINE])[:MAX_LINE]
    return LogEvent(number, when, event, fields, line, event in KNOWN_EVENTS)


def parse_fields(rest: str) -> dict[str, str]:
    """`key=value ...` after the event name, one pass over space-separated tokens, kept
    within MAX_FIELDS / MAX_KEY / MAX_VALUE.

    A value runs up to the next token that starts with `key=` (TIME_SET's times hold a space).
    The regular expression this replaces tried every position with a lazy value and a
    lookahead, quadratic on a long run of letters without `=` (40,000 characters: 6.8 s).
    """
    fields: dict[str, str] = {}
    key = ""
    parts: list[str] = []
    for token in rest.split(" "):
        name, eq, value = token.partition("=")
        if eq and _KEY.fullmatch(name):
            if key:
                _put(fields, key, parts)
            key, parts = name, [value]
        elif key:
            parts.append(token)
    if key:
        _put(fields, key, parts)
    return fields


def _put(fields: dict[str, str], key: str, parts: list[str]) -> None:
    """Keep a field within bounds: what is stored per event stays ~1 KiB (a stored event's
    fields come from a hostile line of up to MAX_LINE_BYTES)."""
    if len(key) <= MAX_KEY and (key in fields or len(fields) < MAX_FIELDS):
        fields[key] = " ".join(parts)[:MAX_VALUE]


def _malformed(parsed: ParsedLog, raw: bytes) -> None:
    parsed.malformed += 1
    parsed.overlong += len(raw) > MAX_LINE_BYTES
    if len(parsed.malformed_samples) < _SAMPLES:
        parsed.malformed_samples.append(display_name(raw[:120]))
