"""Upload windows: the station-local times of day when uploads may run (`[sync] windows`).

A window is "HH:MM-HH:MM" and may wrap midnight; no windows means always. Windows are times of
day on the station's own clock, so the wall clock is their only measure (unlike backoffs and the
bandwidth cap, which are measured on the monotonic clock). Pure: no clock is read here, the
caller passes the local time.
"""

from __future__ import annotations

from datetime import datetime


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def in_window(windows: tuple[str, ...], local: datetime) -> bool:
    """Whether uploads may run at this station-local time; a window may wrap midnight."""
    if not windows:
        return True
    now = local.hour * 60 + local.minute
    for window in windows:
        start_text, end_text = window.split("-")
        start, end = _minutes(start_text), _minutes(end_text)
        if start <= end:
            if start <= now < end:
                return True
        elif now >= start or now < end:
            return True
    return False
