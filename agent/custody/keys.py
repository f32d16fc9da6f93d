"""The station's Ed25519 signing key: created once, kept 0600, never logged or printed.

Only the public half ever leaves this module in readable form: `dockagent key show`, and
`station.pub` beside the key (0644), which is all that checking a signature needs. Commands that
only look (a technician of the station's group among them) verify with that file and never open
the private key; every load of the private key rewrites the public file if it is missing or
does not match.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.core import durable, log
from agent.core.errors import StationKeyError

PUBLIC_NAME = "station.pub"
PUBLIC_MODE = 0o644
# HKDF's `info` (RFC 5869 section 3.2): what the derived key is for, so it is no other key.
_BINDING_INFO = b"dockagent camera binding v1"

# An Ed25519 SubjectPublicKeyInfo in DER is this prefix and the 32 bytes of the key (RFC 8410
# section 4 and the example of section 10.1): station.pub is read without cryptography's
# serialization module, whose import (every key format, the ciphers, ssh) cost a command that
# only looks a sixth of its start-up. The private key's formats are the writers' to import.
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")

_log = log.get(__name__)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes_raw()).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see _ED25519_SPKI

    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


class Verifier(Protocol):
    """What checking a signature needs: the public key and its id (a StationKey or a
    PublicKey)."""

    @property
    def public(self) -> Ed25519PublicKey: ...

    @property
    def key_id(self) -> str: ...


@dataclass(frozen=True)
class PublicKey:
    """The station key's public half, read from station.pub: verifies, cannot sign."""

    public: Ed25519PublicKey
    key_id: str


@dataclass(frozen=True)
class StationKey:
    private: Ed25519PrivateKey
    key_id: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def binding_key(self) -> bytes:
        """The HMAC-SHA256 key of camera bindings (agent.camera.binding), derived from the
        station key with HKDF-SHA256 (RFC 5869): never stored, so there is no second secret to
        keep 0600 and back up; whoever holds the station key can bind, nobody else can."""
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - see _ED25519_SPKI
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415 - likewise

        raw = self.private.private_bytes_raw()
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_BINDING_INFO)
        return hkdf.derive(raw)


def verify_signature(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def public_path(key_path: Path) -> Path:
    return key_path.with_name(PUBLIC_NAME)


def load_or_create(path: Path) -> StationKey:
    """Load the key at path, generating it on first use (0600, in a directory others cannot
    enter); its public half is kept in station.pub beside it."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return _create(path)
    key = _load_private(path, st)
    _keep_public(path, key)
    return key


def load_verifier(path: Path) -> Verifier | None:
    """The key to check signatures with, for a command that only looks: station.pub, or where
    a station made before it has none yet, the private key if this user may read it. None
    when neither can be read (readers never create a key)."""
    try:
        return load_public(public_path(path))
    except (OSError, StationKeyError):
        pass  # the private key, where this user may read it, says the same
    try:
        return _load_private(path, os.stat(path, follow_symlinks=False))
    except (OSError, StationKeyError):
        return None


def load_public(path: Path) -> PublicKey:
    """station.pub (FileNotFoundError if there is none; StationKeyError if it is no key)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        data = os.read(fd, 64 * 1024)
    finally:
        os.close(fd)
    fast = _ed25519_pem(data)
    if fast is not None:
        return PublicKey(fast, key_id(fast))
    # Not the PEM this module writes: cryptography says what it is, and why it will not do.
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see _ED25519_SPKI

    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise StationKeyError(path=str(path), problem="is not a readable PEM public key") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise StationKeyError(path=str(path), problem="is not an Ed25519 key")
    return PublicKey(public, key_id(public))


def _ed25519_pem(data: bytes) -> Ed25519PublicKey | None:
    """The key of a one-line PEM "PUBLIC KEY" holding an Ed25519 SubjectPublicKeyInfo, as
    public_pem() writes it (RFC 7468 section 13); None for anything else."""
    lines = data.strip().split(b"\n")
    if len(lines) != 3 or lines[0] != b"-----BEGIN PUBLIC KEY-----":
        return None
    if lines[2] != b"-----END PUBLIC KEY-----":
        return None
    try:
        der = base64.b64decode(lines[1], validate=True)
    except ValueError:
        return None
    if len(der) != len(_ED25519_SPKI) + 32 or not der.startswith(_ED25519_SPKI):
        return None
    return Ed25519PublicKey.from_public_bytes(der[len(_ED25519_SPKI) :])


def _load_private(path: Path, st: os.stat_result) -> StationKey:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see _ED25519_SPKI

    if not stat.S_ISREG(st.st_mode):
        raise StationKeyError(path=str(path), problem="is not a regular file")
    if st.st_mode & 0o077:
        raise StationKeyError(
            path=str(path),
            problem=f"mode {stat.S_IMODE(st.st_mode):04o} lets others read it; "
            f"run: chmod 600 {path}",
        )
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        data = os.read(fd, 64 * 1024)
    finally:
        os.close(fd)
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise StationKeyError(path=str(path), problem="is not a readable PEM private key") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise StationKeyError(path=str(path), problem="is not an Ed25519 key")
    return StationKey(private, key_id(private.public_key()))


def _create(path: Path) -> StationKey:
    durable.make_dirs(path.parent)
    mode = stat.S_IMODE(os.stat(path.parent).st_mode)
    if mode & 0o007:
        # Others never reach the key's directory; the station's group may (the data directory
        # is 0750 on an installed station), and the key itself is 0600 in any case.
        os.chmod(path.parent, mode & ~0o007)
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see _ED25519_SPKI

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        durable.write_file(path.parent, path.name, pem)
    except FileExistsError:
        return load_or_create(path)  # created concurrently by another process: use theirs
    key = StationKey(private, key_id(private.public_key()))
    _keep_public(path, key)
    return key


def _keep_public(path: Path, key: StationKey) -> None:
    """station.pub as the private key says (written after it: a crash in between leaves no
    public file, which the next load writes)."""
    pub = public_path(path)
    pem = public_pem(key.public).encode("ascii")
    try:
        if pub.read_bytes() == pem and stat.S_IMODE(pub.stat().st_mode) == PUBLIC_MODE:
            return
    except FileNotFoundError:
        pass
    try:
        durable.replace_file(pub.parent, pub.name, pem, mode=PUBLIC_MODE)
    except OSError as exc:
        # Signing needs only the private key; readers fall back to it where they may read it.
        _log.warning("key.public_write_failed", path=str(pub), reason=exc.strerror)
