"""The central server's age key for tests of stations that encrypt their copies to it.

Made with Debian's `age-keygen` and used with Debian's `age`, as the central side would: the
tests never decrypt with the agent's library. `plaintext_runs` finds any stretch of a camera
file's bytes in a tree (the staging directory, a sink): a run of WINDOW + STRIDE = 272 bytes
of a recording always holds one of the windows taken (as tests/support/leak_check.py does for logs).
Nothing here imports the agent.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tests.support.leak_check import RECORDING_SUFFIXES, STRIDE, WINDOW

_RECIPIENT = re.compile(rb"age1[02-9ac-hj-np-z]{58}")


def central_identity(path: Path) -> Path:
    """A new age X25519 identity file at `path` (0600), as `age-keygen -o` writes it."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    os.chmod(path, 0o600)
    return path


def recipient_of(identity: Path) -> str:
    """The `age1...` recipient of an identity file (its `# public key:` line)."""
    found = _RECIPIENT.search(identity.read_bytes())
    assert found is not None, f"{identity} names no public key"
    return found.group().decode()


def encrypt_to(*identities: Path) -> str:
    """The [custody] table of a station that encrypts its copies to these identities' keys."""
    keys = ", ".join(f'"{recipient_of(i)}"' for i in identities)
    return f"\n[custody]\nencrypt_to = [{keys}]\n"


def decrypt(path: Path, identity: Path) -> bytes:
    """`age -d -i identity path`: the plaintext (a small file: tests compare hashes)."""
    return subprocess.run(
        ["age", "-d", "-i", str(identity), str(path)], check=True, capture_output=True
    ).stdout


def camera_windows(files: Iterable[Path]) -> set[bytes]:
    """Windows of each recording, every STRIDE bytes (runs of few byte values skipped)."""
    windows: set[bytes] = set()
    for path in files:
        if path.suffix.lower() not in RECORDING_SUFFIXES:
            continue
        data = path.read_bytes()
        for i in range(0, len(data) - WINDOW + 1, STRIDE):
            piece = data[i : i + WINDOW]
            if len(set(piece)) > 4:
                windows.add(piece)
    return windows


def plaintext_runs(root: Path, windows: set[bytes]) -> list[str]:
    """Files below root holding a 272-byte run of a camera file, by name."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        if any(data[i : i + WINDOW] in windows for i in range(len(data) - WINDOW + 1)):
            found.append(str(path.relative_to(root)))
    return found
