"""Copy one camera file into staging while hashing it, in a single pass.

The hash is of the bytes read from the camera, taken while reading them (DESIGN.md rule 2);
the copy is durable before this returns (agent.core.durable). The file's identity (device, inode,
size, mtime) is checked when it is opened and again after the last read: a file that changed
while it was read is not a valid copy (rule 1). One buffer is reused for every file (measured:
40 % faster on small files). This module writes nothing but the staged file, and no rows.
"""

from __future__ import annotations

import contextlib
import errno
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

# Files from this size on are copied by four threads: a reader, this one hashing, and two
# writers. os.readv, os.pwrite and hashlib's update of a large buffer release the GIL, so a
# copy takes about the slowest of read, hash and write instead of their sum. Smaller files:
# one thread (no hand-over).
PIPELINE_FROM = 8 << 20
# A large file's chunks: at least this big whatever copy_chunk_bytes says. Read and written
# with O_DIRECT they never touch the page cache, so a bigger chunk costs no cache pressure and
# cuts the per-chunk Python work (queue hand-offs, progress) and the system calls by as much.
PIPELINE_CHUNK = 2 << 20
_WRITERS = 2  # O_DIRECT writes in flight: with one, the disk idled between its writes
_BUFFERS = 6  # chunks in flight: one being read, one hashed, the writers', spares
_ALIGN = 4096  # O_DIRECT: buffer address, file offset and length aligned to this (open(2))
# The free chunks of a large file's copy are handed out last-returned first. A chunk's pages
# are resident from its first use on (anonymous mmap), so a camera read slower than the
# station hashes and writes (a USB-2 camera: 30 MiB/s) cycles through the two or three chunks
# it needs and never touches the others; handed out in turn (FIFO), every camera copying at
# once held all six, 12 MiB each (`scripts/bench devices`, peak resident memory per round).
_FreeChunks = queue.LifoQueue


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for fd; False where the file system refuses it (tmpfs)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | os.O_DIRECT) if on else (flags & ~os.O_DIRECT))
    except OSError:
        return False
    return True


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


