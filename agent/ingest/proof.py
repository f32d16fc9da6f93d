"""Prove what a camera file holds now: its bytes read again from the camera and hashed.

Path, size and mtime prove nothing about content (DESIGN.md rule 7): a camera may reuse a name
after a clock reset, FAT keeps mtimes to 2 s, and a hostile device may serve other bytes of the
same size and time. A file counts as held, and may be wiped, only when the bytes read here hash
to the sealed sha256. The file is opened through agent.camera.volume (O_NOFOLLOW, a regular
file only), checked against the identity it was listed with, hashed with one reusable buffer
(bounded memory, whatever the file's size), and its identity is checked again after the last
read. The descriptor may be kept open (`Proof.fd`) so the wipe can check, just before the
unlink, that the name still leads to the file hashed. This module writes nothing and decides
nothing: comparing the hash is its callers'.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from agent.camera import volume
from agent.core.errors import SourceChanged


@dataclass(frozen=True)
class Proof:
    """The sha256 of a camera file's bytes, read now; `stat` is fstat of the open descriptor
    after the last read (the file those bytes were read from)."""

    sha256: str
    stat: os.stat_result
    fd: int


class Prover:
    """Hashes camera files again, one at a time, with a buffer reused for every file."""

    def __init__(self, chunk_bytes: int) -> None:
        self.buffer = bytearray(chunk_bytes)
        # Called after every chunk: the daemon's liveness heartbeat, as for copies.
        self.on_chunk: Callable[[], None] = _nothing

    def hash_file(self, root_fd: int, rel: bytes, size: int, mtime_ns: int) -> str:
        """The sha256 of the camera file's bytes now; SourceChanged when it is no longer the
        size and mtime listed, or changes while it is read."""
        proof = self.open_and_hash(root_fd, rel, size, mtime_ns)
        close(proof.fd)
        return proof.sha256

    def open_and_hash(self, root_fd: int, rel: bytes, size: int, mtime_ns: int) -> Proof:
        """As hash_file, and the descriptor stays open: the caller closes Proof.fd."""
        fd = volume.open_file(root_fd, rel)
        try:
            before = os.fstat(fd)
            if (before.st_size, before.st_mtime_ns) != (size, mtime_ns):
                raise SourceChanged(detail="its size or time differs from the row's")
            # Drop what the page cache holds of the file, so the bytes hashed are read from
            # the camera now and not the ones the copy read (posix_fadvise(2),
            # POSIX_FADV_DONTNEED; advice only: pages in use stay).
            with contextlib.suppress(OSError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            digest = self._hash(fd, size)
            after = os.fstat(fd)
            if (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns) != (
                before.st_dev,
                before.st_ino,
                before.st_size,
                before.st_mtime_ns,
            ):
                raise SourceChanged(detail="changed while it was hashed")
        except BaseException:
            close(fd)
            raise
        return Proof(digest, after, fd)

    def _hash(self, fd: int, size: int) -> str:
        """Hash exactly `size` bytes; one byte more, or fewer, is a changed file."""
        digest = hashlib.sha256()
        view = memoryview(self.buffer)
        total = 0
        # Never read more than one byte past the size: that byte proves the file grew, and a
        # file that keeps growing must not hold the station for as long as it grows.
        while n := os.readv(fd, [view[: min(len(view), size + 1 - total)]]):
            total += n
            if total > size:
                raise SourceChanged(detail=f"grew past its {size} bytes while it was hashed")
            digest.update(view[:n])
            self.on_chunk()
        if total != size:
            raise SourceChanged(detail=f"read {total} of its {size} bytes")
        return digest.hexdigest()


def close(fd: int) -> None:
    # A camera pulled out makes even close() fail (ENOTCONN); a read-only descriptor loses
    # nothing by it.
    with contextlib.suppress(OSError):
        os.close(fd)


def _nothing() -> None:
    return None
