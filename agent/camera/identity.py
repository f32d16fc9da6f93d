"""Who a camera is: its serial and officer, from the sources its profile names, in order.

The sources (agent.camera.methods.IDENTITY_SOURCES): `scsi`, the device record the SCSI
transport read at unlock (handed in by the caller); `file`, a DEVICE.INF-like file on the
volume (agent.camera.deviceinfo); `names`, the serial and officer groups of the recordings'
names in the layout's roots, on which every name must agree; `usb`, the USB serial of the
device descriptor (handed in by the caller). The first source that answers names the camera;
each later one that answers must name the same serial, or the camera is refused (as a DEVICE.INF
naming another serial than the USB device always was). No answer at all refuses the camera.

Reads the identity file and directory listings only (never a recording's content); decides
nothing about whether the camera is allowed (agent.ingest.policy does).
"""

from __future__ import annotations

from dataclasses import replace

from agent.camera import deviceinfo, scan, volume
from agent.camera.profile_model import Profile
from agent.core.errors import CameraRefused, CameraUnreadable
from agent.core.model import SERIAL_PATTERN, DeviceInfo, display_name


def read_identity(
    root_fd: int,
    profile: Profile,
    where: str,
    usb_serial: str = "",
    device_record: DeviceInfo | None = None,
) -> DeviceInfo:
    """The camera's DeviceInfo by its profile's identity sources; CameraRefused when none
    answers or two disagree, CameraUnreadable when the identity file cannot be read."""
    if profile.identity == ("file",):
        return deviceinfo.read_device_info(root_fd, profile, where)  # version 1's one source
    found: list[tuple[str, DeviceInfo]] = []
    for source in profile.identity:
        info = _answer(source, root_fd, profile, where, usb_serial, device_record)
        if info is not None:
            found.append((source, info))
    if not found:
        raise CameraRefused(
            path=where,
            problem=f"no identity: none of its profile's sources ({', '.join(profile.identity)}) "
            "names the camera",
        )
    first_source, identity = found[0]
    for source, info in found[1:]:
        if info.serial != identity.serial:
            raise CameraRefused(
                path=where,
                problem=f"its {first_source} names serial {identity.serial} but its {source} "
                f"names {display_name(info.serial)}",
            )
        if not identity.officer_id and info.officer_id:
            identity = replace(identity, officer_id=info.officer_id)
    return identity


def _answer(
    source: str,
    root_fd: int,
    profile: Profile,
    where: str,
    usb_serial: str,
    device_record: DeviceInfo | None,
) -> DeviceInfo | None:
    if source == "scsi":
        return device_record
    if source == "usb":
        return DeviceInfo(serial=usb_serial) if SERIAL_PATTERN.fullmatch(usb_serial) else None
    if source == "names":
        return names_identity(root_fd, profile, where)
    name = profile.identity_file
    try:
        raw = volume.read_small(root_fd, name.encode(), limit=deviceinfo.INFO_LIMIT)
    except OSError as exc:
        raise CameraUnreadable(path=where, problem=f"{name}: {exc}") from exc
    # No file: the next source may answer. A malformed one refuses the camera.
    return None if raw is None else deviceinfo.parse_device_info(raw, name, where)


def names_identity(root_fd: int, profile: Profile, where: str) -> DeviceInfo | None:
    """The serial and officer every recording's name carries (None when no name carries a
    serial); CameraRefused when two names disagree on the serial. Names that disagree on the
    officer leave the officer unknown (a pool camera changes hands; `dockagent assign` says
    whose a session is)."""
    serials: dict[str, bytes] = {}
    officers: set[str] = set()
    listing = scan.scan_volume(root_fd, profile, 0)
    for cand in listing.candidates:
        if not cand.wipeable:
            continue  # only the recordings in the layout's roots name the camera
        info = profile.classify(cand.rel_path.rpartition(b"/")[2])
        if info.serial:
            serials.setdefault(info.serial, cand.rel_path)
            officers.add(info.officer)
    if not serials:
        return None
    if len(serials) > 1:
        (a, path_a), (b, path_b) = sorted(serials.items())[:2]
        raise CameraRefused(
            path=where,
            problem=f"its recordings' names disagree on the camera: {display_name(path_a)} "
            f"names {display_name(a)}, {display_name(path_b)} names {display_name(b)}",
        )
    serial = next(iter(serials))
    if not SERIAL_PATTERN.fullmatch(serial):
        raise CameraRefused(
            path=where, problem=f"its names' serial {display_name(serial)!r} is malformed"
        )
    officer = officers.pop() if len(officers) == 1 else ""
    return DeviceInfo(serial=serial, officer_id=officer)
