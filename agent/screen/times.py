"""The station's time zone and how a time is written on the screen, with the zone named.

The zone itself is agent.core.zones' (shared with the CLI); reads nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

# The zone and the parse of a stored time are the station's, shared with the CLI and reports.
from agent.core.zones import parse_utc, station_zone

# The zones China's clocks keep (tzdata's "backward" names too): Beijing time, UTC+8.
BEIJING = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "Asia/Urumqi", "PRC"})
__all__ = ["BEIJING", "clock", "day_and_clock", "parse_utc", "station_zone", "zone_label"]


def zone_label(zone: ZoneInfo, _: Callable[[str], str]) -> str:
    """The zone as people at the station name it: "Beijing time" for China's, else its key."""
    if zone.key in BEIJING:
        return _("Beijing time")
    return zone.key


def clock(moment: datetime, zone: ZoneInfo) -> str:
    """HH:MM:SS in the station's zone."""
    return moment.astimezone(zone).strftime("%H:%M:%S")


def day_and_clock(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
