"""Encrypt a camera file to the central key (age) in the copy pass that hashes it.

With `[custody] encrypt_to` set, offload hands a file's reads to `encrypt`: each chunk read
from the camera is hashed (the evidence's SHA-256, as without encryption), encrypted by pyrage
(age v1: X25519 recipients, ChaCha20-Poly1305 in 64 KiB chunks, https://age-encryption.org/v1)
and the ciphertext hashed and written to the staged temp file, in one pass; memory holds one
read chunk and a few write chunks whatever the file's size. The station holds no identity that
decrypts: only the recipients' public keys. This is the only module that encrypts (and, with the
configuration check of the keys, the only importer of pyrage); it reads no camera file itself
(the caller's `read` does) and makes nothing durable (the caller publishes the temp file).
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyrage import x25519

# age's payload: 64 KiB plaintext chunks, each with a 16-byte Poly1305 tag, after a 16-byte
# nonce; the header is a few hundred bytes per recipient (rage adds a grease stanza).
_CHUNK = 64 << 10
_TAG = 16
_HEADER_PER_RECIPIENT = 256
_HEADER_BASE = 512


def recipients(keys: Sequence[str]) -> tuple[x25519.Recipient, ...]:
    """The configured `age1...` strings as pyrage recipients (checked at configuration load).
    pyrage is imported here and in encrypt, for a station that encrypts: its native library
    is a megabyte of the memory of every import that does not."""
    if not keys:
        return ()
    from pyrage import x25519  # noqa: PLC0415 - see the docstring

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


class Spill(Protocol):
    """Where the ciphertext goes, a whole buffer at a time: the caller's writer (offload's
    O_DIRECT writer thread for large files, a plain write for small ones)."""

    def take(self) -> mmap.mmap:
        """A free buffer to fill."""
        ...

    def give(self, buf: mmap.mmap, n: int) -> None:
        """Write the first n bytes of buf (in order); the buffer is the spill's again."""
        ...


class _CipherWriter:
    """The staging side, as the file object pyrage writes: hashes the ciphertext and hands it
    on in whole buffers (one write(2) per buffer, not per 64 KiB chunk)."""

    def __init__(self, spill: Spill) -> None:
        self._spill = spill
        self._buf: mmap.mmap | None = None
        self._fill = 0
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
                if self._buf is None:
                    self._buf = self._spill.take()
                take = min(len(self._buf) - self._fill, len(view))
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
        return None  # buffers go on when full, and the last one at the end (drain)

    def drain(self) -> None:
        if self._buf is not None:
            buf, n = self._buf, self._fill
            self._buf, self._fill = None, 0
            if n:
                self._spill.give(buf, n)


def encrypt(
    read: Callable[[], memoryview],
    spill: Spill,
    to: Sequence[x25519.Recipient],
    digest: hashlib._Hash,
) -> Sealed:
    """Read the plaintext through `read` (an empty view at the end), hashing it into `digest`,
    and hand its age encryption to `spill`. An error of `read` or of the spill is raised as
    itself (a SourceChanged, an ENOSPC), not as pyrage's message."""
    import pyrage  # noqa: PLC0415 - recipients() says why

    reader = _PlainReader(read, digest)
    writer = _CipherWriter(spill)
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
