"""Who a camera volume is by its SCSI device record, for `dockagent import PATH`.

A profile lists where a camera's identity comes from, in order (agent.camera.methods
IDENTITY_SOURCES; a `ums-unlock` profile that lists none means ("scsi",): its DEVICE.INF, if
any, is not the camera's word). When the list starts with "scsi", the import asks the camera
itself, the way the daemon does at dock but with reads only: init (which every session needs),
ID code and device record through the dialect's read_identity(). No password is read, no clock
is set, the camera is not switched: it is already a disk, or this would not be a volume.

What is decided here, and why:
- the volume is on a USB device with an SCSI generic node: the record is read and must name
  that USB serial and agree with the enrolment (agent.runtime.unlock.identity_check); a record
  that cannot be read refuses the import. The camera is there and did not say who it is:
  taking DEVICE.INF instead would let a file claim what the hardware did not confirm;
- no USB device, or no sg node (a copy in a directory, an image, a card reader): the next
  source the profile lists is used, if it is "file" (DEVICE.INF, and the session says so); if
  the profile lists no other, the import is refused with the reason.
Nothing here reads a file on the volume.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.camera.profile import Profile
from agent.core.errors import AgentError, CameraRefused, UnlockRefused, classify, describe
from agent.core.model import DeviceInfo
from agent.devices import dialects, scsi
from agent.devices.dialects import DeviceRecord
from agent.devices.events import DeviceIdentity
from agent.runtime.unlock import Opener


@dataclass(frozen=True)
class ImportIdentity:
    """The identity to import under: `known` from the device record (None: read DEVICE.INF),
    the line for the session's identity check ("" for the usual one), and what was read, as
    JSON, for the session's unlock column."""

    known: DeviceInfo | None = None
    check: str = ""
    record: str = ""


def identity_order(prof: Profile) -> tuple[str, ...]:
    """The profile's identity sources in order (profile format 2 names them), else its
    transport's: a camera opened by vendor commands is who its device record says."""
    listed: Sequence[str] | None = getattr(prof, "identity", None)
    if listed:
        return tuple(listed)
    return ("scsi",) if prof.transport == "ums-unlock" else ("file",)


def next_source(order: Sequence[str], why: str, prof: Profile, path: str) -> ImportIdentity:
    """No device record can be had (`why`): the profile's next source, or a refusal."""
    following = order[1] if len(order) > 1 else ""
    if following == "file":
        return ImportIdentity(
            check=f"no SCSI device record ({why}); identity from DEVICE.INF, the next source "
            f"profile {prof.name} lists"
        )
    listed = f"next lists {following!r}, which import cannot read" if following else "only"
    raise CameraRefused(
        path=path,
        problem=f"profile {prof.name} identifies cameras by their SCSI device record "
        f"({listed}), and {why}",
    )


def for_import(
    prof: Profile,
    usb: DeviceIdentity | None,
    path: str,
    opener: Opener,
    accept: Callable[[DeviceRecord], None],
) -> ImportIdentity:
    """The identity of the volume at `path` (on USB device `usb`, if any) as the profile's
    order says; CameraRefused (UnlockRefused for an identity that disagrees) with the reason."""
    order = identity_order(prof)
    if not order or order[0] != "scsi":
        return ImportIdentity()
    usb_device = scsi.usb_device_of(usb.key) if usb is not None else ""
    node = scsi.sg_node_of(usb_device) if usb_device else None
    if node is None:
        why = (
            "the volume is on no USB device"
            if usb is None
            else "its USB device has no SCSI generic node"
        )
        return next_source(order, why, prof, path)
    spec = prof.unlock
    if spec is None:
        raise CameraRefused(path=path, problem=f"profile {prof.name} names no [unlock] dialect")
    dialect = dialects.get(spec.dialect)
    try:
        with opener(usb_device, node.devnode, spec.command_timeout_s) as device:
            record, id_code = dialect.read_identity(device, spec, path)
    except UnlockRefused:
        raise
    except (AgentError, OSError) as exc:
        kind = classify(exc).value
        raise CameraRefused(
            path=path,
            problem=f"its SCSI device record could not be read ({kind}; import again): "
            f"{describe(exc)}",
        ) from exc
    accept(record)
    info = DeviceInfo(
        serial=record.serial,
        officer_id=record.officer_id,
        unit=record.unit_id,
        officer_name=record.officer_name,
        unit_name=record.unit_name,
    )
    check = (
        f"{dialect.name} device record read at import (reads only): serial {record.serial}, "
        f"badge {record.officer_id or '(none)'}; matches USB serial "
        f"{usb.serial if usb is not None else ''}"
    )
    read = {"dialect": dialect.name, "record": dataclasses.asdict(record), "id_code": id_code}
    return ImportIdentity(info, check, json.dumps(read, ensure_ascii=False))
