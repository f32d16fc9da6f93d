"""Where an admitted camera's volume is: found (external strategy) or mounted by us.

`external`: udev + systemd-mount or udisks2 mount it; we find the mount of its block device in
/proc/self/mountinfo (proc(5)) by device number, never by the text of its source field, and
wait a bounded time. `mount`: we mount it read-only with
nosuid,nodev,noexec into a private directory (mount(8)), remount read-write only to write
TIME.TXT or wipe, and unmount when the session ends. Mounting never happens for a device the
allow-list refused. This module starts no shell: mount(8) is run with an argument list.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agent.core import log
from agent.core.errors import CameraRefused, CameraUnreadable

_log = log.get(__name__)

_OPTIONS = "ro,nosuid,nodev,noexec"
MOUNTINFO = Path("/proc/self/mountinfo")
CAMERA_FILE_SYSTEMS = ("vfat", "exfat")


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo (proc(5)): what is mounted where."""

    dev: int  # field 3, major:minor of the mounted file system (st_dev of its files)
    root: str  # field 4, the directory of that file system mounted here ("/" for all of it)
    point: str  # field 5
    options: str  # field 6, per-mount options
    fs_type: str  # first field after the "-"


def mount_entries(mountinfo: Path = MOUNTINFO) -> list[MountEntry]:
    out = []
    with mountinfo.open("rb") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 10 or b"-" not in fields[6:]:
                continue
            sep = fields.index(b"-", 6)
            major, _, minor = fields[2].partition(b":")
            if not (major.isdigit() and minor.isdigit()):
                continue
            out.append(
                MountEntry(
                    dev=os.makedev(int(major), int(minor)),
                    root=_unescape(fields[3]),
                    point=_unescape(fields[4]),
                    options=fields[5].decode(errors="replace"),
                    fs_type=fields[sep + 1].decode(errors="replace"),
                )
            )
    return out


def _unescape(field: bytes) -> str:
    """Undo mountinfo's octal escapes of space, tab, newline and backslash (proc(5))."""
    raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8) & 0xFF]), field)
    return os.fsdecode(raw)


def block_device(devnode: str) -> int | None:
    """The device number (st_rdev) of devnode, or None when it is not a block device."""
    try:
        st = os.stat(devnode)
    except OSError:
        return None
    return st.st_rdev if stat.S_ISBLK(st.st_mode) else None


def find_mount(devnode: str, mountinfo: Path = MOUNTINFO) -> str:
    """The mount point of the whole file system on block device devnode, or "" if none.

    The mount is matched by device number: the file system's major:minor (mountinfo field 3)
    against the device node's st_rdev, and the mount point must still show that device when
    stat'ed (nothing mounted over it). Mountinfo's source field is never read: it is whatever
    text the mounter chose, and an unprivileged FUSE mount sets it with `-o fsname=/dev/...`.
    """
    rdev = block_device(devnode)
    if rdev is None:
        return ""
    for entry in mount_entries(mountinfo):
        if entry.dev == rdev and entry.root == "/" and _shows_device(entry.point, rdev):
            return entry.point
    return ""


def _shows_device(point: str, rdev: int) -> bool:
    try:
        return os.stat(point, follow_symlinks=False).st_dev == rdev
    except OSError:
        return False


def wait_for_mount(devnode: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        point = find_mount(devnode)
        if point or time.monotonic() >= deadline:
            return point
        time.sleep(0.2)


def mount_private(devnode: str, fs_type: str, mount_dir: str, serial: str) -> str:
    """Mount read-only into <mount_dir>/<serial> (0700); returns the mount point.

    Only FAT and exFAT, named explicitly: cameras use nothing else, and the type udev read off
    the device must not choose which file-system driver parses it (nor may mount(8) guess).
    """
    if fs_type not in CAMERA_FILE_SYSTEMS:
        raise CameraRefused(
            path=devnode, problem=f"file system {fs_type or 'unknown'!r} is not FAT or exFAT"
        )
    base = Path(mount_dir)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    point = base / serial
    point.mkdir(mode=0o700, exist_ok=True)
    args = ["mount", "-t", fs_type, "-o", _OPTIONS, devnode, str(point)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CameraUnreadable(path=devnode, problem=f"mount failed: {proc.stderr.strip()[:200]}")
    return str(point)


def remount(point: str, writable: bool) -> bool:
    """Switch a volume we mounted between read-only and read-write; False if mount(8) refused
    (the wipe and TIME.TXT then meet a read-only volume and are reported as refused)."""
    mode = "rw" if writable else "ro"
    proc = subprocess.run(
        ["mount", "-o", f"remount,{mode},nosuid,nodev,noexec", point],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        _log.error("device.remount_failed", mountpoint=point, mode=mode, error=proc.stderr[:200])
    return proc.returncode == 0


def options_of(point: str, mountinfo: Path = MOUNTINFO) -> str:
    """The mount options in force at point (the top mount there; for the log and the tests)."""
    found = [e.options for e in mount_entries(mountinfo) if e.point == point]
    return found[-1] if found else ""


def unmount(point: str) -> None:
    subprocess.run(["umount", point], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        os.rmdir(point)