class _Writer(threading.Thread):
    """Writes filled chunks to the staged temp file at their offsets, with O_DIRECT where it
    can; several run at once, so the disk always has a write queued.

    Direct I/O skips the page cache: no page allocated and copied for every staged byte, no
    dirty pages to write back at the sync (which is still done: it also flushes metadata and
    the disk cache). Every chunk but the last is whole (the reader fills each buffer), so
    offsets stay aligned; an unaligned last chunk is written once the writers are done
    (_write_tail). The ciphertext's chunks come in order through the same queue.
    """

    def __init__(
        self,
        tmp: durable.TempFile,
        full: queue.SimpleQueue[tuple[mmap.mmap, int, int] | None],
        free: _FreeChunks[mmap.mmap],
    ) -> None:
        super().__init__(name="copy-writer", daemon=True)
        self.tmp, self.full, self.free = tmp, full, free
        self.error: BaseException | None = None

    def run(self) -> None:
        while (item := self.full.get()) is not None:
            buf, offset, n = item
            if self.error is None:
                try:
                    self.tmp.write_at(memoryview(buf)[:n], offset)
                except BaseException as exc:  # handed to the hashing thread
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
        # Anonymous mappings: page-aligned, as O_DIRECT needs; reused for every file. Two of
        # copy_chunk_bytes for small files (read, and the ciphertext); _BUFFERS of at least
        # PIPELINE_CHUNK for large ones, mapped at the first large file (a page of an anonymous
        # mapping takes memory only once touched).
        self.buffers = [mmap.mmap(-1, chunk_bytes) for _ in range(2)]
        self.large_chunk = max(chunk_bytes, PIPELINE_CHUNK)
        self._large: list[mmap.mmap] = []
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
            self._advanced(n, total)
        return total

    def _large_buffers(self) -> list[mmap.mmap]:
        if not self._large:
            self._large = [mmap.mmap(-1, self.large_chunk) for _ in range(_BUFFERS)]
        return self._large

    def _copy_encrypted(
        self, src: int, size: int, tmp: durable.TempFile, digest: hashlib._Hash
    ) -> sealing.Sealed:
        """One pass: read a chunk, hash it, encrypt it, hash the ciphertext, write it. A large
        file is read by the reader thread and written by the writer threads, as on the plain
        path (both O_DIRECT where the file systems allow it), so reading and writing overlap
        the encryption."""
        if size < PIPELINE_FROM:
            buf = self.buffers[0]
            total = 0

            def read() -> memoryview:
                nonlocal total
                n = self._read(src, buf, size, total)
                total += n
                self._advanced(n, total)
                return memoryview(buf)[:n]

            return sealing.encrypt(read, _WriteNow(tmp, self.buffers[1]), self.recipients, digest)
        buffers = self._large_buffers()
        free: _FreeChunks[mmap.mmap] = _FreeChunks()
        for buf in buffers[: _BUFFERS // 2]:
            free.put(buf)
        reader = _Reader(src, size, free, direct=_set_direct(src, True))
        spill = _Writers(tmp, buffers[_BUFFERS // 2 :], self.large_chunk)
        reader.start()
        held: list[mmap.mmap] = []  # the chunk pyrage is reading, handed back at the next read
        total = 0

        def read_ahead() -> memoryview:
            nonlocal total
            if held:
                free.put(held.pop())
            buf, n = reader.full.get()
            if reader.error is not None:
                raise reader.error
            held.append(buf)
            total += n
            self._advanced(n, total)
            return memoryview(buf)[:n]

        try:
            sealed = sealing.encrypt(read_ahead, spill, self.recipients, digest)
        finally:
            if held:
                free.put(held.pop())
            reader.finish()
            spill.close()
        spill.finish()
        return sealed

    def _advanced(self, n: int, total: int) -> None:
        """A chunk of n bytes was read (and hashed): the heartbeat, the progress, and the
        crash point after a file's first chunk."""
        if n:
            self.on_chunk()
            self.progress.advanced(n)
            if total == n:
                crashpoints.hit("copy.first_chunk")

    def _copy_pipelined(
        self, src: int, size: int, tmp: durable.TempFile, digest: hashlib._Hash
    ) -> int:
        """Four threads at once: a reader, this thread hashing, two writers.

        Reading (the disk or the camera), hashing (SHA-NI) and writing (O_DIRECT) each release
        the GIL, so a large file takes about the slowest of the three instead of their sum. The
        bytes hashed are exactly the bytes read, and the same buffer goes on to a writer.
        """
        free: _FreeChunks[mmap.mmap] = _FreeChunks()
        for buf in self._large_buffers():
            free.put(buf)
        writers = _Writers(tmp, [], self.large_chunk, free)
        reader = _Reader(src, size, free, direct=_set_direct(src, True))
        reader.start()
        total = 0
        try:
            while True:
                buf, n = reader.full.get()
                if reader.error is not None or n == 0:
                    free.put(buf)
                    break
                digest.update(memoryview(buf)[:n])
                writers.give(buf, n)
                total += n
                self._advanced(n, total)
        finally:
            reader.finish()
            writers.close()
        if reader.error is not None:
            raise reader.error
        writers.finish()
        return total


class _WriteNow:
    """Ciphertext written as each buffer fills, by this thread (small files)."""

    def __init__(self, tmp: durable.TempFile, buf: mmap.mmap) -> None:
        self.tmp, self.buf = tmp, buf

    def take(self) -> mmap.mmap:
        return self.buf

    def give(self, buf: mmap.mmap, n: int) -> None:
        self.tmp.write_all(memoryview(buf)[:n])


class _Writers:
    """The writer threads of one large file: chunks given in file order are written at their
    offsets, O_DIRECT where the staging file system allows it and the chunks are aligned; the
    unaligned last chunk through the cache once the writers are done (O_DIRECT would need it
    padded past the file's size, and cutting that off after the batch's sync would not be
    durable). Also the ciphertext's spill (agent.ingest.sealing.Spill)."""

    def __init__(
        self,
        tmp: durable.TempFile,
        buffers: list[mmap.mmap],
        chunk: int,
        free: _FreeChunks[mmap.mmap] | None = None,
    ) -> None:
        self.tmp = tmp
        self.free: _FreeChunks[mmap.mmap] = free if free is not None else _FreeChunks()
        for buf in buffers:
            self.free.put(buf)
        self.full: queue.SimpleQueue[tuple[mmap.mmap, int, int] | None] = queue.SimpleQueue()
        self.direct = chunk % _ALIGN == 0 and _set_direct(tmp.fd, True)
        self.offset = 0
        self.tail: list[tuple[mmap.mmap, int, int]] = []
        self.threads = [_Writer(tmp, self.full, self.free) for _ in range(_WRITERS)]
        for thread in self.threads:
            thread.start()

    def take(self) -> mmap.mmap:
        self._check()
        return self.free.get()  # the writers hand every buffer back, also after an error

    def give(self, buf: mmap.mmap, n: int) -> None:
        self._check()
        if self.direct and (n % _ALIGN or self.tail):
            self.tail.append((buf, self.offset, n))  # only ever the last chunk
        else:
            self.full.put((buf, self.offset, n))
        self.offset += n

    def close(self) -> None:
        """Wait for the writers to write every chunk given to them."""
        for _ in self.threads:
            self.full.put(None)
        for thread in self.threads:
            thread.join()

    def finish(self) -> None:
        """Once closed: raise the writers' error, if any, else write the tail."""
        self._check()
        if self.tail:
            if not _set_direct(self.tmp.fd, False):
                raise OSError(errno.EINVAL, "cannot turn O_DIRECT off for the end of the copy")
            for buf, offset, n in self.tail:
                self.tmp.write_at(memoryview(buf)[:n], offset)
                self.free.put(buf)
            self.tail.clear()

    def _check(self) -> None:
        for thread in self.threads:
            if thread.error is not None:
                raise thread.error


class _Reader(threading.Thread):
    """Reads a camera file into free buffers, in order, each filled whole but the last.

    With O_DIRECT where the file system allows it: the camera's bytes go straight into the
    buffer, with no page cache allocated and copied on the way (that copy, and evicting it
    again, was most of the system time of a cold import). A file is read once (the copy);
    what reads it later (the proof, the wipe) reads the camera again, not a cached copy.
    """

    def __init__(self, src: int, size: int, free: _FreeChunks[mmap.mmap], *, direct: bool) -> None:
        super().__init__(name="copy-reader", daemon=True)
        self.src, self.size, self.free, self.direct = src, size, free, direct
        self.full: queue.SimpleQueue[tuple[mmap.mmap, int]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.total = 0

    def run(self) -> None:
        while not self.stop.is_set():
            buf = self.free.get()
            if self.stop.is_set():
                self.free.put(buf)
                return
            try:
                n = self._fill(buf)
            except BaseException as exc:  # handed to the hashing thread
                self.error = exc
                self.full.put((buf, 0))
                return
            self.full.put((buf, n))
            if n == 0:
                return

    def finish(self) -> None:
        """Stop reading, handing back buffers filled but not taken, so it cannot wait for
        one; the file is read through the cache again from here (a later read of it)."""
        self.stop.set()
        while self.is_alive():
            with contextlib.suppress(queue.Empty):
                self.free.put(self.full.get(timeout=0.05)[0])
        self.join()
        if self.direct:
            _set_direct(self.src, False)

    def _fill(self, buf: mmap.mmap) -> int:
        """Fill buf from the file: whole, unless the file ends first. Never reads more than
        one byte past the listed size (a direct read: the aligned block holding that byte);
        that byte proves the file grew, and a file that keeps growing must not hold the copy
        (or fill staging) for as long as it grows."""
        view = memoryview(buf)
        got = 0
        while True:
            left = self.size + 1 - self.total
            end = min(len(buf), got + (_aligned(left) if self.direct else left))
            if got >= end:
                return got
            n = self._read(view[got:end])
            if n == 0:
                return got
            got += n
            self.total += n
            if self.total > self.size:
                raise SourceChanged(
                    detail=f"changed while it was read (grew past the listed {self.size} bytes)"
                )
            if self.direct and n % _ALIGN:
                # A short direct read (the end of the file): any further read is unaligned.
                self.direct = not _set_direct(self.src, False)

    def _read(self, view: memoryview) -> int:
        try:
            return os.readv(self.src, [view])
        except OSError as exc:
            # Some FUSE servers take O_DIRECT at fcntl(2) and refuse the read (open(2): EINVAL).
            if not (self.direct and exc.errno == errno.EINVAL):
                raise
        self.direct = not _set_direct(self.src, False)
        return os.readv(self.src, [view])


def _nothing() -> None:
    return None
