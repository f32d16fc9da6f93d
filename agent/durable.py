"""Durable write primitives for staging: the one way evidence and sidecars reach the disk.

Temp file in the final directory (O_CREAT|O_EXCL, 0600), space reserved with posix_fallocate
before any byte is written, fsync, publish with link() (never overwrites), unlink the temp,
fsync the directory. Without the directory fsync a simulated power cut lost the file
(DESIGN.md rule 5). An fsync error is never retried and trusted: the caller discards and
copies again (fsync(2), "fsyncgate"). This module knows nothing of cameras, rows or hashes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
from pathlib import Path

from agent import crashpoints

DIR_MODE = 0o700
FILE_MODE = 0o600
TEMP_SUFFIX = ".part"


def ensure_private_dir(path: Path) -> None:
    """Create path (and parents) as 0700 and make sure an existing one is not wider."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
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

    def __init__(self, directory: Path, final_name: str, size_hint: int = 0) -> None:
        self.directory = directory
        self.final_name = final_name
        self.temp_name = f".{final_name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        self.fd = os.open(
            directory / self.temp_name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            FILE_MODE,
        )
        self.published = False
        if size_hint > 0:
            try:
                # Disk full must fail here, before copying, not halfway (DESIGN.md rule 3).
                os.posix_fallocate(self.fd, 0, size_hint)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    self.discard()
                    raise

    def write_all(self, data: memoryview | bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def publish(
        self, exact_size: int | None = None, sync_dir: bool = True, sync_file: bool = True
    ) -> Path:
        """fsync, link to the final name (refusing to overwrite), unlink temp, fsync the dir.

        With sync_dir=False the caller fsyncs the directory once for a batch of files, and
        must do so before anything (a committed row) says the file exists. sync_file=False is
        only for a batch whose content the caller already made durable (sync_filesystem).
        """
        try:
            if exact_size is not None:
                # fallocate may have reserved more than was written (a file that shrank).
                os.ftruncate(self.fd, exact_size)
            if sync_file:
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


def sync_filesystem(path: Path) -> None:
    """syncfs(2): make everything written to path's file system durable, in one call.

    Used for a batch of small files instead of one fsync each. Since Linux 5.8 syncfs reports
    writeback errors of the file system; an error means the whole batch is discarded and
    copied again, never trusted.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)


def write_file(directory: Path, name: str, data: bytes, sync_dir: bool = True) -> Path:
    """Write a small file durably under a name that must not exist yet."""
    with TempFile(directory, name, len(data)) as tmp:
        tmp.write_all(data)
        return tmp.publish(len(data), sync_dir=sync_dir)


def replace_file(directory: Path, name: str, data: bytes) -> Path:
    """Write a small file durably, replacing a previous version (recovery of sidecars)."""
    with TempFile(directory, name, len(data)) as tmp:
        tmp.write_all(data)
        os.fsync(tmp.fd)
        os.close(tmp.fd)
        tmp.fd = -1
        os.replace(directory / tmp.temp_name, directory / name)
        tmp.published = True
        fsync_dir(directory)
    return directory / name
