"""Opening a docked `ums-unlock` camera: its sg node, its dialect, its identity checked, its clock.

The daemon (agent.runtime.daemon) calls unlock_camera() in the dock's worker, before any volume
exists: it finds the SCSI generic node below the docked USB device (sysfs), checks INQUIRY
against the profile, runs the profile's dialect (agent.devices.dialects) with a clock plan made
only from a synchronised station (agent.health.clock), and accepts the device record only when
it names the USB serial and agrees with the enrolment. Everything it finds is returned as data
(an UnlockRecord) or raised as UnlockRefused with the reason; the password is never logged and
nothing on the camera is read as a file here.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from zoneinfo import ZoneInfoNotFoundError

from agent.camera.methods import UnlockSpec
from agent.camera.profile import Profile
from agent.core import log
from agent.core.errors import (
    AgentError,
    ConfigError,
    ErrorKind,
    UnlockFailed,
    UnlockRefused,
    classify,
    describe,
)
from agent.devices import dialects, scsi
from agent.devices.dialects import ClockPlan, DeviceRecord, UnlockRecord
from agent.devices.events import DeviceEvent, DeviceIdentity
from agent.health import clock
from agent.store.devices import DeviceRow

_log = log.get(__name__)

# Opens the command channel of a USB device's sg node (usb sysfs path, /dev/sgN, command
# timeout): SG_IO from this process (direct), or through the SCSI relay (the installed daemon,
# agent.devices.scsi_relay.RelayDevice, which holds no capability of its own).
Opener = Callable[[str, str, float], AbstractContextManager[scsi.Transport]]
MAX_ATTEMPTS = 10
MAX_BACKOFF_S = 60.0


def direct(_usb: str, node: str, timeout_s: float) -> scsi.SgDevice:
    """SG_IO on the node from this process (needs CAP_SYS_RAWIO for vendor opcodes)."""
    return scsi.SgDevice(node, timeout_s)


def opener_for(relay_socket: str) -> Opener:
    """The relay at that socket, or SG_IO from this process when it is ""."""
    if not relay_socket:
        return direct
    from agent.devices.scsi_relay import RelayDevice  # noqa: PLC0415 - only when configured

    def through_relay(usb: str, node: str, timeout_s: float) -> RelayDevice:
        return RelayDevice(relay_socket, usb, node, timeout_s)

    return through_relay


def clock_plan(
    profile: Profile, camera_timezone: str, station: clock.StationClock, now: datetime
) -> ClockPlan:
    """The camera wall time to send (the station's time in the camera's zone), or why none is:
    a camera is never set from an unsynchronised station, nor when its profile sets the clock
    another way. `now` is an aware instant."""
    method = profile.clock.method
    if method != "scsi":
        return ClockPlan(None, f"the profile sets the clock by {method}")
    state = station.read()
    if not state.synchronised:
        return ClockPlan(None, f"station clock {state.describe()}: a camera is never set from it")
    try:
        zone = clock.camera_zone(camera_timezone, profile.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        return ClockPlan(None, f"the camera's time zone is unknown ({exc})")
    return ClockPlan(clock.to_wall(now, zone).replace(tzinfo=None))


def identity_check(
    usb_serial: str,
    profile: Profile,
    enrolled: Mapping[str, DeviceRow],
    require_enrollment: bool,
    where: str,
) -> Callable[[DeviceRecord], None]:
    """The check a device record must pass before anything is written to the camera: it names
    the USB serial the hardware reports, and the enrolment of that serial (when there is one)
    names the same profile and the same badge."""

    def accept(record: DeviceRecord) -> None:
        if record.serial != usb_serial:
            raise UnlockRefused(
                path=where,
                problem=f"its device record names serial {record.serial}, "
                f"the USB serial is {usb_serial}",
            )
        row = enrolled.get(record.serial)
        if row is None:
            if require_enrollment:
                raise UnlockRefused(path=where, problem=f"serial {record.serial} is not enrolled")
            return
        if row.profile and row.profile != profile.name:
            raise UnlockRefused(
                path=where,
                problem=f"serial {record.serial} is enrolled as a {row.profile} camera, "
                f"it docked as {profile.name}",
            )
        if row.officer_id and record.officer_id != row.officer_id:
            raise UnlockRefused(
                path=where,
                problem=f"its device record names badge {record.officer_id or '(none)'}, "
                f"serial {record.serial} is enrolled to {row.officer_id}",
            )

    return accept


def unlock_camera(
    identity: DeviceIdentity,
    usb_device: str,
    profile: Profile,
    plan: ClockPlan,
    accept: Callable[[DeviceRecord], None],
    opener: Opener = direct,
) -> UnlockRecord:
    """Open the docked camera for this insertion; UnlockRefused (nothing taken) or a
    DeviceCommand error when it cannot be. `usb_device`: its USB device's sysfs path ("" to
    find it above identity.key)."""
    spec = profile.unlock
    where = identity.devnode or identity.key
    if spec is None:
        raise UnlockRefused(
            path=where, problem=f"profile {profile.name} names no unlock for transport ums-unlock"
        )
    dialect = dialects.get(spec.dialect)
    usb = usb_device or scsi.usb_device_of(identity.key)
    node = scsi.sg_node_of(usb) if usb else None
    if node is None:
        raise UnlockRefused(
            path=where,
            problem="no SCSI generic node (/dev/sgN) below its USB device: the sg driver is "
            "not loaded, or the device is gone",
        )
    _check_inquiry(spec, node, where)
    with opener(usb, node.devnode, spec.command_timeout_s) as device:
        record = dialect.unlock(device, spec, plan, accept, node.devnode)
    _log.info(
        "device.unlocked",
        device_serial=record.record.serial,
        officer_id=record.record.officer_id,
        sg=node.devnode,
        dialect=dialect.name,
        battery_pct=record.battery_pct,
        clock_set=record.clock_set,
        clock_detail=record.clock_detail,
    )
    return record


def with_retries(
    attempt: Callable[[], UnlockRecord],
    spec: UnlockSpec,
    still_docked: Callable[[], bool],
    wait: Callable[[float], object],
    where: str,
) -> UnlockRecord:
    """Run `attempt` (one whole unlock) until it succeeds; a retryable failure (no answer in
    time, NOT READY, busy, a reset) again after retry_backoff_s, then twice that and so on, while
    the camera stays docked, at most `attempts` times. UnlockRefused (the camera is not one to
    take) is never retried; any other failure ends as UnlockFailed saying which it was."""
    attempts, backoff = _retry_limits(spec)
    number = 1
    while True:
        try:
            return attempt()
        except UnlockRefused:
            raise
        except (AgentError, OSError) as exc:
            reason = describe(exc)
            if classify(exc) is not ErrorKind.RETRYABLE:
                raise UnlockFailed(
                    path=where, verdict="permanent, not retried", problem=reason
                ) from exc
            if number >= attempts:
                raise UnlockFailed(
                    path=where,
                    verdict=f"retryable, gave up after {number} attempts",
                    problem=reason,
                ) from exc
            delay = backoff * 2 ** (number - 1)
            _log.info(
                "device.unlock_retried", device=where, attempt=number, delay_s=delay, reason=reason
            )
            wait(delay)
            if not still_docked():
                raise UnlockFailed(
                    path=where,
                    verdict=f"retryable, {number} attempts: undocked or the agent stopping",
                    problem=reason,
                ) from exc
            number += 1


def _retry_limits(spec: UnlockSpec) -> tuple[int, float]:
    attempts, backoff = spec.attempts, spec.retry_backoff_s
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        attempts = -1
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise ConfigError(
            where="profile [unlock]", problem=f"attempts {spec.attempts!r} is not 1-{MAX_ATTEMPTS}"
        )
    if not isinstance(backoff, int | float) or not (
        math.isfinite(backoff) and 0 <= backoff <= MAX_BACKOFF_S
    ):
        raise ConfigError(
            where="profile [unlock]",
            problem=f"retry_backoff_s {spec.retry_backoff_s!r} is not 0-{MAX_BACKOFF_S:g}",
        )
    return attempts, float(backoff)


def _check_inquiry(spec: UnlockSpec, node: scsi.SgNode, where: str) -> None:
    if spec.inquiry and node.inquiry != spec.inquiry:
        raise UnlockRefused(
            path=where,
            problem=f"its SCSI INQUIRY says {node.inquiry[:40]!r}, the profile expects "
            f"{spec.inquiry!r}",
        )


class VolumeWait:
    """The volume of a camera being opened: offered by the daemon's event loop when its disk
    appears (a new device event of the same USB device), waited for by the dock's worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._identity: DeviceIdentity | None = None

    def offer(self, identity: DeviceIdentity) -> None:
        with self._lock:
            if self._identity is None:
                self._identity = identity
        self._ready.set()

    def wait(self, timeout_s: float, give_up: Callable[[], bool]) -> DeviceIdentity | None:
        """The volume once offered; None after `timeout_s`, or once give_up() (the daemon
        stops, the camera was unplugged)."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.25):
            if give_up() or time.monotonic() >= deadline:
                return None
        with self._lock:
            return self._identity


def same_camera(
    waiting: DeviceIdentity, source: str, extra: Mapping[str, str], event: DeviceEvent
) -> bool:
    """Whether `event` is the disk of the camera a dock opened (`waiting`, seen by `source`
    with `extra`): from the same source, the same USB device where the source names it, else
    the same USB serial. An event of the dock's own key counts once it shows a volume."""
    if event.source != source:
        return False
    if event.identity.key == waiting.key:
        return bool(event.identity.fs_type or event.identity.mountpoint)
    usb, other = extra.get("usb_device", ""), event.extra.get("usb_device", "")
    if usb and other:
        return usb == other
    return bool(waiting.serial) and event.identity.serial == waiting.serial
