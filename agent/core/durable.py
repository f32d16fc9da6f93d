"""Durable write primitives for staging: the one way evidence and sidecars reach the disk.

Temp file in the final directory (O_CREAT|O_EXCL, 0600 unless the caller names a mode: the few
files the station's group may read), space reserved with fallocate before any byte is written,
fsync, publish with link() (never overwrites), unlink the temp, fsync the directory; a file that
is rewritten (replace_file) is renamed over its old version. Without the
directory fsync a simulated power cut lost the file (DESIGN.md rule 5); a new directory's own name
is made durable the same way. An fsync error is never retried and trusted: the caller discards and
copies again (fsync(2), "fsyncgate"). A batch may share one syncfs(2) instead of one fsync per file
only on file systems where that is known to reach the disk (syncfs_covers). This module knows
nothing of cameras, rows or hashes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
from pathlib import Path

from agent.core import crashpoints

DIR_MODE = 0o700
FILE_MODE = 0o600
# What the station's group (technicians who only look) may have: pass through a directory to a
# name it is told (never list it), and read a file of facts that is not evidence.
PASS_DIR_MODE = 0o710
GROUP_READ_MODE = 0o640
TEMP_SUFFIX = ".part"


def make_dirs(path: Path, mode: int = DIR_MODE) -> None:
    """Create path and its missing parents (mode `mode`), each one's name made durable.

    A mkdir is durable only once its parent directory is fsynced (fsync(2), NOTES): without
    that, a power cut could take a camera's staging directory away with every file already
    fsynced into it (seen on the power-cut test layer). So each directory created here has its
    parent fsynced before anything is put into it.
    """
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            os.mkdir(directory, mode)
        try:
            fsync_dir(directory.parent)
        except OSError:
            # A failed fsync is never trusted, and a directory that exists is not made again:
            # left in place, files would be staged and sealed into it while its own name was
            # never synced (seen with EIO injected, tests/faults/test_syscall_crashes.py).
            # Remove it (it is still empty) so the next attempt makes it durably.
            with contextlib.suppress(OSError):
                os.rmdir(directory)
            raise


def ensure_dir(path: Path, mode: int) -> None:
    """Create path (and missing parents) durably, and give it exactly `mode`."""
    make_dirs(path, mode)
    st = os.stat(path, follow_symlinks=False)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)  # made under a umask, or by an older agent


def ensure_private_dir(path: Path) -> None:
    """Create path (and missing parents) as 0700, durably, and make sure it is not wider."""
    make_dirs(path)
    st = os.stat(path, follow_symlinks=False)
    if st.st_mode & 0o077:
        os.chmod(path, DIR_MODE)


def fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


class TempFile:
    """A temp file beside its final name, published atomically and durably."""

    def __init__(
        self, directory: Path, final_name: str, size_hint: int = 0, mode: int = FILE_MODE
    ) -> None:
        self.directory = directory
        self.final_name = final_name
        self.temp_name = f".{final_name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        self.fd = os.open(
            directory / self.temp_name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode,
        )
        self.published = False
        if mode != FILE_MODE:
            # A file the group may read: its mode said outright, not left to the umask.
            os.fchmod(self.fd, mode)
        if size_hint > 0:
            try:
                # Disk full must fail here, before copying, not halfway (DESIGN.md rule 3).
                reserve(self.fd, size_hint)
            except OSError:
                self.discard()
                raise

    def write_all(self, data: memoryview | bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def write_at(self, data: memoryview | bytes, offset: int) -> None:
        """pwrite(2) all of data at offset: a large copy's writer threads, each its chunks."""
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written

    def publish(
        self, exact_size: int | None = None, sync_dir: bool = True, sync_file: bool = True
    ) -> Path:
        """fsync, link to the final name (refusing to overwrite), unlink temp, fsync the dir.

        With sync_dir=False the caller fsyncs the directory once for a batch of files, and
        must do so before anything (a committed row) says the file exists. sync_file=False is
        only for a batch whose content the caller already made durable (sync_filesystem); on
        a file system where syncfs does not reach the disk the file is fsynced anyway, and so
        is a file cut here to its exact size.
        """
        try:
            if exact_size is not None and os.fstat(self.fd).st_size != exact_size:
                # fallocate reserved more than was written (a file that shrank, or a copy sealed
                # to the central key, reserved at its size bound). The new size is a change of
                # the file after any syncfs of its batch, so the file is fsynced itself.
                os.ftruncate(self.fd, exact_size)
                sync_file = True
            if sync_file or not syncfs_covers(self.fd):
                os.fsync(self.fd)
            crashpoints.hit("staging.temp_synced")
            os.close(self.fd)
            self.fd = -1
            os.link(self.directory / self.temp_name, self.directory / self.final_name)
            crashpoints.hit("staging.linked")
            os.unlink(self.directory / self.temp_name)
            if sync_dir:
                fsync_dir(self.directory)
        except BaseException:
            self.discard()
            raise
        self.published = True
        return self.directory / self.final_name

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / self.temp_name)

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.published:
            self.discard()


