"""The station's time zone and how a time is written on the screen, with the zone named.

Reads /etc/localtime's link (the system's zone) when no zone is configured; nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The zones China's clocks keep (tzdata's "backward" names too): Beijing time, UTC+8.
BEIJING = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "Asia/Urumqi", "PRC"})
_ZONEINFO = "/zoneinfo/"


def station_zone(configured: str) -> ZoneInfo:
    """The configured zone, else the system's (/etc/localtime's link into zoneinfo), else UTC."""
    name = configured or _system_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _system_zone() -> str:
    target = os.path.realpath("/etc/localtime")
    _, found, name = target.partition(_ZONEINFO)
    return name if found else "UTC"


def zone_label(zone: ZoneInfo, _: Callable[[str], str]) -> str:
    """The zone as people at the station name it: "Beijing time" for China's, else its key."""
    if zone.key in BEIJING:
        return _("Beijing time")
    return zone.key


def parse_utc(text: str | None) -> datetime | None:
    """A station UTC text of the store ("2026-12-07T12:00:00.123456Z" and the like)."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text[:40].replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def clock(moment: datetime, zone: ZoneInfo) -> str:
    """HH:MM:SS in the station's zone."""
    return moment.astimezone(zone).strftime("%H:%M:%S")


def day_and_clock(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
