"""The station's Ed25519 signing key: created once, kept 0600, never logged or printed.

Only the public half ever leaves this module in readable form (`dockagent key show`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.core import durable
from agent.core.errors import StationKeyError


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@dataclass(frozen=True)
class StationKey:
    private: Ed25519PrivateKey
    key_id: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def verify_signature(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def load_or_create(path: Path) -> StationKey:
    """Load the key at path, generating it on first use (0600 in a 0700 directory)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return _create(path)
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
    durable.ensure_private_dir(path.parent)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        durable.write_file(path.parent, path.name, pem)
    except FileExistsError:
        return load_or_create(path)  # created concurrently by another process: use theirs
    return StationKey(private, key_id(private.public_key()))
