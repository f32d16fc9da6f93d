"""Test helpers for camera volumes: FUSE mounts of FAT/exFAT images, tmpfs, independent hashing.

Independent of the agent's code on purpose: these are the ground truth the agent is checked
against. Mounts run the FUSE server in the foreground under our own Popen, so a test knows its
pid and can pull the "camera" out (SIGKILL) in the middle of a copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

MOUNT_TIMEOUT_S = 15.0
EXIT_TIMEOUT_S = 10.0
FUSE_TOOLS = ("fusefat", "mount.exfat-fuse", "losetup", "mkfs.vfat", "mkfs.exfat", "mcopy")

_OCTAL = re.compile(r"\\([0-7]{3})")


def fuse_missing() -> list[str]:
    """What prevents FUSE camera tests here (empty when everything is in place)."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("not running as root")
    try:
        if not stat.S_ISCHR(os.stat("/dev/fuse").st_mode):
            missing.append("/dev/fuse is not a character device")
    except OSError as exc:
        missing.append(f"/dev/fuse: {exc.strerror}")
    missing.extend(f"{tool} not on PATH" for tool in FUSE_TOOLS if shutil.which(tool) is None)
    return missing


def fuse_available() -> bool:
    """True when we are root, /dev/fuse exists and fusefat, exfat-fuse and friends are installed."""
    return not fuse_missing()


def mount_table() -> dict[str, str]:
    """Mount point -> file-system type, from /proc/self/mountinfo."""
    table: dict[str, str] = {}
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), before.split(" ")[4])
            table[point] = after.split(" ")[0]
    return table


def is_mounted(path: Path | str) -> bool:
    return os.path.realpath(path) in mount_table()


def _quiet(cmd: Sequence[str]) -> int:
    return subprocess.run(
        list(cmd), stdin=subprocess.DEVNULL, capture_output=True, check=False
    ).returncode


def detach_mount(path: Path) -> None:
    """Unmount `path` however it can be done; a dead FUSE mount only goes lazily."""
    for cmd in (
        ["umount", str(path)],
        ["umount", "-l", str(path)],
        ["fusermount", "-uz", str(path)],
    ):
        if not is_mounted(path):
            return
        _quiet(cmd)


