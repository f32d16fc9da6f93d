"""Checks a key's declaration can name: absolute paths, usable files, time zones, name shapes.

Each takes the value as read and returns the problem in a few words (None: fine); the reader
adds the file, line and key. They look at the file system only to stat a path the key names,
never to create or change anything.
"""

from __future__ import annotations

import os
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_STATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


def absolute_path(value: str) -> str | None:
    return None if os.path.isabs(value) else "must be an absolute path"


def absolute_path_or_empty(value: str) -> str | None:
    return None if not value or os.path.isabs(value) else "must be an absolute path (or empty)"


def existing_file(value: str) -> str | None:
    return None if not value or os.path.isfile(value) else f"{value} is not a readable file"


def private_file(value: str) -> str | None:
    """Keys and tokens: refused while group or others may read them."""
    if value and os.stat(value).st_mode & 0o077:
        return f"{value} is readable by others; run: chmod 600 {value}"
    return None


def time_zone(value: str) -> str | None:
    if not value:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "unknown time zone"
    return None


def station_name(value: str) -> str | None:
    if _STATION_ID.match(value):
        return None
    return "must be 1-64 of A-Z a-z 0-9 . _ - (starting alnum)"


def time_windows(value: tuple[str, ...]) -> str | None:
    bad = [window for window in value if not _WINDOW.match(window)]
    return f"{bad[0]!r} is not HH:MM-HH:MM" if bad else None


def some_profile(value: tuple[str, ...]) -> str | None:
    return None if value else "must name at least one camera profile"


def age_recipients(value: tuple[str, ...]) -> str | None:
    """X25519 age recipients (`age1...`, Bech32): each must parse, none twice. pyrage parses
    them, as it will encrypt to them; a bounded length first, so a hostile file costs nothing."""
    if len(value) > 16:
        return "at most 16 recipients"
    if not value:
        return None
    # Imported only for a station that encrypts: every command reads the configuration, and
    # pyrage's native library is a megabyte of each one's memory.
    from pyrage import RecipientError, x25519  # noqa: PLC0415

    for item in value:
        if len(item) > 100 or not item.startswith("age1"):
            return f"{item[:20]!r} is not an age X25519 recipient (age1...)"
        try:
            x25519.Recipient.from_str(item)
        except (RecipientError, ValueError):
            return f"{item[:20]!r}... is not a valid age X25519 recipient"
    if len(set(value)) != len(value):
        return "names a recipient twice"
    return None
