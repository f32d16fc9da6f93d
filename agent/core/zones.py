"""The station's time zone, and a stored station time written in it with the zone named.

The bay screen, the reports' `--since` and every time the CLI prints for a person use this one
zone ([station] timezone; empty: the system's, /etc/localtime's link into zoneinfo), so what a
supervisor types and what the station shows agree. Reads that link when no zone is configured;
nothing else: no store, no clock, no environment.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONEINFO = "/zoneinfo/"
# A stored time is short ISO 8601 text; anything longer is not one of ours (hostile input
# is cut before it is parsed).
_MAX_TIME_TEXT = 40


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


def parse_utc(text: str | None) -> datetime | None:
    """A station UTC text of the store ("2026-12-07T12:00:00.123456Z" and the like)."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text[:_MAX_TIME_TEXT].replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def zone_name(moment: datetime) -> str:
    """The zone of an aware time as tzdata abbreviates it (CST, CET, UTC), or its offset
    (+08:00) where the abbreviation is only a number ("+08") or absent."""
    abbreviation = moment.strftime("%Z")
    if abbreviation.isalpha():
        return abbreviation
    offset = moment.strftime("%z")  # +0800
    return f"{offset[:3]}:{offset[3:]}" if len(offset) == 5 else "UTC"


def stamp(moment: datetime, zone: ZoneInfo, *, seconds: bool = True) -> str:
    """The moment in `zone`, the zone named: "2026-12-07 22:52:01 CST"."""
    local = moment.astimezone(zone)
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{shown} {zone_name(local)}"
