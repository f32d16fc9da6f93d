"""agent.ingest.offload: one camera file copied and hashed into staging, or refused.

The copy must hold exactly the bytes read, with the sha256 of those bytes, durable under its
final name and private; a file that is not the one listed, or changes while it is read, or is
reached through a symbolic link, must leave nothing staged.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.camera import profile, volume
from agent.camera.scan import scan_volume
from agent.core.model import Candidate
from agent.ingest import offload
from agent.ingest.offload import PIPELINE_CHUNK, PIPELINE_FROM, Copier, SourceChanged

SERIAL = "UNIT0001"
CHUNK = 64 << 10


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A camera directory and its root descriptor, opened as the agent opens a volume."""
    root = tmp_path / "cam"
    (root / "RECORD").mkdir(parents=True)
    with volume.open_root(str(root)) as fd:
        yield root, fd


def _listed(root_fd: int, rel: bytes) -> Candidate:
    """The file as the agent's scan lists it (its identity at listing time)."""
    result = scan_volume(root_fd, profile.load("generic"), 0)
    return next(c for c in result.candidates if c.rel_path == rel)


def _staging_files(staging: Path) -> list[Path]:
    return sorted(p for p in staging.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        CHUNK + 17,
        PIPELINE_FROM + 3 * CHUNK + 5,
        # Large files: whole aligned chunks only (no tail), and an end one byte into a block.
        4 * PIPELINE_CHUNK,
        PIPELINE_FROM + PIPELINE_CHUNK + 4096 * 3 + 1,
    ],
)
def test_a_copy_holds_the_bytes_read_and_their_hash(
    camera: tuple[Path, int], tmp_path: Path, size: int
) -> None:
    root, fd = camera
    data = os.urandom(size)
    (root / "RECORD" / "A.MP4").write_bytes(data)
    staging = tmp_path / "staging"
    staged = Copier(staging, CHUNK).copy(fd, _listed(fd, b"RECORD/A.MP4"), 7, SERIAL)
    copy = staging / staged.staged_rel
    assert copy.read_bytes() == data
    assert staged.size == size
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
    assert _staging_files(staging) == [copy]  # no temp file left beside it


def test_a_file_changed_since_it_was_listed_is_refused(
    camera: tuple[Path, int], tmp_path: Path
) -> None:
    root, fd = camera
    path = root / "RECORD" / "A.MP4"
    path.write_bytes(b"x" * 1000)
    cand = _listed(fd, b"RECORD/A.MP4")
    path.write_bytes(b"y" * 1200)
    staging = tmp_path / "staging"
    with pytest.raises(SourceChanged, match="between listing and reading"):
        Copier(staging, CHUNK).copy(fd, cand, 1, SERIAL)
    assert _staging_files(staging) == []


@pytest.mark.parametrize("size", [4 * CHUNK, PIPELINE_FROM + 4 * CHUNK])
def test_a_file_that_grows_while_it_is_read_is_refused(
    camera: tuple[Path, int], tmp_path: Path, size: int
) -> None:
    root, fd = camera
    path = root / "RECORD" / "A.MP4"
    path.write_bytes(os.urandom(size))
    cand = _listed(fd, b"RECORD/A.MP4")
    staging = tmp_path / "staging"
    copier = Copier(staging, CHUNK)

    def camera_writes_on() -> None:
        with open(path, "ab") as fh:
            fh.write(os.urandom(CHUNK))

    copier.on_chunk = camera_writes_on
    with pytest.raises(SourceChanged, match="changed while it was read"):
        copier.copy(fd, cand, 1, SERIAL)
    assert _staging_files(staging) == []


def test_a_file_rewritten_in_place_while_it_is_read_is_refused(
    camera: tuple[Path, int], tmp_path: Path
) -> None:
    root, fd = camera
    path = root / "RECORD" / "A.MP4"
    path.write_bytes(os.urandom(4 * CHUNK))
    cand = _listed(fd, b"RECORD/A.MP4")
    staging = tmp_path / "staging"
    copier = Copier(staging, CHUNK)

    def camera_rewrites_the_start() -> None:
        with open(path, "r+b") as fh:
            fh.write(b"\0" * 16)
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, cand.mtime_ns + 1_000_000_000))
        copier.on_chunk = lambda: None

    copier.on_chunk = camera_rewrites_the_start
    with pytest.raises(SourceChanged, match="changed while it was read"):
        copier.copy(fd, cand, 1, SERIAL)
    assert _staging_files(staging) == []


def test_a_symbolic_link_is_not_followed(camera: tuple[Path, int], tmp_path: Path) -> None:
    root, fd = camera
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"station key material")
    real = root / "RECORD" / "A.MP4"
    real.write_bytes(b"evidence" * 100)
    cand = _listed(fd, b"RECORD/A.MP4")
    # Swapped for a link after listing, with the listed identity: O_NOFOLLOW refuses it.
    real.unlink()
    os.symlink(secret, real)
    staging = tmp_path / "staging"
    with pytest.raises(OSError):  # ELOOP, not a copy of what the link points at
        Copier(staging, CHUNK).copy(fd, cand, 1, SERIAL)
    assert _staging_files(staging) == []


def test_a_directory_link_on_the_path_is_not_followed(
    camera: tuple[Path, int], tmp_path: Path
) -> None:
    root, fd = camera
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "A.MP4").write_bytes(b"not from the camera")
    (root / "DAY").mkdir()
    (root / "DAY" / "A.MP4").write_bytes(b"not from the camera")
    cand = _listed(fd, b"DAY/A.MP4")
    (root / "DAY" / "A.MP4").unlink()
    (root / "DAY").rmdir()
    os.symlink(outside, root / "DAY")
    staging = tmp_path / "staging"
    with pytest.raises(OSError):
        Copier(staging, CHUNK).copy(fd, cand, 1, SERIAL)
    assert _staging_files(staging) == []


def test_a_camera_read_slower_than_the_copy_is_written_touches_few_chunks(
    camera: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's pages stay resident once used, so a slow camera (every camera docked at once
    is one) must cycle through the chunks it needs, not all of them: the copy's memory per
    camera in a rack of 25."""
    root, fd = camera
    data = os.urandom(PIPELINE_FROM + 8 * PIPELINE_CHUNK)
    (root / "RECORD" / "A.MP4").write_bytes(data)
    used: set[int] = set()
    fill = offload._Reader._fill

    def slow_fill(reader: offload._Reader, buf: mmap.mmap) -> int:
        used.add(id(buf))
        time.sleep(0.05)  # a camera's read of 2 MiB at 40 MiB/s; hashing and writing: faster
        return fill(reader, buf)

    monkeypatch.setattr(offload._Reader, "_fill", slow_fill)
    staging = tmp_path / "staging"
    staged = Copier(staging, CHUNK).copy(fd, _listed(fd, b"RECORD/A.MP4"), 7, SERIAL)
    assert (staging / staged.staged_rel).read_bytes() == data
    assert len(used) <= 3, f"{len(used)} of the copy's chunks were filled"
