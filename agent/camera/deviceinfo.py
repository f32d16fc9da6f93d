"""What a camera says about itself: DEVICE.INF parsed and checked (camera-layout.md).

Reads only through agent.camera.volume; decides nothing about whether the camera is allowed.
"""

from __future__ import annotations

import re

from agent.camera import volume
from agent.camera.profile import Profile
from agent.core.errors import CameraRefused, CameraUnreadable
from agent.core.model import SERIAL_PATTERN, DeviceInfo, display_name

SERIAL = SERIAL_PATTERN
_FIELD = re.compile(r"[\w .:/()+-]{0,64}")  # with fullmatch
INFO_LIMIT = 64 * 1024  # bytes of DEVICE.INF read; a real one is ~200 bytes
_QUOTED = 80  # characters of a bad value quoted in a refusal


def read_device_info(root_fd: int, profile: Profile, where: str) -> DeviceInfo:
    """DEVICE.INF of the volume at root_fd; CameraUnreadable when it cannot be read (or is over
    INFO_LIMIT bytes), CameraRefused when it is absent or malformed."""
    try:
        raw = volume.read_small(root_fd, profile.device_info.encode(), limit=INFO_LIMIT)
    except OSError as exc:
        raise CameraUnreadable(path=where, problem=f"{profile.device_info}: {exc}") from exc
    if raw is None:
        raise CameraRefused(path=where, problem=f"no {profile.device_info}: not a camera volume")
    return parse_device_info(raw, profile.device_info, where)


def parse_device_info(raw: bytes, name: str, where: str) -> DeviceInfo:
    """DEVICE.INF's bytes as a DeviceInfo; CameraRefused (and nothing else) when malformed.

    One pass of str.partition per line, and bounded regular expressions on values: linear in
    the bytes given (the reader caps them at INFO_LIMIT). A bad value is quoted cut short.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CameraRefused(path=where, problem=f"{name} is not UTF-8") from exc
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    serial = fields.get("serial", "")
    if not SERIAL.fullmatch(serial):
        raise CameraRefused(
            path=where,
            problem=f"{name} serial {_quote(serial)} is not 1-32 of A-Z a-z 0-9 -",
        )
    values: dict[str, str] = {}
    for key in ("vendor", "model", "firmware", "officer_id", "unit"):
        value = fields.get(key, "")
        if not _FIELD.fullmatch(value):
            raise CameraRefused(path=where, problem=f"{name} {key} {_quote(value)} is malformed")
        values[key] = value
    return DeviceInfo(
        serial=serial,
        vendor=values["vendor"],
        model=values["model"],
        firmware=values["firmware"],
        officer_id=values["officer_id"],
        unit=values["unit"],
    )


def _quote(value: str) -> str:
    """A hostile value for a message: escaped, and cut to _QUOTED characters."""
    cut = value[:_QUOTED] + ("..." if len(value) > _QUOTED else "")
    return repr(display_name(cut))
