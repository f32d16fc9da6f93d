"""Simulated cameras at USB-2 speed for `scripts/bench devices`: exFAT images, each attached
to its own read-only loop device and mounted by its own exfat-fuse server, whose reads of that
loop device are limited by a block-I/O cgroup (`--throttle` MiB/s per camera).

Why this throttle: the daemon reads a camera through FUSE, and exfat-fuse reads the image
through the loop device (losetup(8)), in its own process. The cgroup's limit is per device, so
one cgroup holding every camera's server, with a limit on each camera's loop device, gives each
camera its own bus speed: a busy camera cannot lend its share to another, and nothing in the
daemon's process is slowed or changed (the limit is on the camera's side of the USB cable).
cgroup v1 `blkio.throttle.read_bps_device` and v2 `io.max rbps=` (Documentation/admin-guide/
cgroup-v1/blkio-controller.rst, cgroup-v2.rst "IO Interface Files") both throttle the bios a
process submits, reads included. Pages already cached are not throttled: each round drops the
caches after the loop devices are attached and before anything reads them.

fusefat is not used: it reads the image 512 bytes at a time and logs every cluster, ~45 MB/s
of one core here, so 25 of them would measure fusefat. A pass-through FUSE throttle in Python
would spend the same CPU the bench is measuring. Bench tooling only: needs root.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20
_MOUNT_TIMEOUT_S = 15.0


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().strip()


def _is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return any(line.split(" ")[4] == target for line in f)


def drop_caches() -> bool:
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


class ReadThrottle:
    """One block-I/O cgroup; `limit(dev, bps)` caps reads of a device by its processes."""

    def __init__(self) -> None:
        v1 = Path("/sys/fs/cgroup/blkio")
        v2 = Path("/sys/fs/cgroup")
        if (v1 / "blkio.throttle.read_bps_device").exists():
            self.version, root = 1, v1
        elif "io" in (v2 / "cgroup.controllers").read_text(errors="replace").split():
            self.version, root = 2, v2
            # Children get the io controller only when the root hands it down (cgroup-v2.rst,
            # "Enabling and Disabling").
            (v2 / "cgroup.subtree_control").write_text("+io\n")
        else:
            raise RuntimeError("no block-I/O cgroup here (neither blkio v1 nor io v2)")
        # One per process: two runs at once (tests in parallel) never share limits.
        self.path = root / f"dockagent-cameras-{os.getpid()}"
        self.path.mkdir(exist_ok=True)

    def limit(self, device: str, bps: int) -> None:
        """Cap reads of `device` ("MAJ:MIN") at bps bytes/s; 0 removes the cap."""
        if self.version == 1:
            (self.path / "blkio.throttle.read_bps_device").write_text(f"{device} {bps}\n")
        else:
            value = bps if bps else "max"
            (self.path / "io.max").write_text(f"{device} rbps={value}\n")

    def join(self) -> None:
        """Move the calling process into the cgroup (run in the child before exec)."""
        (self.path / "cgroup.procs").write_text(f"{os.getpid()}\n")

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _device_number(devnode: str) -> str:
    rdev = os.stat(devnode).st_rdev
    return f"{os.major(rdev)}:{os.minor(rdev)}"


@dataclass
class Camera:
    serial: str
    image: Path
    mountpoint: Path
    files: int
    size: int
    loop: str = ""
    server: subprocess.Popen[bytes] | None = field(default=None, repr=False)


@contextlib.contextmanager
def attached(cameras: list[Camera], throttle: ReadThrottle, bps: int) -> Iterator[list[Camera]]:
    """Attach and mount each camera, each limited to bps bytes/s of reads (0: unlimited);
    the caches are dropped before the first read. Unmounted and detached on exit."""
    try:
        for cam in cameras:
            cam.loop = _run(["losetup", "--find", "--show", "--read-only", str(cam.image)])
            throttle.limit(_device_number(cam.loop), bps)
        drop_caches()
        for cam in cameras:
            cam.mountpoint.mkdir(parents=True, exist_ok=True)
            # -d keeps exfat-fuse in the foreground (it has no -f), so its pid is ours.
            cam.server = subprocess.Popen(
                ["mount.exfat-fuse", "-d", "-o", "ro", cam.loop, str(cam.mountpoint)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=throttle.join,  # noqa: PLW1509 - one write, before exec
            )
        deadline = time.monotonic() + _MOUNT_TIMEOUT_S
        for cam in cameras:
            while not _is_mounted(cam.mountpoint):
                if time.monotonic() > deadline or (cam.server and cam.server.poll() is not None):
                    raise RuntimeError(f"exfat-fuse did not mount {cam.serial}")
                time.sleep(0.02)
        yield cameras
    finally:
        for cam in cameras:
            _detach(cam, throttle)


def _detach(cam: Camera, throttle: ReadThrottle) -> None:
    umount = ["umount", str(cam.mountpoint)]
    if _is_mounted(cam.mountpoint) and subprocess.run(umount, check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(cam.mountpoint)], check=False)
    if cam.server is not None:
        try:
            cam.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cam.server.kill()
            cam.server.wait()
        cam.server = None
    if cam.loop:
        with contextlib.suppress(OSError, RuntimeError):
            throttle.limit(_device_number(cam.loop), 0)
        subprocess.run(["losetup", "-d", cam.loop], check=False)
        cam.loop = ""
