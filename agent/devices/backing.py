"""Which USB device, if any, holds a mounted path: for `dockagent import PATH`.

The file system's device number (st_dev of PATH, what mountinfo's field 3 says of its mount,
proc(5)) names the block device the kernel reads it from; udev (agent.devices.udev) says
whether that block device is on the USB bus and what serial it reports. A path whose file
system has no block device (major 0: tmpfs, overlay, a FUSE driver that is not fuseblk) or
sits on a block device off the USB bus (a loop device of an image, an internal disk) has no
USB identity, and this says so. Decides nothing about whether the camera is allowed, and
never opens a file on the volume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from agent.devices.events import DeviceIdentity


@dataclass(frozen=True)
class Backing:
    """What holds a path: its block device's number (None: no block device) and the USB
    device's identity when that block device is on the USB bus."""

    device: int | None
    usb: DeviceIdentity | None

    def describe(self) -> str:
        """One line for the operator and the session record."""
        if self.usb is not None:
            return f"USB serial {self.usb.serial or '(none)'}"
        if self.device is None:
            return "no USB identity: the path is on no block device (a directory or a FUSE mount)"
        number = f"{os.major(self.device)}:{os.minor(self.device)}"
        return f"no USB identity: block device {number} is not on the USB bus"


def backing_of(path: str) -> Backing:
    """The block device and USB device behind `path` (stat(2) follows the path to its file
    system; OSError when it cannot be stat'ed). ConfigError when udev cannot be asked."""
    dev = os.stat(path).st_dev
    if os.major(dev) == 0:
        # Anonymous device numbers (the kernel's "unnamed" major 0) belong to no block device.
        return Backing(None, None)
    if not _may_be_on_usb(dev):
        return Backing(dev, None)
    from agent.devices import udev  # noqa: PLC0415 - pyudev only when a block device is asked

    return Backing(dev, udev.block_identity(dev))


def _may_be_on_usb(dev: int) -> bool:
    """Whether sysfs can place block device `dev` below a USB host controller: its
    /sys/dev/block/MAJ:MIN link (sysfs-rules) resolves through the devices tree, where a USB
    disk sits below a `usbN` bus directory. Read before udev is asked, because pyudev finds
    libudev with ctypes.util.find_library, which runs `ldconfig -p`: asking about a loop device
    or an internal disk must start no process (the agent never does). When sysfs cannot say
    (no link), udev is asked and decides."""
    try:
        target = os.readlink(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    except OSError:
        return True
    return any(part.startswith("usb") for part in target.split("/"))
