"""The times reports speak in: the station's UTC text, `--since`, hours between two instants.

Station times are UTC text comparable as strings (as the store keeps them); a `--since` given by
a supervisor is in the station's zone unless it names one. Pure functions: no store, no clock read.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo

from agent.core.errors import UsageError
from agent.health import clock

# What `ledger` and `report compliance` cover when asked neither --since nor --all: the last
# week, station-local days. Everything ever docked grows with the station's history (a year is
# 18,000 sessions and 900,000 files): read in full only when asked for.
RECENT_DAYS = 7


def window(
    since_text: str | None, everything: bool, zone: tzinfo | None, now: datetime
) -> tuple[str | None, date | None]:
    """(the UTC text to read from, or None for everything; the station-local first day of the
    default window when it applies, else None)."""
    if since_text:
        return parse_since(since_text, zone), None
    if everything:
        return None, None
    local = now.astimezone(zone) if zone is not None else now.astimezone()
    first = local.date() - timedelta(days=RECENT_DAYS - 1)
    # That day's start, read as a supervisor's `--since YYYY-MM-DD` is.
    return parse_since(first.isoformat(), zone), first


def iso_utc(instant: datetime) -> str:
    """The station's time format (ingest.utc_now): comparable as text."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_since(text: str, zone: tzinfo | None = None) -> str:
    """--since: a date or a date and time, in the station's zone (`zone`, [station] timezone;
    None: the system's) unless the text names one; as UTC text."""
    try:
        if len(text) == 10:
            value = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(problem=f"--since {text!r}: give YYYY-MM-DD or YYYY-MM-DDThh:mm") from exc
    if value.tzinfo is None:
        # The zone the CLI shows its times in, so what is typed and what is shown agree.
        value = value.astimezone() if zone is None else value.replace(tzinfo=zone)
    return iso_utc(value)


def instant(text: str | None) -> datetime | None:
    """A stored station time as an instant; None when absent or unreadable."""
    if not text:
        return None
    try:
        return clock.parse_station_time(text)
    except ValueError:
        return None


def hours(seconds: float) -> float:
    """Seconds as hours, to the hundredth a report shows."""
    return round(seconds / 3600, 2)
