"""Encrypt a camera file to the central key (age) in the copy pass that hashes it.

With `[custody] encrypt_to` set, offload hands a file's reads to `encrypt`: each chunk read
from the camera is hashed (the evidence's SHA-256, as without encryption), encrypted by pyrage
(age v1: X25519 recipients, ChaCha20-Poly1305 in 64 KiB chunks, https://age-encryption.org/v1)
and the ciphertext hashed and written to the staged temp file, in one pass; memory holds one
read chunk and one write chunk whatever the file's size. The station holds no identity that
decrypts: only the recipients' public keys. This is the only module that encrypts (and, with the
configuration check of the keys, the only importer of pyrage); it reads no camera file itself
(the caller's `read` does) and makes nothing durable (the caller publishes the temp file).
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyrage
from pyrage import x25519

from agent.core import durable

# age's payload: 64 KiB plaintext chunks, each with a 16-byte Poly1305 tag, after a 16-byte
# nonce; the header is a few hundred bytes per recipient (rage adds a grease stanza).
_CHUNK = 64 << 10
_TAG = 16
_HEADER_PER_RECIPIENT = 256
_HEADER_BASE = 512
_ALIGN = 4096  # O_DIRECT: buffer address, file offset and length aligned to this (open(2))


def recipients(keys: Sequence[str]) -> tuple[x25519.Recipient, ...]:
    """The configured `age1...` strings as pyrage recipients (checked at configuration load)."""
    return tuple(x25519.Recipient.from_str(k) for k in keys)


def sealed_size_bound(size: int, n_recipients: int) -> int:
    """At least the size of the age file of `size` bytes: what staging reserves for it."""
    chunks = max(1, -(-size // _CHUNK))
    return size + chunks * _TAG + _TAG + _HEADER_BASE + _HEADER_PER_RECIPIENT * n_recipients


@dataclass(frozen=True)
class Sealed:
    """What one encrypting pass read and wrote."""

    plain_bytes: int
    cipher_sha256: str
    cipher_bytes: int


class _PlainReader:
    """The camera side, as the file object pyrage reads: serves the caller's chunks (each
    hashed as read) in the small pieces pyrage asks for (8 KiB, its BufReader's)."""

    def __init__(self, read: Callable[[], memoryview], digest: hashlib._Hash) -> None:
        self._read = read
        self._digest = digest
        self._chunk = memoryview(b"")
        self.total = 0
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            if not self._chunk:
                self._chunk = self._read()
                self._digest.update(self._chunk)
                self.total += len(self._chunk)
        except BaseException as exc:  # pyrage would turn it into a bare message
            self.error = exc
            raise
        take = len(self._chunk) if n < 0 else n
        piece, self._chunk = self._chunk[:take], self._chunk[take:]
        return bytes(piece)


class _CipherWriter:
    """The staging side, as the file object pyrage writes: hashes the ciphertext and writes it
    to the temp file in whole buffers (one write(2) per buffer, not per 64 KiB chunk), with
    O_DIRECT where `set_direct` can turn it on (as offload's plain writer: no page cache for
    staged bytes); a buffer whose length is not aligned (the tail) turns it off."""

    def __init__(
        self, tmp: durable.TempFile, buffer: mmap.mmap, set_direct: Callable[[int, bool], bool]
    ) -> None:
        self._tmp = tmp
        self._buf = memoryview(buffer)
        self._fill = 0
        self._set_direct = set_direct
        self._direct = set_direct(tmp.fd, True)
        self.digest = hashlib.sha256()
        self.total = 0
        self.error: BaseException | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        try:
            view = memoryview(data)
            self.digest.update(view)
            self.total += len(view)
            while view:
                room = len(self._buf) - self._fill
                take = min(room, len(view))
                self._buf[self._fill : self._fill + take] = view[:take]
                self._fill += take
                view = view[take:]
                if self._fill == len(self._buf):
                    self.drain()
        except BaseException as exc:  # kept for the caller: ENOSPC must stay ENOSPC
            self.error = exc
            raise
        return len(data)

    def flush(self) -> None:
        try:
            self.drain()
        except BaseException as exc:
            self.error = exc
            raise

    def drain(self) -> None:
        if self._fill:
            if self._direct and self._fill % _ALIGN:
                if not self._set_direct(self._tmp.fd, False):
                    raise OSError("cannot turn O_DIRECT off")
                self._direct = False
            self._tmp.write_all(self._buf[: self._fill])
            self._fill = 0


def encrypt(
    read: Callable[[], memoryview],
    tmp: durable.TempFile,
    to: Sequence[x25519.Recipient],
    buffer: mmap.mmap,
    digest: hashlib._Hash,
    set_direct: Callable[[int, bool], bool] = lambda _fd, _on: False,
) -> Sealed:
    """Read the plaintext through `read` (an empty view at the end), hashing it into `digest`,
    and write its age encryption to `tmp` through `buffer` (page-aligned, for O_DIRECT). An
    error of `read` or of a write is raised as itself (a SourceChanged, an ENOSPC), not as
    pyrage's message."""
    reader = _PlainReader(read, digest)
    writer = _CipherWriter(tmp, buffer, set_direct)
    try:
        pyrage.encrypt_io(reader, writer, list(to))  # type: ignore[arg-type]
    except Exception:
        if reader.error is not None:
            raise reader.error from None
        if writer.error is not None:
            raise writer.error from None
        raise
    writer.drain()
    return Sealed(reader.total, writer.digest.hexdigest(), writer.total)
