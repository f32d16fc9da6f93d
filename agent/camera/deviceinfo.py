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
_FIELD = re.compile(r"^[\w .:/()+-]{0,64}$")


def read_device_info(root_fd: int, profile: Profile, where: str) -> DeviceInfo:
    try:
        raw = volume.read_small(root_fd, profile.device_info.encode(), limit=64 * 1024)
    except OSError as exc:
        raise CameraUnreadable(path=where, problem=f"{profile.device_info}: {exc}") from exc
    if raw is None:
        raise CameraRefused(path=where, problem=f"no {profile.device_info}: not a camera volume")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CameraRefused(path=where, problem=f"{profile.device_info} is not UTF-8") from exc
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    serial = fields.get("serial", "")
    if not SERIAL.fullmatch(serial):
        raise CameraRefused(
            path=where,
            problem=f"{profile.device_info} serial {display_name(serial)!r} "
            "is not 1-32 of A-Z a-z 0-9 -",
        )
    values = {}
    for key in ("vendor", "model", "firmware", "officer_id", "unit"):
        value = fields.get(key, "")
        if not _FIELD.match(value):
            raise CameraRefused(
                path=where,
                problem=f"{profile.device_info} {key} {display_name(value)!r} is malformed",
            )
        values[key] = value
    return DeviceInfo(serial=serial, **values)
