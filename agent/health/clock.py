"""Camera clock drift against the station clock, the station clock's own state, and correction.

Drift is the camera's USB_CONNECT time (its own clock, logged the moment it is docked) minus the
station's clock at the moment the dock was detected. The station's state comes from the kernel
(adjtimex(2)); TIME.TXT is written only from a synchronised station. Pure functions except the
kernel query and the one TIME.TXT write; this module never reads evidence and decides no wipe.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

from agent.camera import volume
from agent.core import testhooks
from agent.core.errors import describe
from agent.health.logs import LogEvent
from agent.store import HealthRow

# A state given in place of the kernel's: only the composition root installs one, from armed test
# hooks ($DOCKAGENT_TEST_STATION_CLOCK, agent.core.testhooks). This module reads no environment.
_installed: StationClock | None = None

CAMERA_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # SYSTEM.LOG and TIME.TXT (camera-layout.md)

# adjtimex(2): return values ("clock state") and status bits.
_TIME_STATES = {0: "TIME_OK", 1: "TIME_INS", 2: "TIME_DEL", 3: "TIME_OOP", 4: "TIME_WAIT"}
TIME_ERROR = 5
STA_UNSYNC = 0x0040


@dataclass(frozen=True)
class StationClockState:
    """What the kernel says about the station clock (adjtimex(2)), or why it could not say."""

    synchronised: bool
    state: str  # TIME_OK ... TIME_ERROR, or "unknown"
    esterror_us: int | None = None  # the kernel's estimated error, microseconds
    maxerror_us: int | None = None
    source: str = "adjtimex"

    def describe(self) -> str:
        if self.synchronised:
            error = (
                f", estimated error {self.esterror_us / 1e6:.3f} s"
                if self.esterror_us is not None
                else ""
            )
            return f"synchronised ({self.source}: {self.state}{error})"
        return f"not synchronised ({self.source}: {self.state})"

    def as_dict(self) -> dict[str, object]:
        return {
            "synchronised": self.synchronised,
            "state": self.state,
            "esterror_us": self.esterror_us,
            "maxerror_us": self.maxerror_us,
            "source": self.source,
            "description": self.describe(),
        }


class StationClock(Protocol):
    def read(self) -> StationClockState: ...


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h> (adjtimex(2)); the trailing reserved ints keep the kernel
    # from writing past our buffer on any layout it may grow into.
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 16),
    )


class KernelClock:
    """The station clock's synchronisation state from adjtimex(2), read-only (modes = 0)."""

    def read(self) -> StationClockState:
        try:
            # The C library already loaded into this process (dlopen(3) of NULL), as
            # agent.core.durable does: ctypes.util.find_library("c") runs /sbin/ldconfig -p in a
            # child process at every dock, and the agent starts no processes.
            libc = ctypes.CDLL(None, use_errno=True)
            adjtimex = libc.adjtimex
        except (OSError, AttributeError) as exc:
            return StationClockState(False, "unknown", source=f"adjtimex unavailable: {exc}")
        adjtimex.argtypes = (ctypes.POINTER(_Timex),)
        adjtimex.restype = ctypes.c_int
        tx = _Timex()
        tx.modes = 0  # query only: needs no privilege (adjtimex(2): "modes is zero")
        rc = adjtimex(ctypes.byref(tx))
        if rc == -1:
            err = ctypes.get_errno()
            name = errno.errorcode.get(err, str(err))
            return StationClockState(False, "unknown", source=f"adjtimex failed: {name}")
        # adjtimex(2): TIME_ERROR "the system clock is not synchronized to a reliable server";
        # STA_UNSYNC set means the same, whatever the state machine returned.
        synced = rc != TIME_ERROR and not (tx.status & STA_UNSYNC)
        state = "TIME_ERROR" if rc == TIME_ERROR else _TIME_STATES.get(rc, f"state {rc}")
        if tx.status & STA_UNSYNC and rc != TIME_ERROR:
            state += "+STA_UNSYNC"
        return StationClockState(synced, state, int(tx.esterror), int(tx.maxerror))


