"""Pure decisions shared by the daemon, the sync and the CLI: nothing here does I/O.

A technician asking "would this be wiped?" gets the same answer as the daemon doing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.camera.profile import Profile
from agent.core.model import CUSTODY_STATES, SERIAL_PATTERN, FileState, WipePolicy
from agent.core.wallclock import Stamp
from agent.devices.events import DeviceIdentity

SERIAL = SERIAL_PATTERN

# Space a FAT/exFAT volume uses beyond its files' allocated clusters: directories, and
# rounding in statvfs. Above this, the listing does not account for the used space.
UNACCOUNTED_SLACK_BYTES = 4 << 20
UNACCOUNTED_SLACK_FRACTION = 0.01


def file_may_be_wiped(policy: WipePolicy, state: FileState) -> bool:
    if policy is WipePolicy.NEVER:
        return False
    if policy is WipePolicy.AFTER_SEAL:
        return state in CUSTODY_STATES
    return state is FileState.CONFIRMED


def held_state(state: FileState, signed_confirmation: bool) -> FileState:
    """The state a wipe decision may take a row to be in: `confirmed` only where the chain
    holds a sink's signed confirmation of it; a row set to confirmed any other way (an edited
    database) counts as sealed, and nothing after confirmation follows from it."""
    if state is FileState.CONFIRMED and not signed_confirmation:
        return FileState.SEALED
    return state


@dataclass(frozen=True)
class WipeDecision:
    allowed: bool
    reason: str


def camera_may_be_wiped(
    policy: WipePolicy,
    states: Sequence[FileState],
    scan_problems: int,
    used_bytes: int,
    listed_bytes: int,
    capacity: int,
) -> WipeDecision:
    """Wipe nothing unless every file of the camera is accounted for (DESIGN.md rule 7)."""
    if policy is WipePolicy.NEVER:
        return WipeDecision(False, "wipe policy is never")
    unaccounted = _unaccounted(states, scan_problems, used_bytes, listed_bytes, capacity)
    if unaccounted:
        return WipeDecision(False, unaccounted)
    if policy is WipePolicy.AFTER_CONFIRM and any(s is not FileState.CONFIRMED for s in states):
        return WipeDecision(False, "waiting for the central server to confirm every file")
    return WipeDecision(True, "")


def _unaccounted(
    states: Sequence[FileState],
    scan_problems: int,
    used_bytes: int,
    listed_bytes: int,
    capacity: int,
) -> str:
    """Why not everything on the camera is accounted for and in custody ("" when it is)."""
    if scan_problems:
        return f"{scan_problems} entries on the camera are not accounted for"
    unsealed = sum(1 for s in states if s not in CUSTODY_STATES)
    if unsealed:
        return f"{unsealed} files of the camera are not in custody yet"
    if capacity <= 0:
        return "the file system reports no size, so its used space cannot be accounted for"
    slack = UNACCOUNTED_SLACK_BYTES + int(capacity * UNACCOUNTED_SLACK_FRACTION)
    if used_bytes - listed_bytes > slack:
        return (
            f"the volume uses {used_bytes} bytes but its files account for {listed_bytes}: "
            "hidden or lost data; not wiping"
        )
    return ""


@dataclass(frozen=True)
class PurgeDecision:
    allowed: bool
    age_s: float  # the age the decision relied on (a lower bound where it is not exact)
    basis: str  # which clock said so


def _boot_epoch(epoch: str) -> bool:
    return epoch.startswith("boot:")


def copy_may_be_purged(
    confirmed_wall: str, confirmed: Stamp | None, now: Stamp, grace_s: float, wall_trusted: bool
) -> PurgeDecision:
    """May the staged copy of a file confirmed at `confirmed_wall` (boot-clock stamp
    `confirmed`, None on rows confirmed before stamps were kept) be purged `grace_s` after?

    A step of the wall clock must never purge a copy early, so the age is read off the boot
    clock (agent.core.wallclock.boottime, which cannot be set) wherever it can be:

    1. Same clock epoch (same boot): the age is the boot-clock difference, exactly. The wall
       clock is not consulted at all.
    2. Otherwise the boot clock still gives a lower bound: this boot's uptime when the
       confirmation is known to precede this boot (the two boot ids differ, or the boot clock
       is now below the stamp's), else now minus the stamp (true on whichever boot the stamp
       was taken). A lower bound of at least the grace purges.
    3. Short of that (a reboot since, or no stamp), the wall-clock age decides, but only while
       the wall clock is trusted: the kernel says it is synchronised (setting it by hand, or
       from a wrong RTC at boot, leaves it unsynchronised until NTP has it: adjtimex(2),
       STA_UNSYNC) and this process has not seen it step. Untrusted, the copy waits until the boot
       clock alone shows the grace.
    """
    if confirmed is not None and confirmed.epoch == now.epoch:
        age = now.boottime_s - confirmed.boottime_s
        return PurgeDecision(age >= grace_s, age, "boot clock (same boot)")
    lower = 0.0
    if confirmed is not None:
        before_boot = now.boottime_s < confirmed.boottime_s or (
            _boot_epoch(confirmed.epoch) and _boot_epoch(now.epoch)
        )
        lower = now.boottime_s if before_boot else now.boottime_s - confirmed.boottime_s
        if lower >= grace_s:
            return PurgeDecision(True, lower, "boot clock (lower bound across a reboot)")
    if not wall_trusted:
        return PurgeDecision(
            lower >= grace_s, lower, "boot clock (lower bound; wall clock not trusted)"
        )
    wall_age = (
        datetime.fromisoformat(now.wall) - datetime.fromisoformat(confirmed_wall)
    ).total_seconds()
    if wall_age >= grace_s:
        return PurgeDecision(True, wall_age, "wall clock (synchronised, no step seen)")
    return PurgeDecision(False, max(lower, wall_age), "wall clock (synchronised, no step seen)")


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str
    profile: Profile | None = None


_MASS_STORAGE = "08"


def _interface_classes(usb_interfaces: str) -> list[str]:
    # udev's ID_USB_INTERFACES: ":ccsspp:ccsspp:" (class, subclass, protocol per interface)
    return [entry[:2].lower() for entry in usb_interfaces.split(":") if entry]


def admit_device(
    identity: DeviceIdentity,
    profiles: Sequence[Profile],
    enrolled: Mapping[str, object],
    require_enrollment: bool,
) -> Admission:
    """Decide, before anything is mounted or read, whether a plugged-in device may be taken.

    A camera is mass storage only: a device that also presents another interface (a HID
    keyboard, a network adapter) is refused whatever its ids say. Sources that know no USB ids
    (mountwatch: the udev rule that mounted the volume matched the ids) fall back to the first
    profile whose label pattern fits.
    """
    foreign = [c for c in _interface_classes(identity.usb_interfaces) if c != _MASS_STORAGE]
    if foreign:
        return Admission(False, f"presents non-storage USB interfaces (class {','.join(foreign)})")
    if identity.vendor_id or identity.model_id:
        profile = next(
            (
                p
                for p in profiles
                if p.matches_hardware(identity.vendor_id, identity.model_id, identity.fs_label)
            ),
            None,
        )
        if profile is None:
            return Admission(False, "unknown vendor/product: matches no camera profile")
    else:
        profile = next(
            (
                p
                for p in profiles
                if p.label_pattern is None or p.label_pattern.fullmatch(identity.fs_label)
            ),
            None,
        )
        if profile is None:
            return Admission(False, "volume label matches no camera profile")
    if not SERIAL.fullmatch(identity.serial):
        return Admission(False, "no usable USB serial", profile)
    if require_enrollment and identity.serial not in enrolled:
        return Admission(False, f"serial {identity.serial} is not enrolled", profile)
    return Admission(True, "", profile)


def admit_camera(usb_serial: str, info_serial: str) -> Admission:
    """After DEVICE.INF is read: it must name the same serial as the hardware (a security event)."""
    if usb_serial and usb_serial != info_serial:
        return Admission(
            False, f"DEVICE.INF serial {info_serial} does not match the USB serial {usb_serial}"
        )
    return Admission(True, "")


def admit_backing(usb: DeviceIdentity | None, info_serial: str) -> Admission:
    """`dockagent import PATH`, once DEVICE.INF is read: when a USB device holds PATH, the same
    check as the daemon's (admit_device's usable serial, then admit_camera). A path held by no
    USB device (None) has no hardware identity to compare, and passes: the caller records so."""
    if usb is None:
        return Admission(True, "")
    if not SERIAL.fullmatch(usb.serial):
        return Admission(False, "the USB device holding it has no usable USB serial")
    return admit_camera(usb.serial, info_serial)


def admit_import(
    info_serial: str, enrolled: Mapping[str, object], require_enrollment: bool
) -> Admission:
    """`dockagent import PATH`: the same allow-list, applied to DEVICE.INF's serial."""
    if require_enrollment and info_serial not in enrolled:
        return Admission(
            False, f"serial {info_serial} is not enrolled (dockagent devices enroll, or --enroll)"
        )
    return Admission(True, "")
