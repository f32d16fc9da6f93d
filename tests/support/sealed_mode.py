"""Which test stations seal their copies to a central key: one switch for the fault suite.

`DOCKAGENT_TEST_SEAL` (read here only, never passed to the agent):

- `1`: every test station encrypts its copies to a central age key (`[custody] encrypt_to`);
- `0`: none does (unless its test configures the key itself);
- unset (CI): stations are plain, except where a sweep alternates by `alternate(index)`: the
  crash points (tests/faults/test_crash_points.py) and the system-call crash sweep
  (tests/faults/test_syscall_crashes.py) run each point in one of the two modes, so both are
  covered in one run as long as the plain one.

A sealed station's identity file (made with Debian's `age-keygen`) lives beside its data
directory as `central.key`, where the independent checks (tests/support/nothing_lost.py,
tests/support/evidence.py) find it: they compare the camera's hashes with what Debian's
`age -d` makes of the staged copies and sink objects. Nothing here imports the agent.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

SWITCH = "DOCKAGENT_TEST_SEAL"
IDENTITY_NAME = "central.key"


def forced() -> bool | None:
    """True or False when the switch says so for every station, None when it is unset."""
    return {"1": True, "0": False}.get(os.environ.get(SWITCH, ""))


def default() -> bool:
    """Whether a station that does not choose is sealed."""
    return forced() is True


def alternate(index: int) -> bool:
    """The deterministic split of a sweep's points: odd positions sealed, even ones plain,
    unless the switch puts them all in one mode."""
    mode = forced()
    return mode if mode is not None else index % 2 == 1


def station_identity(data_dir: Path) -> Path | None:
    """The central identity of the test station whose data directory this is, if it seals."""
    path = data_dir.parent / IDENTITY_NAME
    return path if path.is_file() else None


def decrypted_sha256(path: Path, identity: Path) -> str:
    """The SHA-256 of what Debian's `age -d` makes of an age file ("" where it cannot)."""
    digest = hashlib.sha256()
    with subprocess.Popen(
        ["age", "-d", "-i", str(identity), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() if proc.returncode == 0 else ""


def plain_sha256(path: Path, identity: Path | None) -> str:
    """The SHA-256 of a staged copy's camera bytes: decrypted first where the station seals."""
    if identity is not None:
        return decrypted_sha256(path, identity)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def staged_size(row: dict[str, object]) -> int:
    """The bytes of a file row's staged copy, which an upload sends: the ciphertext's where the
    copy is sealed (`stored_size`), the camera file's where it is plain."""
    stored = row.get("stored_size")
    return int(str(row["size"] if stored is None else stored))
