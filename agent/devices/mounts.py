"""Where an admitted camera's volume is: found (external strategy) or mounted by us.

`external`: udev + systemd-mount or udisks2 mount it; we look its devnode up in
/proc/self/mountinfo (proc(5)) and wait a bounded time. `mount`: we mount it read-only with
nosuid,nodev,noexec into a private directory (mount(8)), remount read-write only to write
TIME.TXT or wipe, and unmount when the session ends. Mounting never happens for a device the
allow-list refused. This module starts no shell: mount(8) is run with an argument list.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

from agent.core import log
from agent.core.errors import CameraUnreadable

_log = log.get(__name__)

_OPTIONS = "ro,nosuid,nodev,noexec"


def find_mount(devnode: str) -> str:
    """The mount point of devnode, or "" if it is not mounted."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 10:
                continue
            sep = fields.index("-", 6)
            if fields[sep + 2] == devnode:
                return fields[4].encode().decode("unicode_escape")
    return ""


def wait_for_mount(devnode: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        point = find_mount(devnode)
        if point or time.monotonic() >= deadline:
            return point
        time.sleep(0.2)


def mount_private(devnode: str, fs_type: str, mount_dir: str, serial: str) -> str:
    """Mount read-only into <mount_dir>/<serial> (0700); returns the mount point."""
    base = Path(mount_dir)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    point = base / serial
    point.mkdir(mode=0o700, exist_ok=True)
    args = ["mount", "-o", _OPTIONS]
    if fs_type:
        args += ["-t", fs_type]
    proc = subprocess.run([*args, devnode, str(point)], capture_output=True, text=True, check=False)
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


def options_of(point: str) -> str:
    """The mount options in force at point (for the log and the tests)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 5 and fields[4] == point:
                return fields[5]
    return ""


def unmount(point: str) -> None:
    subprocess.run(["umount", point], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        os.rmdir(point)
