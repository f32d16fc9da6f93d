"""Safe read access to a mounted camera volume.

Every path on a camera is hostile: each component is opened relative to its parent's
descriptor with O_NOFOLLOW, so no symbolic link, `..` or mount trick can lead outside the
volume, and files are opened O_NONBLOCK so a FIFO cannot hang the agent (open(2)).
This module reads; the only writes it offers are unlink() for wiping and write_synced() for
the station's own small files on a camera (TIME.TXT, the binding), and it decides nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafePathError(OSError):
    """A path component that is empty, `.`, `..` or contains a slash or NUL."""


def split(rel: bytes) -> list[bytes]:
    parts = rel.split(b"/")
    for part in parts:
        if part in (b"", b".", b"..") or b"\x00" in part:
            raise UnsafePathError(f"unsafe path component in {rel!r}")
    return parts


@contextmanager
def open_root(path: str) -> Iterator[int]:
    """Open the volume's root directory (the mount point itself may be reached via links)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def open_parent(root_fd: int, rel: bytes) -> tuple[int, bytes]:
    """Open the directory holding rel (without following links); returns (fd, last name)."""
    parts = split(rel)
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def write_synced(dir_fd: int, name: str | bytes, data: bytes) -> None:
    """Write `data` as `name` in the directory `dir_fd` and fsync it (O_NOFOLLOW: a link
    planted under that name is refused; O_NONBLOCK: a FIFO cannot hang the agent). The caller
    syncs the directory, or renames first. OSError as the volume gives it (EROFS when read-only)."""
    fd = os.open(name, WRITE_FLAGS, 0o644, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def open_file(root_fd: int, rel: bytes) -> int:
    """Open a regular file beneath the root for reading; refuses links and special files."""
    parent, name = open_parent(root_fd, rel)
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=parent)
    finally:
        os.close(parent)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafePathError(f"not a regular file: {rel!r}")
    return fd


def read_small(root_fd: int, rel: bytes, limit: int = 1 << 20) -> bytes | None:
    """Read a small metadata file (DEVICE.INF, logs); None if absent; refuses over limit."""
    try:
        fd = open_file(root_fd, rel)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise UnsafePathError(f"{rel!r} is {size} bytes, more than the {limit} allowed")
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            data = os.read(fd, min(remaining, 65536))
            if not data:
                break
            chunks.append(data)
            remaining -= len(data)
        return b"".join(chunks)[:limit]
    finally:
        os.close(fd)


class NotTheFileHeldError(OSError):
    """The name no longer leads to the file the caller holds open (replaced, renamed, swapped)."""


def unlink(root_fd: int, rel: bytes, held: os.stat_result | None = None) -> None:
    """Remove one file. With `held` (fstat of a descriptor the caller keeps open on it), the
    name is first checked to still lead to that very file, by fstatat without following links
    relative to the same directory descriptor the unlink uses: same device, inode, size and
    mtime, else NotTheFileHeldError and nothing is removed.

    What this can promise: while the caller's descriptor is open, the kernel keeps that inode,
    so vfat (its inode is found again by directory position) and FUSE (the node stays
    referenced) give the name the same inode number as long as it is the same file. What it
    cannot: the check and the unlink are two system calls, and unlinkat(2) has no "only if
    this inode" form; and a USB device can serve other bytes under the same blocks at any time
    without the kernel knowing. The window is two syscalls on one directory descriptor."""
    parent, name = open_parent(root_fd, rel)
    try:
        if held is not None:
            now = os.stat(name, dir_fd=parent, follow_symlinks=False)
            same = (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) == (
                held.st_dev,
                held.st_ino,
                held.st_size,
                held.st_mtime_ns,
            )
            if not same or not stat.S_ISREG(now.st_mode):
                raise NotTheFileHeldError(f"{rel!r} no longer names the file that was hashed")
        os.unlink(name, dir_fd=parent)
        os.fsync(parent)
    finally:
        os.close(parent)