def sync_filesystem(path: Path) -> bool:
    """syncfs(2): make everything written to path's file system durable, in one call.

    Used for a batch of small files instead of one fsync each. Since Linux 5.8 syncfs reports
    writeback errors of the file system; an error means the whole batch is discarded and
    copied again, never trusted. Returns False, having done nothing, where syncfs is not known
    to reach the disk (syncfs_covers): there TempFile.publish fsyncs each file itself.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if not syncfs_covers(fd):
            return False
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)
    return True


_libc = ctypes.CDLL(None, use_errno=True)

# statfs(2) f_type of the file systems whose syncfs(2) makes every file's written data and
# metadata durable. syncfs writes back every dirty inode of the file system and then calls its
# sync_fs operation, which for these commits the journal (or checkpoint, or transaction) and
# flushes the disk's cache. tmpfs: nothing of it survives a power cut, with or without fsync.
# Everything else gets one fsync per file. FUSE (0x65735546) in particular: the kernel sends
# FUSE_SYNCFS only to virtiofs (fuse_sync_fs() returns at once unless fc->sync_fs is set), so
# an ordinary FUSE server is never told to make anything durable by a syncfs, only by the
# FUSE_FSYNC of each file. NFS (0x6969) and CIFS/SMB (0xFF534D42, 0xFE534D42) promise that a
# file's fsync reaches the server's disk; what a syncfs does there depends on client and server.
# Unknown types are treated the same: the fast path is an allow-list.
SYNCFS_COVERS = {
    0xEF53: "ext2/ext3/ext4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0xF2F52010: "f2fs",
    0x01021994: "tmpfs",
}
_STATFS_BYTES = 256  # struct statfs is 120 bytes on x86-64 and arm64; f_type comes first


def fs_type(fd: int) -> int:
    """statfs(2) f_type of the file system holding fd (the magic number of its driver)."""
    buf = ctypes.create_string_buffer(_STATFS_BYTES)
    if _libc.fstatfs(fd, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def syncfs_covers(fd: int) -> bool:
    """True when one syncfs(2) makes fd's file durable as an fsync of it would (see above).

    Asked per call, not cached: a statfs costs less than the syscalls around it, and a cache
    keyed by device number could outlive its mount (anonymous device numbers are reused).
    """
    return fs_type(fd) in SYNCFS_COVERS


def reserve(fd: int, size: int) -> None:
    """fallocate(2) size bytes; nothing where the file system cannot reserve space.

    Not posix_fallocate(3): where the file system has no fallocate (FUSE servers without it,
    NFSv3) glibc emulates it by writing a zero into every block, one write each: on a FUSE
    staging that was 2,048 synchronous round trips (about 1.5 s) before an 8 MiB copy even
    started. There the copy goes ahead unreserved: the import's free-space preflight has
    already run, and ENOSPC halfway is handled like any other disk-full.
    """
    if _fallocate(fd, 0, 0, size) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err))


_fallocate = getattr(_libc, "fallocate64", None) or _libc.fallocate  # off_t of 64 bits
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


def write_file(
    directory: Path, name: str, data: bytes, sync_dir: bool = True, mode: int = FILE_MODE
) -> Path:
    """Write a small file durably under a name that must not exist yet."""
    with TempFile(directory, name, len(data), mode) as tmp:
        tmp.write_all(data)
        return tmp.publish(len(data), sync_dir=sync_dir)


def replace_file(directory: Path, name: str, data: bytes, mode: int = FILE_MODE) -> Path:
    """Write a small file durably, replacing a previous version (the chain head, a receipt)."""
    with TempFile(directory, name, len(data), mode) as tmp:
        tmp.write_all(data)
        os.fsync(tmp.fd)
        os.close(tmp.fd)
        tmp.fd = -1
        os.replace(directory / tmp.temp_name, directory / name)
        tmp.published = True
        fsync_dir(directory)
    return directory / name