@dataclass(frozen=True)
class FixedClock:
    """A station clock state given by a test (or a caller that knows better than the kernel)."""

    synchronised: bool
    esterror_us: int = 1000

    def read(self) -> StationClockState:
        return StationClockState(
            self.synchronised,
            "TIME_OK" if self.synchronised else "TIME_ERROR",
            self.esterror_us if self.synchronised else None,
            None,
            source=f"test: ${testhooks.STATION_CLOCK}",
        )


def install(state: StationClock | None) -> None:
    """Trust `state` instead of the kernel (None: the kernel again). The composition root only."""
    global _installed  # noqa: PLW0603 - the station's clock is process-wide by nature
    _installed = state


def station_clock() -> StationClock:
    """The station clock to trust: the kernel's, unless the composition root installed one."""
    return _installed or KernelClock()


# ---- camera times -------------------------------------------------------------------------


def camera_zone(*names: str) -> tzinfo | None:
    """The first configured zone name (config, then profile); None means the station's zone."""
    for name in names:
        if name:
            return ZoneInfo(name)
    return None


def to_instant(wall: datetime, zone: tzinfo | None) -> datetime:
    """A zone-less camera wall time as an instant (camera-layout.md: the profile's zone)."""
    return wall.astimezone() if zone is None else wall.replace(tzinfo=zone)


def to_wall(instant: datetime, zone: tzinfo | None) -> datetime:
    """An instant as an aware wall time in the camera's zone (offset shown)."""
    return instant.astimezone() if zone is None else instant.astimezone(zone)


def parse_station_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def corrected_time(raw: str, drift_s: int | None, zone: tzinfo | None) -> str:
    """Camera wall time `raw` ("YYYY-MM-DDThh:mm:ss") minus the drift, in the camera's zone.

    Returns "" when there is no raw time or no measured drift: an uncorrected time is never
    presented as a corrected one.
    """
    if not raw or drift_s is None:
        return ""
    try:
        wall = datetime.fromisoformat(raw)
    except ValueError:
        return ""
    return to_wall(to_instant(wall, zone) - timedelta(seconds=drift_s), zone).isoformat()


@dataclass(frozen=True)
class Drift:
    """The drift of one dock: camera clock minus station clock, whole seconds (± 1 s)."""

    drift_s: int | None
    connect_at: str  # the camera's USB_CONNECT reading, "YYYY-MM-DD hh:mm:ss" (camera clock)
    detail: str


def measure_drift(
    events: Sequence[LogEvent], docked_at: datetime, zone: tzinfo | None, known: set[str]
) -> Drift:
    """Drift from the last USB_CONNECT of SYSTEM.LOG against the station's dock detection time.

    A USB_CONNECT line already seen at an earlier session (`known`) is that dock's, not this
    one's: it gives no measurement (the caller may carry the earlier session's value).
    USB_CONNECT has whole seconds, so the result is rounded to whole seconds.
    """
    connect = next((e for e in reversed(events) if e.event == "USB_CONNECT"), None)
    if connect is None:
        return Drift(None, "", "no USB_CONNECT in SYSTEM.LOG: drift unknown")
    text = connect.camera_time.strftime(CAMERA_TIME_FORMAT)
    if connect.line in known:
        return Drift(None, text, "USB_CONNECT already seen at an earlier session (same dock)")
    seconds = (to_instant(connect.camera_time, zone) - docked_at).total_seconds()
    drift = round(seconds)
    return Drift(
        drift,
        text,
        f"camera USB_CONNECT {text} vs station {docked_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
        f"at dock detection: {drift:+d} s",
    )


def time_basis(drift_s: int | None, session_id: int, station: str) -> str:
    """How a file's corrected times were obtained: said wherever a time is reported."""
    if drift_s is None:
        return "camera clock, uncorrected: drift unknown"
    return (
        f"camera clock minus drift {drift_s:+d} s (± 1 s), measured at dock session "
        f"{session_id} against the station clock ({station})"
    )


# ---- correction ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    write: bool
    status: str  # written later by the caller | not needed | not written
    reason: str


