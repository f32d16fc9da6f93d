"""Clocks set by a file, and what the station can know of a camera clock that keeps no log.

A profile's ClockSpec (agent.camera.methods) names how a camera's clock is set: `file:generic`
(TIME.TXT, camera-layout.md), `file:novatek-timeset` (TIMESET.txt, real-cameras.md "Clocks"),
`scsi` (set over SCSI by the dialect at unlock, handed in), or `none`. This module writes the
files' text, and, for a camera with no log (no USB_CONNECT to time the dock by), bounds the
drift from the start times the camera wrote in the names of the recordings it made since it
last left the station (names, not FAT mtimes, which some drivers misreport): a recording's
true start lies between that undock and this dock, so

    drift >= (latest camera time) - (this dock)      and      drift <= (earliest) - (last undock)

Those bounds are all the station knows: it never turns them into one number. They prove a
drift only when both lie on the same side of zero (e.g. a camera an hour ahead that recorded
just before it was docked), and they confirm a correction only when they are narrower than the
method's error. Pure functions: nothing here opens a file, and nothing decides a wipe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from agent.camera.methods import ClockSpec
from agent.health import clock

NOVATEK_FORMAT = "%Y.%m.%d %H:%M:%S"  # 19 characters; the firmware takes any separators
# Camera times: FAT keeps even seconds (an end may be up to 1 s late once rounded), names keep
# whole seconds (a start up to 1 s early): the bounds are widened by this much on each side.
SLACK_S = 2


def timeset_text(now: datetime, zone: tzinfo | None) -> bytes:
    """TIMESET.txt: exactly 19 characters, the station's time in the camera's zone.

    The firmware clamps minute 00 to 01 and second 00 to 01 (real-cameras.md): that error is
    the method's and the profile's max_error_s covers it; the station writes the true time.
    """
    return clock.to_wall(now, zone).strftime(NOVATEK_FORMAT).encode()


def clock_file_text(spec: ClockSpec, now: datetime, zone: tzinfo | None) -> bytes:
    """The bytes of the clock file a `file:<format>` method writes."""
    if spec.file_format == "novatek-timeset":
        return timeset_text(now, zone)
    if spec.file_format == "generic":
        return clock.time_file_text(now, zone)
    raise ValueError(f"clock method {spec.method!r} writes no file")


@dataclass(frozen=True)
class Bounds:
    """What a camera's recordings since its last undock say of its drift (camera - station)."""

    low_s: int | None  # the drift is at least this (None: nothing recorded since)
    high_s: int | None  # at most this (None: no undock known, or nothing recorded)
    files: int  # recordings the bounds come from

    @property
    def known(self) -> bool:
        return self.low_s is not None or self.high_s is not None

    def proven(self) -> int | None:
        """The smallest drift the bounds prove, signed; None when they allow no drift at all."""
        if self.low_s is not None and self.low_s > 0:
            return self.low_s
        if self.high_s is not None and self.high_s < 0:
            return self.high_s
        return None

    def within(self, limit_s: int) -> bool | None:
        """True: every drift the bounds allow is within ±limit_s; False: none is; None: both."""
        proven = self.proven()
        if proven is not None and abs(proven) > limit_s:
            return False
        low, high = self.low_s, self.high_s
        if low is not None and high is not None and -limit_s <= low and high <= limit_s:
            return True
        return None

    def describe(self) -> str:
        if not self.known:
            return "no recording since the last undock: drift not bounded"
        low = "?" if self.low_s is None else f"{self.low_s:+d}"
        high = "?" if self.high_s is None else f"{self.high_s:+d}"
        return (
            f"drift between {low} and {high} s (from {self.files} recordings' camera times "
            "since the last undock; the camera keeps no log to time the dock by)"
        )


def drift_bounds(
    camera_times: Iterable[datetime], since: datetime | None, docked_at: datetime
) -> Bounds:
    """Bounds on the drift from aware camera times of recordings made after `since` (the
    station's time of the camera's last undock, None if it never left this station) and
    before `docked_at` (this dock's detection)."""
    earliest: datetime | None = None
    latest: datetime | None = None
    count = 0
    for t in camera_times:
        count += 1
        earliest = t if earliest is None or t < earliest else earliest
        latest = t if latest is None or t > latest else latest
    if earliest is None or latest is None:
        return Bounds(None, None, 0)
    low = math.floor((latest - docked_at).total_seconds()) - SLACK_S
    high = None
    if since is not None:
        high = math.ceil((earliest - since).total_seconds()) + SLACK_S
    return Bounds(low, high, count)


def check_file_correction(
    spec: ClockSpec, still_there: bool, drift_s: int | None, bounds: Bounds
) -> tuple[str, str]:
    """At the dock after the station wrote the clock file: did the camera apply it, and is its
    clock now within the method's error (spec.max_error_s)? (status, detail)

    The file is the firmware's to delete once read: still there means the camera has not
    started since (or ignores it). A measured drift (a log) is allowed the measurement's ± 2 s
    (camera-layout.md) on top of the method's error; bounds only say "did not hold" when they
    prove the clock is further off than that.
    """
    name = spec.path
    limit = spec.max_error_s
    if still_there:
        return (
            "did not take",
            f"{name} is still on the camera: it has not started since the station wrote it, "
            "or its firmware does not read it",
        )
    if drift_s is not None:
        if abs(drift_s) > limit + 2:
            return (
                "did not hold",
                f"the camera read {name}, but its clock is {drift_s:+d} s off again "
                f"(the method's error is at most {limit} s)",
            )
        return "took", f"the camera read {name}; drift now {drift_s:+d} s (within {limit} s)"
    verdict = bounds.within(limit)
    if verdict is False:
        return (
            "did not hold",
            f"the camera read {name}, but {bounds.describe()}: further off than the "
            f"method's {limit} s",
        )
    if verdict is True:
        return "took", f"the camera read {name}; {bounds.describe()}: within {limit} s"
    return (
        "took",
        f"the camera read {name} (it is gone); {bounds.describe()}: not enough to confirm "
        f"the {limit} s the method promises, nothing contradicts it",
    )


def check_scsi_correction(spec: ClockSpec, drift_s: int | None, bounds: Bounds) -> tuple[str, str]:
    """At the dock after the clock was set over SCSI (at once, no read-back in jl-dv16): the
    files recorded since are the only witness (real-cameras.md: verify from file times)."""
    if drift_s is not None:
        ok = abs(drift_s) <= spec.max_error_s + 2
        status = "took" if ok else "did not hold"
        return (
            status,
            f"set over SCSI; drift now {drift_s:+d} s (method error {spec.max_error_s} s)",
        )
    verdict = bounds.within(spec.max_error_s)
    if verdict is False:
        return "did not hold", f"set over SCSI, but {bounds.describe()}"
    return "took", f"set over SCSI; {bounds.describe()}"
