"""The station's clocks: the wall clock for timestamps, and clocks a wall-clock step cannot move.

now()/utc_now() are the wall clock (CLOCK_REALTIME): what records keep and people read. It can
be stepped by hours or days (by hand, from a wrong RTC, by NTP), so a decision that waits uses
monotonic() (retry backoff) and one that destroys after a wait uses boottime() within one
clock_epoch() (the purge grace, agent.ingest.policy). JumpWatch notices steps. This module imports
nothing of the agent, decides nothing and logs nothing: callers log `clock.jumped`.

The wall clock is the one install() was given, and this module reads no environment: only the
composition root (agent.cli.main) installs a WallClock with a test offset file, and only when the
test hooks are armed (agent.core.testhooks; the daemon's upload loop logs `clock.offset_injected`).
Such a clock adds the seconds written in that file (a float) to the wall clock. The file is looked
at (one stat) at most every 0.5 s and re-read when it changed, so a test can step a running
daemon's wall clock; monotonic() and boottime() stay untouched.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# A wall clock that moved this much more (or less) than the monotonic clock between two looks
# was stepped: NTP slews at most 500 ppm (adjtimex(2)), a few milliseconds between looks.
JUMP_THRESHOLD_S = 5.0
_OFFSET_CHECK_S = 0.5
# An offset file holds one float; more than this is not one, and an offset past a century would
# overflow datetime arithmetic near its ends rather than test anything.
_OFFSET_MAX_BYTES = 64
_OFFSET_MAX_S = 100 * 366 * 86400.0
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


class WallClock:
    """The station's wall clock; with an offset file (tests only), shifted by its seconds."""

    def __init__(self, offset_file: str = "") -> None:
        self.path = offset_file
        self.lock = threading.Lock()
        self.seconds = 0.0
        self.seen: tuple[int, int, int] | None = None
        self.next_check = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset())

    def offset(self) -> float:
        if not self.path:
            return 0.0
        with self.lock:
            now = time.monotonic()
            if now >= self.next_check:
                self.next_check = now + _OFFSET_CHECK_S
                self._refresh()
            return self.seconds

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if key == self.seen:
                return
            with open(self.path, encoding="ascii") as fh:
                seconds = float(fh.read(_OFFSET_MAX_BYTES).strip())
            if not abs(seconds) <= _OFFSET_MAX_S:  # also NaN
                return
            self.seconds, self.seen = seconds, key
        except (OSError, ValueError):
            return  # missing or half-written: keep the last value, look again next time


_clock = WallClock()


def install(clock: WallClock) -> None:
    """Make `clock` this process's wall clock (the composition root does, once, at start)."""
    global _clock  # noqa: PLW0603 - the station's clock is process-wide by nature
    _clock = clock


def injected_offset_file() -> str:
    """The test offset file of the installed clock (the daemon warns about it), else ""."""
    return _clock.path


def now() -> datetime:
    """The station's wall clock, aware, in UTC."""
    return _clock.now()


def iso(moment: datetime) -> str:
    """The station's timestamp format: UTC ISO 8601 with milliseconds (compares as text)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def utc_now() -> str:
    return iso(now())


def monotonic() -> float:
    """Seconds on CLOCK_MONOTONIC: for waits within this process."""
    return time.monotonic()


def boottime() -> float:
    """Seconds since boot on CLOCK_BOOTTIME (clock_gettime(2)): like CLOCK_MONOTONIC, but it
    also counts suspend and it cannot be set; it restarts from zero at every boot."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _read_boot_id() -> str | None:
    # random(4): boot_id is a random UUID chosen anew at each boot. The service's sandbox
    # (ProcSubset=pid) hides /proc/sys: then this process's own epoch stands in for it.
    try:
        with open(_BOOT_ID, encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return text or None


_BOOT = _read_boot_id()
_EPOCH = f"boot:{_BOOT}" if _BOOT else f"process:{uuid.uuid4().hex}"


def clock_epoch() -> str:
    """Whose boottime() a stamp is on: `boot:<boot id>`, or `process:<random id>` where the boot
    id cannot be read. Equal epochs are the same boot; two different `boot:` epochs are
    different boots; anything else may or may not be."""
    return _EPOCH


@dataclass(frozen=True)
class Stamp:
    """One moment on the wall clock and on the boot clock, taken together."""

    wall: str
    epoch: str
    boottime_s: float


def stamp() -> Stamp:
    return Stamp(utc_now(), clock_epoch(), boottime())


# ---- jumps -----------------------------------------------------------------------------------

_jumps_lock = threading.Lock()
_jumps_seen = 0


def jump_seen() -> bool:
    """Whether any JumpWatch of this process has seen the wall clock step."""
    with _jumps_lock:
        return _jumps_seen > 0


class JumpWatch:
    """Compares how far the wall clock moved with how far the monotonic clock moved."""

    def __init__(self, threshold_s: float = JUMP_THRESHOLD_S) -> None:
        self.threshold_s = threshold_s
        self.last_wall = now()
        self.last_mono = monotonic()

    def check(self) -> tuple[float, datetime, datetime] | None:
        """(seconds the wall clock stepped, wall time before, after) when it stepped since the
        last check, else None."""
        wall, mono = now(), monotonic()
        before = self.last_wall + timedelta(seconds=mono - self.last_mono)
        step = (wall - before).total_seconds()
        self.last_wall, self.last_mono = wall, mono
        if abs(step) <= self.threshold_s:
            return None
        global _jumps_seen  # noqa: PLW0603 - the station's clock is process-wide by nature
        with _jumps_lock:
            _jumps_seen += 1
        return step, before, wall
