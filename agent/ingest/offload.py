"""Copy one camera file into staging while hashing it, in a single pass.

The hash is of the bytes read from the camera, taken while reading them (DESIGN.md rule 2);
the copy is durable before this returns (agent.core.durable). The file's identity (device, inode,
size, mtime) is checked when it is opened and again after the last read: a file that changed
while it was read is not a valid copy (rule 1). One buffer is reused for every file (measured:
40 % faster on small files). This module writes nothing but the staged file, and no rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from agent.camera import volume
from agent.core import crashpoints, durable
from agent.core.errors import SourceChanged
from agent.core.model import Candidate, StagedCopy, display_name
from agent.custody import staging
from agent.ingest import sealing
from agent.ingest.progress import Progress

# Files from this size on are copied by two threads: this one reads and hashes, a writer
# writes. os.readv, os.write and hashlib's update of a large buffer release the GIL, so a copy
# takes max(read + hash, write) instead of their sum. Smaller files: one thread (no hand-over).
PIPELINE_FROM = 8 << 20
_BUFFERS = 4  # chunks in flight between the two threads
_ALIGN = 4096  # O_DIRECT: buffer address, file offset and length aligned to this (open(2))


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for fd; False where the file system refuses it (tmpfs)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | os.O_DIRECT) if on else (flags & ~os.O_DIRECT))
    except OSError:
        return False
    return True


class _Writer(threading.Thread):
    """Writes filled chunks to the staged temp file, in order, with O_DIRECT where it can.

    Direct I/O skips the page cache: no page allocation and copy for every staged byte, no
    dirty pages to write back at the sync (which is still done: it also flushes metadata and
    the disk cache). A chunk whose length is not aligned (the tail) turns it off for the rest.
    """

    def __init__(self, tmp: durable.TempFile, free: queue.SimpleQueue[mmap.mmap]) -> None:
        super().__init__(name="copy-writer", daemon=True)
        self.tmp = tmp
        self.free = free
        self.full: queue.SimpleQueue[tuple[mmap.mmap, int] | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.direct = _set_direct(tmp.fd, True)

    def run(self) -> None:
        while (item := self.full.get()) is not None:
            buf, n = item
            if self.error is None:
                try:
                    if self.direct and n % _ALIGN:
                        if not _set_direct(self.tmp.fd, False):
                            raise OSError("cannot turn O_DIRECT off")
                        self.direct = False
                    self.tmp.write_all(memoryview(buf)[:n])
                except BaseException as exc:  # handed to the reading thread
                    self.error = exc
            self.free.put(buf)


class Copier:
    """Copies files for one camera; holds the reusable buffer."""

    def __init__(
        self, staging_root: Path, chunk_bytes: int, encrypt_to: tuple[str, ...] = ()
    ) -> None:
        self.staging_root = staging_root
        # The central key(s) every copy is encrypted to (agent.ingest.sealing); none: as read.
        self.recipients = sealing.recipients(encrypt_to)
        # Anonymous mappings: page-aligned, as O_DIRECT needs; reused for every file.
        self.buffers = [mmap.mmap(-1, chunk_bytes) for _ in range(_BUFFERS)]
        # Called after every chunk: the daemon's liveness heartbeat (agent.runtime.liveness).
        self.on_chunk: Callable[[], None] = _nothing
        # Bytes copied, told per chunk (agent.ingest.progress: the store and a progress bar).
        self.progress = Progress(None, str)

    def directory(self, serial: str) -> Path:
        return staging.camera_dir(self.staging_root, serial)

    def copy(self, root_fd: int, cand: Candidate, file_id: int, serial: str) -> StagedCopy:
        """Copy and hash one file, durable (fsync, link, fsync of the directory) on return."""
        staged, tmp = self.copy_unpublished(root_fd, cand, file_id, serial)
        tmp.publish(staged.file_size)
        return staged

    def copy_unpublished(
        self, root_fd: int, cand: Candidate, file_id: int, serial: str
    ) -> tuple[StagedCopy, durable.TempFile]:
        """Copy and hash one file into a temp file, leaving making it durable and publishing it
        to the caller (a batch: one syncfs, then publish each without fsync, then one fsync of
        the directory). The temp file is discarded if this raises."""
        directory = self.directory(serial)
        durable.ensure_private_dir(directory)
        name = staging.staged_name(file_id, cand.rel_path)
        src = volume.open_file(root_fd, cand.rel_path)
        tmp: durable.TempFile | None = None
        try:
            self.progress.file_started(file_id, display_name(cand.rel_path), cand.size)
            before = os.fstat(src)
            # Same volume as listed (device) and unchanged (size, mtime). Inode numbers are not
            # compared: FAT has none, and both the kernel's vfat (iunique()) and fusefat hand out
            # a new one whenever an evicted inode is looked up again (seen here under memory
            # pressure), so comparing them would refuse unchanged files.
            if (before.st_dev, before.st_size, before.st_mtime_ns) != (
                cand.dev,
                cand.size,
                cand.mtime_ns,
            ):
                raise SourceChanged(detail="changed between listing and reading")
            os.posix_fadvise(src, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            digest = hashlib.sha256()
            sealed: sealing.Sealed | None = None
            if self.recipients:
                bound = sealing.sealed_size_bound(cand.size, len(self.recipients))
                tmp = durable.TempFile(directory, name, bound)
                sealed = self._copy_encrypted(src, cand.size, tmp, digest)
                total = sealed.plain_bytes
            elif cand.size < PIPELINE_FROM:
                tmp = durable.TempFile(directory, name, cand.size)
                total = self._copy_serial(src, cand.size, tmp, digest)
            else:
                tmp = durable.TempFile(directory, name, cand.size)
                total = self._copy_pipelined(src, cand.size, tmp, digest)
            after = os.fstat(src)
            if total != cand.size or (after.st_size, after.st_mtime_ns) != (
                before.st_size,
                before.st_mtime_ns,
            ):
                raise SourceChanged(
                    detail=f"changed while it was read (listed {cand.size} bytes, read {total}, "
                    f"now {after.st_size})"
                )
        except BaseException:
            self.progress.file_ended(False)
            if tmp is not None:
                tmp.discard()
            raise
        finally:
            # On a camera pulled out after the last read even close() fails (ENOTCONN); the
            # bytes were all read and checked by then, and a read-only descriptor loses nothing.
            with contextlib.suppress(OSError):
                os.close(src)
        self.progress.file_ended(True)
        crashpoints.hit("copy.published")
        staged = StagedCopy(
            staged_rel=staging.staged_rel(serial, file_id, cand.rel_path),
            sha256=digest.hexdigest(),
            size=total,
            stored_sha256=sealed.cipher_sha256 if sealed else None,
            stored_size=sealed.cipher_bytes if sealed else None,
        )
        return staged, tmp

    def _read(self, src: int, buf: mmap.mmap, size: int, total: int) -> int:
        # Never read more than one byte past the listed size: that byte proves the file grew,
        # and a file that keeps growing must not hold the copy (or fill staging) for as long
        # as it grows.
        n = os.readv(src, [memoryview(buf)[: min(len(buf), size + 1 - total)]])
        if total + n > size:
            raise SourceChanged(
                detail=f"changed while it was read (grew past the listed {size} bytes)"
            )
        return n

    def _copy_serial(
        self, src: int, size: int, tmp: durable.TempFile, digest: hashlib._Hash
    ) -> int:
        buf = self.buffers[0]
        total = 0
        while n := self._read(src, buf, size, total):
            piece = memoryview(buf)[:n]
            digest.update(piece)
            tmp.write_all(piece)
            total += n
            self.on_chunk()
            self.progress.advanced(n)
            if total == n:
                crashpoints.hit("copy.first_chunk")
        return total

    def _copy_encrypted(
        self, src: int, size: int, tmp: durable.TempFile, digest: hashlib._Hash
    ) -> sealing.Sealed:
        """One pass: read a chunk, hash it, encrypt it, hash the ciphertext, write it. Large
        files are written by the O_DIRECT writer thread, as on the plain path (os.write
        releases the GIL, so writing overlaps reading and encrypting)."""
        buf = self.buffers[0]
        total = 0

        def read() -> memoryview:
            nonlocal total
            n = self._read(src, buf, size, total)
            if n:
                total += n
                self.on_chunk()
                self.progress.advanced(n)
                if total == n:
                    crashpoints.hit("copy.first_chunk")
            return memoryview(buf)[:n]

        if size < PIPELINE_FROM:
            return sealing.encrypt(read, _WriteNow(tmp, self.buffers[1]), self.recipients, digest)
        spill = _WriterSpill(tmp, self.buffers[1:])
        try:
            sealed = sealing.encrypt(read, spill, self.recipients, digest)
        finally:
            spill.close()
        return sealed

    def _copy_pipelined(
        self, src: int, size: int, tmp: durable.TempFile, digest: hashlib._Hash
    ) -> int:
        """Three stages at once: a reader thread, this thread hashing, a writer thread.

        Reading (the disk or the camera), hashing (SHA-NI) and writing (O_DIRECT) each release
        the GIL, so a large file takes about the slowest of the three instead of their sum. The
        bytes hashed are exactly the bytes read, and the same buffer goes on to the writer.
        """
        free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        for buf in self.buffers:
            free.put(buf)
        writer = _Writer(tmp, free)
        reader = _Reader(self, src, size, free)
        writer.start()
        reader.start()
        total = 0
        try:
            while writer.error is None:
                buf, n = reader.full.get()
                if reader.error is not None or n == 0:
                    break
                digest.update(memoryview(buf)[:n])
                writer.full.put((buf, n))
                total += n
                self.on_chunk()
                self.progress.advanced(n)
                if total == n:
                    crashpoints.hit("copy.first_chunk")
        finally:
            reader.stop.set()
            writer.full.put(None)
            writer.join()
            # Hand back buffers the reader filled but nobody hashed, so it cannot wait for one.
            while reader.is_alive():
                with contextlib.suppress(queue.Empty):
                    free.put(reader.full.get(timeout=0.05)[0])
            reader.join()
        if reader.error is not None:
            raise reader.error
        if writer.error is not None:
            raise writer.error
        return total


class _WriteNow:
    """Ciphertext written as each buffer fills, by this thread (small files)."""

    def __init__(self, tmp: durable.TempFile, buf: mmap.mmap) -> None:
        self.tmp, self.buf = tmp, buf

    def take(self) -> mmap.mmap:
        return self.buf

    def give(self, buf: mmap.mmap, n: int) -> None:
        self.tmp.write_all(memoryview(buf)[:n])


class _WriterSpill:
    """Ciphertext handed to the O_DIRECT writer thread a buffer at a time (large files)."""

    def __init__(self, tmp: durable.TempFile, buffers: list[mmap.mmap]) -> None:
        self.free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        for buf in buffers:
            self.free.put(buf)
        self.writer = _Writer(tmp, self.free)
        self.writer.start()

    def take(self) -> mmap.mmap:
        self._check()
        return self.free.get()  # the writer hands every buffer back, also after an error

    def give(self, buf: mmap.mmap, n: int) -> None:
        self._check()
        self.writer.full.put((buf, n))

    def close(self) -> None:
        """Wait for the writer to finish; raise its error, if any."""
        self.writer.full.put(None)
        self.writer.join()
        self._check()

    def _check(self) -> None:
        if self.writer.error is not None:
            raise self.writer.error


class _Reader(threading.Thread):
    """Reads a camera file into free buffers, in order, never past the listed size plus one."""

    def __init__(
        self, copier: Copier, src: int, size: int, free: queue.SimpleQueue[mmap.mmap]
    ) -> None:
        super().__init__(name="copy-reader", daemon=True)
        self.copier, self.src, self.size, self.free = copier, src, size, free
        self.full: queue.SimpleQueue[tuple[mmap.mmap, int]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        total = 0
        while not self.stop.is_set():
            buf = self.free.get()
            if self.stop.is_set():
                self.free.put(buf)
                return
            try:
                n = self.copier._read(self.src, buf, self.size, total)
            except BaseException as exc:  # handed to the hashing thread
                self.error = exc
                self.full.put((buf, 0))
                return
            self.full.put((buf, n))
            if n == 0:
                return
            total += n


def _nothing() -> None:
    return None
