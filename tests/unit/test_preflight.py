"""The free-space preflight on a real tmpfs: which files of a camera staging can hold."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.core import config
from agent.core.errors import StagingFull
from agent.core.model import Candidate, FileKind
from agent.ingest.preflight import fit_space
from tests.support.volumes import tmpfs

MIB = 1 << 20


def _cand(name: str, size: int, mtime: int, important: bool = False) -> Candidate:
    return Candidate(
        name.encode(), size, mtime, 1, 1, FileKind.VIDEO, "", "", None, important, True
    )


def _config(data: Path, reserve: int) -> config.Config:
    path = data.parent / "dockagent.toml"
    path.write_text(f'station_id = "T"\n[storage]\nreserve_bytes = {reserve}\n')
    return config.load(path, {"DOCKAGENT_DATA_DIR": str(data)})


def test_important_then_oldest_files_are_taken_and_the_rest_left(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", 10 * MIB):
        cfg = _config(tmp_path / "data", reserve=MIB)  # 9 MiB above the reserve
        cands = (
            _cand("new-big", 6 * MIB, 300),
            _cand("old-big", 6 * MIB, 100),
            _cand("important-newest", 2 * MIB, 900, important=True),
            _cand("old-small", 1 * MIB, 50),
            _cand("crafted", 1 << 40, 10),
        )
        pending = [(i + 1, i) for i in range(len(cands))]
        fits = fit_space(cfg, pending, cands)
        # important first (2), then by age: crafted passed over, old-small (1), old-big (6).
        assert [cands[i].rel_path for _, i in fits] == [
            b"old-big",
            b"important-newest",
            b"old-small",
        ]
        assert fit_space(cfg, [(2, 1), (4, 3)], cands) == [(2, 1), (4, 3)]  # all fit: all


def test_inside_the_reserve_nothing_is_taken(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", 4 * MIB):
        cfg = _config(tmp_path / "data", reserve=8 * MIB)
        cands = (_cand("a", 10, 1), _cand("b", 1 << 40, 2))
        with pytest.raises(StagingFull, match="nothing was copied"):
            fit_space(cfg, [(1, 0), (2, 1)], cands)


def test_an_encrypted_copy_is_counted_with_its_overhead(tmp_path: Path) -> None:
    """A file that fits as read but not as age ciphertext (header and a tag per 64 KiB) is
    left queued by the preflight, not found too large halfway through copying it."""
    recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
    with tmpfs(tmp_path / "data", 16 * MIB):
        data = tmp_path / "data"
        free = _free(data)
        size = 8 * MIB
        room = size + 1024  # above the reserve: the plain file fits, its ciphertext does not
        path = data.parent / "dockagent.toml"
        path.write_text(
            f'station_id = "T"\n[storage]\nreserve_bytes = {free - room}\n'
            f'[custody]\nencrypt_to = ["{recipient}"]\n'
        )
        cfg = config.load(path, {"DOCKAGENT_DATA_DIR": str(data)})
        cands = (_cand("big", size, 100), _cand("small", 64 << 10, 200))
        fits = fit_space(cfg, [(1, 0), (2, 1)], cands)
        assert [cands[i].rel_path for _, i in fits] == [b"small"]
        # The same station without encryption takes the big file (the oldest) as it fits.
        plain = _config(data, reserve=free - room)
        assert fit_space(plain, [(1, 0), (2, 1)], cands) == [(1, 0)]


def _free(path: Path) -> int:
    path.mkdir(exist_ok=True)
    (path / "staging").mkdir(mode=0o700, exist_ok=True)
    vfs = os.statvfs(path / "staging")
    return vfs.f_bavail * vfs.f_frsize
