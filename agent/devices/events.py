"""The records every device source produces, and the protocol a source implements.

Pure data; no I/O. Values come from hostile hardware: keep them as given and escape them
(agent.core.model.display_name) wherever they are shown or logged.
"""

from __future__ import annotations

import enum
import queue
from dataclasses import dataclass, field
from typing import Protocol


class Action(enum.StrEnum):
    PRESENT = "present"  # already plugged in when the source started
    INSERTED = "inserted"
    REMOVED = "removed"


@dataclass(frozen=True)
class DeviceIdentity:
    """What the hardware says about itself (udev properties, or what a mount tells)."""

    key: str  # unique per source while plugged in: sysfs path, devnode or mount point
    vendor_id: str = ""  # ID_VENDOR_ID, 4 hex digits
    model_id: str = ""  # ID_MODEL_ID
    serial: str = ""  # ID_SERIAL_SHORT
    fs_type: str = ""  # ID_FS_TYPE
    fs_label: str = ""  # ID_FS_LABEL
    devnode: str = ""  # /dev/sdX1
    # ID_USB_INTERFACES, e.g. ":080650:030101:" (class/subclass/protocol per interface):
    # a camera is mass storage (08) only; anything else (03 = HID keyboard) is refused.
    usb_interfaces: str = ""
    mountpoint: str = ""  # where the volume is mounted, when the source knows it
    # ID_PATH (udev's path_id): the physical port the device is plugged into, e.g.
    # "pci-0000:00:14.0-usb-0:2:1.0-scsi-0:0:0:0"; "" when unknown or not of that form.
    port_path: str = ""

    def describe(self) -> str:
        parts = [
            f"{self.vendor_id}:{self.model_id}" if self.vendor_id or self.model_id else "",
            f"serial={self.serial}" if self.serial else "",
            f"fs={self.fs_type}" if self.fs_type else "",
            f"label={self.fs_label}" if self.fs_label else "",
            f"interfaces={self.usb_interfaces}" if self.usb_interfaces else "",
            self.devnode or self.mountpoint or self.key,
        ]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class DeviceEvent:
    action: Action
    identity: DeviceIdentity
    source: str  # "udev" | "mountwatch" | "fake"
    extra: dict[str, str] = field(default_factory=dict)


class DeviceSource(Protocol):
    """Start producing events onto `events`; stop() must return promptly."""

    name: str

    def start(self, events: queue.Queue[DeviceEvent]) -> None: ...

    def stop(self) -> None: ...
