"""agent.ingest.sealing through offload.Copier: a camera file encrypted to the central key in
the pass that hashes it.

The staged copy is age ciphertext that Debian's `age -d` turns back into exactly the bytes
read, whose SHA-256 is the camera's; the ciphertext's own hash and size are reported for the
record. A file that grows while read, and a staging disk that fills up, fail as themselves
(SourceChanged, ENOSPC), not as the library's message, and leave nothing staged. Memory stays
at the copier's buffers whatever the file's size.
"""

from __future__ import annotations

import errno
import hashlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.camera import profile, volume
from agent.camera.scan import scan_volume
from agent.core import durable
from agent.core.config import checks
from agent.core.model import Candidate
from agent.ingest import sealing
from agent.ingest.offload import PIPELINE_FROM, Copier, SourceChanged
from tests.support.central_key import central_identity, decrypt, recipient_of
from tests.support.volumes import tmpfs

SERIAL = "UNIT0001"
CHUNK = 256 << 10


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root = tmp_path / "cam"
    (root / "RECORD").mkdir(parents=True)
    with volume.open_root(str(root)) as fd:
        yield root, fd


@pytest.fixture
def central(tmp_path: Path) -> tuple[Path, str]:
    identity = central_identity(tmp_path / "central.key")
    return identity, recipient_of(identity)


def _listed(root_fd: int, rel: bytes) -> Candidate:
    result = scan_volume(root_fd, profile.load("generic"), 0)
    return next(c for c in result.candidates if c.rel_path == rel)


def _staged(staging: Path) -> list[Path]:
    return sorted(p for p in staging.rglob("*") if p.is_file())


@pytest.mark.parametrize("size", [0, 1, 65536, 65537, 3 * CHUNK + 5, (9 << 20) + 3])
def test_the_copy_is_ciphertext_that_age_opens_to_the_bytes_read(
    camera: tuple[Path, int], tmp_path: Path, central: tuple[Path, str], size: int
) -> None:
    root, fd = camera
    data = os.urandom(size)
    (root / "RECORD" / "A.MP4").write_bytes(data)
    staging = tmp_path / "staging"
    copier = Copier(staging, CHUNK, (central[1],))
    staged = copier.copy(fd, _listed(fd, b"RECORD/A.MP4"), 7, SERIAL)
    copy = staging / staged.staged_rel
    cipher = copy.read_bytes()
    assert staged.size == size and staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.stored_size == len(cipher) <= sealing.sealed_size_bound(size, 1)
    assert staged.stored_sha256 == hashlib.sha256(cipher).hexdigest()
    assert decrypt(copy, central[0]) == data
    if size >= 64:
        assert data[:64] not in cipher
    assert _staged(staging) == [copy]


def test_a_file_that_grows_while_it_is_encrypted_is_refused(
    camera: tuple[Path, int], tmp_path: Path, central: tuple[Path, str]
) -> None:
    root, fd = camera
    path = root / "RECORD" / "A.MP4"
    path.write_bytes(os.urandom(4 * CHUNK))
    cand = _listed(fd, b"RECORD/A.MP4")
    staging = tmp_path / "staging"
    copier = Copier(staging, CHUNK, (central[1],))

    def camera_writes_on() -> None:
        with open(path, "ab") as fh:
            fh.write(os.urandom(CHUNK))

    copier.on_chunk = camera_writes_on
    with pytest.raises(SourceChanged, match="changed while it was read"):
        copier.copy(fd, cand, 1, SERIAL)
    assert _staged(staging) == []


def test_staging_that_fills_up_while_encrypting_is_enospc(
    camera: tuple[Path, int], tmp_path: Path, central: tuple[Path, str]
) -> None:
    """A tmpfs of 2 MiB (fallocate reserves there, so ENOSPC comes before the first byte)."""
    root, fd = camera
    (root / "RECORD" / "A.MP4").write_bytes(os.urandom(3 << 20))
    cand = _listed(fd, b"RECORD/A.MP4")
    with tmpfs(tmp_path / "small", 2 << 20) as staging:
        with pytest.raises(OSError) as caught:
            Copier(staging, CHUNK, (central[1],)).copy(fd, cand, 1, SERIAL)
        assert caught.value.errno == errno.ENOSPC
        assert _staged(staging) == []


def test_memory_stays_flat_for_a_large_file(
    camera: tuple[Path, int], tmp_path: Path, central: tuple[Path, str]
) -> None:
    root, fd = camera
    size = 256 << 20
    with open(root / "RECORD" / "BIG.MP4", "wb") as fh:
        for _ in range(size // (8 << 20)):
            fh.write(os.urandom(8 << 20))
    cand = _listed(fd, b"RECORD/BIG.MP4")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    staged = Copier(tmp_path / "staging", CHUNK, (central[1],)).copy(fd, cand, 1, SERIAL)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert staged.size == size
    assert grown_kib < 64 << 10, f"peak RSS grew {grown_kib} KiB for a 256 MiB file"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=20))
def test_the_recipient_check_never_raises_on_hostile_values(value: list[str]) -> None:
    problem = checks.age_recipients(tuple(value))
    assert problem is None or isinstance(problem, str)


def test_a_long_recipient_is_refused_without_parsing() -> None:
    assert checks.age_recipients(("age1" + "q" * 1_000_000,)) is not None
    assert checks.age_recipients(tuple(f"age1{i}" for i in range(17))) == "at most 16 recipients"


@pytest.mark.parametrize("size", [4 * CHUNK, PIPELINE_FROM + 4 * CHUNK])
def test_a_write_error_mid_file_is_raised_as_itself(
    camera: tuple[Path, int],
    tmp_path: Path,
    central: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    """Where fallocate is not supported, the disk can fill up mid-file: the write's ENOSPC
    must reach the copy loop as ENOSPC (staging full, exit 75), not as pyrage's message,
    whether this thread writes (small files) or the writer thread does (large ones)."""
    root, fd = camera
    (root / "RECORD" / "A.MP4").write_bytes(os.urandom(size))
    cand = _listed(fd, b"RECORD/A.MP4")
    calls = 0
    real = durable.TempFile.write_all

    def fills_up(self: durable.TempFile, data: memoryview | bytes) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, data)

    real_at = durable.TempFile.write_at

    def fills_up_at(self: durable.TempFile, data: memoryview | bytes, offset: int) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_at(self, data, offset)

    monkeypatch.setattr(durable.TempFile, "write_all", fills_up)
    monkeypatch.setattr(durable.TempFile, "write_at", fills_up_at)
    staging = tmp_path / "staging"
    with pytest.raises(OSError) as caught:
        Copier(staging, CHUNK, (central[1],)).copy(fd, cand, 1, SERIAL)
    assert caught.value.errno == errno.ENOSPC and calls == 2
    assert _staged(staging) == []