@dataclass
class Mounted:
    """A mounted camera image. `unplug()` pulls the camera out."""

    path: Path
    fuse_pid: int
    fstype: str
    image: Path
    loop_device: str | None = None
    unplugged: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def fuse_output(self) -> str:
        """What the FUSE server printed so far (its debug chatter and errors)."""
        if self._log is None or self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def unplug(self, detach: bool = False) -> None:
        """SIGKILL the FUSE server, as if the camera were pulled out mid-transfer.

        Afterwards open, read, listdir and even close() of a descriptor opened before fail with
        ENOTCONN, as on a vanished USB disk (stat/fstat may still answer from the kernel's
        attribute cache for about a second). The loop device of an exFAT image is detached like
        a removed block device. The dead mount stays in place so the code under test meets it;
        it is lazily unmounted (umount -l, fusermount -uz) when the context exits, or now with
        `detach=True`.
        """
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self.unplugged = True
        if self.loop_device is not None:
            _quiet(["losetup", "-d", self.loop_device])
        if detach:
            detach_mount(self.path)

    def close(self) -> None:
        """Unmount cleanly if possible, otherwise lazily; reap the server; free the loop."""
        try:
            clean = True
            # dead, or busy (someone holds a descriptor): detach lazily
            if is_mounted(self.path) and (
                self.unplugged or _quiet(["umount", str(self.path)]) != 0
            ):
                clean = False
                detach_mount(self.path)
            if self._proc is not None:
                if not clean and self._proc.poll() is None:
                    self._proc.terminate()  # a lazily detached server would wait for its users
                try:
                    self._proc.wait(timeout=EXIT_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self.loop_device is not None:
                _quiet(["losetup", "-d", self.loop_device])
        finally:
            if self._log is not None:
                self._log.close()


def _start_fuse(
    cmd: list[str], mountpoint: Path, image: Path, fstype: str, loop_device: str | None
) -> Mounted:
    mountpoint = Path(os.path.realpath(mountpoint))
    if is_mounted(mountpoint):
        raise RuntimeError(f"{mountpoint} is already a mount point")
    # Append mode: the server shares this file description, so our seek must not move its writes.
    log = tempfile.TemporaryFile(mode="a+b")  # noqa: SIM115 - closed by Mounted.close()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    except BaseException:
        log.close()
        raise
    mounted = Mounted(
        path=mountpoint,
        fuse_pid=proc.pid,
        fstype=fstype,
        image=image,
        loop_device=loop_device,
        _proc=proc,
        _log=log,
    )
    deadline = time.monotonic() + MOUNT_TIMEOUT_S
    while not is_mounted(mountpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            how = (
                f"exited with status {proc.returncode}"
                if proc.poll() is not None
                else f"not mounted after {MOUNT_TIMEOUT_S:.0f}s"
            )
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            output = mounted.fuse_output()[-2000:].strip()
            mounted.close()
            raise RuntimeError(f"{' '.join(cmd)}: {how}: {output}")
        time.sleep(0.02)
    return mounted


@contextlib.contextmanager
def mount_fat(
    image: Path, mountpoint: Path, readonly: bool = True, fsname: str | None = None
) -> Iterator[Mounted]:
    """Mount a FAT image with fusefat (`-f` foreground; `-o ro`, or `-o rw+` for writing).

    fusefat refuses to start without one of the two. It reports modification months one too
    high, so do not compare times through it. fsname: the source text mountinfo shows, which
    any FUSE mounter may choose (fuse(8)).
    """
    image = Path(image)
    options = ("ro" if readonly else "rw+") + (f",fsname={fsname}" if fsname else "")
    cmd = ["fusefat", "-f", "-o", options, str(image), str(mountpoint)]
    mounted = _start_fuse(cmd, mountpoint, image, "fat", None)
    try:
        yield mounted
    finally:
        mounted.close()


@contextlib.contextmanager
def mount_exfat(image: Path, mountpoint: Path, readonly: bool = True) -> Iterator[Mounted]:
    """Attach an exFAT image to a loop device and mount it with exfat-fuse.

    exfat-fuse has no `-f`: `-d` (debug) is the only way to keep it in the foreground. Writing
    is its default; `-o ro` (and a read-only loop device) for read-only.
    """
    image = Path(image)
    losetup = ["losetup", "--find", "--show", *(["--read-only"] if readonly else []), str(image)]
    proc = subprocess.run(losetup, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"losetup failed: {proc.stderr.decode(errors='replace').strip()}")
    loop = proc.stdout.decode().strip()
    cmd = ["mount.exfat-fuse", "-d", *(["-o", "ro"] if readonly else []), loop, str(mountpoint)]
    try:
        mounted = _start_fuse(cmd, mountpoint, image, "exfat", loop)
    except BaseException:
        _quiet(["losetup", "-d", loop])
        raise
    try:
        yield mounted
    finally:
        mounted.close()


@contextlib.contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a real tmpfs of `size_bytes` (rounded up to pages) at `path` (created if needed)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"mount tmpfs failed: {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        detach_mount(path)


def sha256_file(path: Path | bytes | str) -> str:
    """sha256 of a regular file, the one hash helper of the tests: never through a symlink, never
    blocking on a FIFO (O_NONBLOCK), and anything but a regular file is an error."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AssertionError(f"{path!r} is not a regular file")
        while piece := os.read(fd, 1 << 20):
            digest.update(piece)
    finally:
        os.close(fd)
    return digest.hexdigest()


def sha256_tree(root: Path) -> dict[bytes, str]:
    """sha256 of every regular file below `root`, keyed by its '/'-separated relative raw path.

    Symlinks and other non-regular entries are left out and symlinked directories are not
    followed. Any error (an unreadable directory, a dead mount) raises: nothing is skipped.
    """
    base = os.fsencode(root)
    result: dict[bytes, str] = {}

    def fail(exc: OSError) -> None:
        raise exc

    for dirpath, _dirnames, filenames in os.walk(base, onerror=fail):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(full).st_mode):
                result[os.path.relpath(full, base)] = sha256_file(full)
    return result