def decide_correction(drift_s: int | None, threshold_s: int, clock: StationClockState) -> Decision:
    """Write TIME.TXT only from a synchronised station and only above the profile's threshold."""
    if drift_s is None:
        return Decision(False, "not written", "drift unknown")
    if abs(drift_s) <= threshold_s:
        return Decision(
            False, "not needed", f"|drift| {abs(drift_s)} s within the {threshold_s} s threshold"
        )
    if not clock.synchronised:
        return Decision(
            False,
            "not written",
            f"drift {drift_s:+d} s above {threshold_s} s, but the station clock is "
            f"{clock.describe()}: a camera is never set from an unsynchronised clock",
        )
    return Decision(True, "written", f"drift {drift_s:+d} s above the {threshold_s} s threshold")


def time_file_text(now: datetime, zone: tzinfo | None) -> bytes:
    """TIME.TXT's one line: the station's time in the camera's zone (camera-layout.md)."""
    return (to_wall(now, zone).strftime(CAMERA_TIME_FORMAT) + "\n").encode()


def write_time_file(root_fd: int, rel: bytes, data: bytes) -> None:
    """Write TIME.TXT on the camera (O_NOFOLLOW: a link planted there is refused), fsync it.

    Raises OSError; EROFS on a read-only mount is the expected case for the daemon's own
    read-only mounts (mount(2)), and the caller turns every error into a fault row.
    """
    parent, name = volume.open_parent(root_fd, rel)
    try:
        volume.write_synced(parent, name, data)
        os.fsync(parent)
    finally:
        os.close(parent)


def write_failure(exc: OSError, name: str = "TIME.TXT") -> str:
    if exc.errno == errno.EROFS:
        return "clock not corrected: volume read-only"
    return f"clock not corrected: {name} could not be written ({describe(exc)})"


def check_correction(
    new_events: Sequence[LogEvent], drift_s: int | None, threshold_s: int
) -> tuple[str, str]:
    """At the dock after TIME.TXT was written: did the camera apply it? (status, detail)."""
    sets = [e for e in new_events if e.event == "TIME_SET"]
    if not sets:
        return "did not take", "no TIME_SET in SYSTEM.LOG since TIME.TXT was written"
    last = sets[-1]
    applied = f"TIME_SET old={last.fields.get('old', '?')} new={last.fields.get('new', '?')}"
    if drift_s is None:
        return "took", f"{applied}; drift now unknown"
    if abs(drift_s) > threshold_s:
        return (
            "did not hold",
            f"{applied}, but drift is {drift_s:+d} s again (threshold {threshold_s} s)",
        )
    return "took", f"{applied}; drift now {drift_s:+d} s"


# ---- trend ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    rate_s_per_day: float | None
    span_days: float
    points: int
    flagged: bool
    detail: str


def trend_points(history: Sequence[HealthRow]) -> list[tuple[datetime, int]]:
    """(docked_at, drift) of a camera's health rows (oldest first) since its clock last took a
    correction: drift before that belongs to another setting of the clock. Rows that carried
    an earlier session's measurement (same dock) are not new points."""
    start = 0
    for index, row in enumerate(history):
        if row.correction_check == "took":
            start = index
    points = []
    for row in history[start:]:
        drift = row.clock_drift_s
        if drift is None or str(row.clock_detail).startswith("same dock"):
            continue
        points.append((parse_station_time(str(row.docked_at)), int(str(drift))))
    return points


def drift_trend(
    points: Sequence[tuple[datetime, int]], min_span_h: float, flag_s_per_day: float
) -> Trend:
    """Least-squares rate of drift change (s/day) over sessions since the clock was last set."""
    if len(points) < 2:
        return Trend(None, 0.0, len(points), False, "too few sessions for a trend")
    t0 = points[0][0]
    xs = [(t - t0).total_seconds() / 86400 for t, _ in points]
    ys = [float(d) for _, d in points]
    span = max(xs) - min(xs)
    if span * 24 < min_span_h:
        return Trend(None, span, len(points), False, f"sessions span less than {min_span_h:g} h")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    rate = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    flagged = abs(rate) > flag_s_per_day
    detail = f"{rate:+.1f} s/day over {span:.1f} days ({len(points)} sessions)"
    if flagged:
        detail += f": clock runs away (flag above {flag_s_per_day:g} s/day)"
    return Trend(round(rate, 2), round(span, 2), len(points), flagged, detail)
