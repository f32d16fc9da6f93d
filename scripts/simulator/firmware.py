"""The simulated cameras' firmware at start-up: the clock file the station left is read and gone.

Test and demo tooling only. A test "restarts" a simulated camera after a dock: the firmware of
its layout looks for its clock file at the card root (case-insensitive, as FAT is), sets the
camera's clock from it and deletes it, as the real firmware does (real-cameras.md, "Clocks"):

- novatek-cardv: `TIMESET.txt`, 19 characters `YYYY?MM?DD?HH?MM?SS` (any non-digit separators),
  year clamped to 2010-2050, hour < 1 -> 0, minute < 1 -> 1, second < 1 -> 1.
- generic: `TIME.TXT`, one line `YYYY-MM-DD hh:mm:ss` (camera-layout.md); the camera logs
  TIME_SET, which the caller adds to the next SYSTEM.LOG it simulates.

The clock is set to the file's time at the moment of the restart: a restart long after the
dock leaves the camera behind by the delay, as on a real camera.
"""

from __future__ import annotations

import calendar
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

CLOCK_FILES = {"novatek-cardv": "TIMESET.txt", "generic": "TIME.TXT"}
_DIGITS = (slice(0, 4), slice(5, 7), slice(8, 10), slice(11, 13), slice(14, 16), slice(17, 19))
_SEPARATORS = (4, 7, 10, 13, 16)


@dataclass(frozen=True)
class Restart:
    """What the camera did at start-up: its clock before and after (camera wall time)."""

    clock_offset_s: float  # camera clock minus true time after the start
    old: datetime  # the camera's clock just before it read the file
    new: datetime | None  # the time it set, None when there was no (valid) file
    consumed: bool  # the file was there and is now deleted

    def time_set_line(self) -> str:
        """The SYSTEM.LOG line a generic camera writes when it applied TIME.TXT."""
        if self.new is None:
            return ""
        return (
            f"{self.new:%Y-%m-%d %H:%M:%S} TIME_SET old={self.old:%Y-%m-%dT%H:%M:%S} "
            f"new={self.new:%Y-%m-%dT%H:%M:%S}"
        )


def parse_timeset(data: bytes) -> datetime | None:
    """A Novatek TIMESET.txt as the firmware reads it: the first 19 characters, clamped."""
    text = data[:19].decode("ascii", "replace")
    if len(text) < 19 or any(text[i].isdigit() for i in _SEPARATORS):
        return None
    parts = [text[s] for s in _DIGITS]
    if not all(p.isdigit() for p in parts):
        return None
    year, month, day, hour, minute, second = (int(p) for p in parts)
    year = min(max(year, 2010), 2050)
    month = min(max(month, 1), 12)
    day = min(max(day, 1), calendar.monthrange(year, month)[1])
    hour = min(max(hour, 0), 23)
    minute = min(max(minute, 1), 59)  # the firmware's clamp: minute 00 becomes 01
    second = min(max(second, 1), 59)  # and second 00 becomes 01
    return datetime(year, month, day, hour, minute, second)


def parse_time_txt(data: bytes) -> datetime | None:
    try:
        return datetime.strptime(data.decode("ascii").strip(), "%Y-%m-%d %H:%M:%S")
    except (UnicodeDecodeError, ValueError):
        return None


def _find(root: Path, name: str) -> Path | None:
    for entry in os.listdir(root):
        if entry.casefold() == name.casefold():
            return root / entry
    return None


def restart(root: Path, layout: str, true_now: datetime, clock_offset_s: float) -> Restart:
    """Start the camera at true local time `true_now`, its clock `clock_offset_s` off.

    Reads and deletes the layout's clock file at `root` (a directory or a read-write mount of
    the camera's image) and returns the camera's clock offset afterwards.
    """
    old = (true_now + _seconds(clock_offset_s)).replace(microsecond=0)
    name = CLOCK_FILES.get(layout)
    path = _find(root, name) if name else None
    if path is None:
        return Restart(clock_offset_s, old, None, consumed=False)
    data = path.read_bytes()
    path.unlink()
    new = parse_timeset(data) if layout == "novatek-cardv" else parse_time_txt(data)
    if new is None:
        return Restart(clock_offset_s, old, None, consumed=True)
    return Restart((new - true_now).total_seconds(), old, new, consumed=True)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
