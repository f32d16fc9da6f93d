"""Pure decisions shared by the daemon and the CLI: nothing here does I/O.

A technician asking "would this be wiped?" gets the same answer as the daemon doing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.devices.events import DeviceIdentity
from agent.model import CUSTODY_STATES, SERIAL_PATTERN, FileState, WipePolicy
from agent.profile import Profile

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
    if scan_problems:
        return WipeDecision(False, f"{scan_problems} entries on the camera are not accounted for")
    unsealed = sum(1 for s in states if s not in CUSTODY_STATES)
    if unsealed:
        return WipeDecision(False, f"{unsealed} files of the camera are not in custody yet")
    if capacity <= 0:
        return WipeDecision(
            False, "the file system reports no size, so its used space cannot be accounted for"
        )
    slack = UNACCOUNTED_SLACK_BYTES + int(capacity * UNACCOUNTED_SLACK_FRACTION)
    if used_bytes - listed_bytes > slack:
        return WipeDecision(
            False,
            f"the volume uses {used_bytes} bytes but its files account for {listed_bytes}: "
            "hidden or lost data; not wiping",
        )
    if policy is WipePolicy.AFTER_CONFIRM and any(s is not FileState.CONFIRMED for s in states):
        return WipeDecision(False, "waiting for the central server to confirm every file")
    return WipeDecision(True, "")


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


def admit_import(
    info_serial: str, enrolled: Mapping[str, object], require_enrollment: bool
) -> Admission:
    """`dockagent import PATH`: the same allow-list, applied to DEVICE.INF's serial."""
    if require_enrollment and info_serial not in enrolled:
        return Admission(
            False, f"serial {info_serial} is not enrolled (dockagent devices enroll, or --enroll)"
        )
    return Admission(True, "")
