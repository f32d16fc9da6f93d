"""Hashing a camera file again: the bytes on disk, exactly, in bounded memory, never past its size."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core.errors import SourceChanged
from agent.ingest.proof import Prover


def _root(tmp_path: Path) -> int:
    return os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=20_000), chunk=st.integers(min_value=1, max_value=5000))
def test_the_hash_is_of_every_byte_whatever_the_buffer(
    tmp_path: Path, data: bytes, chunk: int
) -> None:
    path = tmp_path / "A.MP4"
    path.write_bytes(data)
    st_ = os.stat(path)
    root = _root(tmp_path)
    try:
        prover = Prover(chunk)
        got = prover.hash_file(root, b"A.MP4", st_.st_size, st_.st_mtime_ns)
        assert got == hashlib.sha256(data).hexdigest()
        assert len(prover.buffer) == chunk  # one buffer, whatever the file's size
    finally:
        os.close(root)


def test_a_file_longer_than_its_row_is_refused_after_one_byte_more(tmp_path: Path) -> None:
    # A camera may claim a size and serve more: the hash stops one byte past the size, so an
    # endless file holds the station for no longer than the size it was listed with.
    path = tmp_path / "A.MP4"
    path.write_bytes(b"x" * 10_000)
    root = _root(tmp_path)
    reads: list[int] = []
    prover = Prover(4096)
    prover.on_chunk = lambda: reads.append(1)
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(SourceChanged, match="grew past its 100 bytes"):
                prover._hash(fd, 100)
        finally:
            os.close(fd)
        assert reads == []  # nothing hashed past the first read of 101 bytes
        with pytest.raises(SourceChanged, match="size or time"):
            prover.hash_file(root, b"A.MP4", 100, os.stat(path).st_mtime_ns)
    finally:
        os.close(root)


def test_a_link_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"evidence")
    (tmp_path / "A.MP4").symlink_to(tmp_path / "real")
    root = _root(tmp_path)
    try:
        with pytest.raises(OSError) as caught:
            Prover(64).hash_file(root, b"A.MP4", 8, 0)
        assert caught.value.errno == errno.ELOOP
    finally:
        os.close(root)
