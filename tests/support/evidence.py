"""Independent checks of what the station holds, written apart from the agent's code.

Reads the SQLite file with the standard library and hashes with hashlib, so a bug in the
agent's store or offload code cannot hide itself from the tests.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.support.sealed_mode import plain_sha256, station_identity
from tests.support.volumes import sha256_file


def rows(
    data_dir: Path, sql: str = "SELECT * FROM files", args: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{data_dir / 'dockagent.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def assert_all_sealed(
    data_dir: Path, serial: str, expected: dict[bytes, str], *, settled: bool = True
) -> None:
    """Every expected camera file is held exactly once, with its hash, in a sealed state,
    and its staged copy hashes equal (decrypted, where the station seals its copies to a central
    key, tests/support/sealed_mode.py); no temporary file is left in staging. While a daemon still
    runs (`settled=False`) a temporary file may be a write in progress (an upload receipt), so
    the caller checks for leftovers with assert_no_temp_files once the daemon has stopped."""
    held = rows(data_dir, "SELECT * FROM files WHERE device_serial=?", (serial,))
    identity = station_identity(data_dir)
    by_path: dict[bytes, list[dict[str, Any]]] = {}
    for row in held:
        by_path.setdefault(bytes(row["camera_path"]), []).append(row)
    missing = [p for p in expected if p not in by_path]
    assert not missing, f"not held: {missing[:5]}"
    for path, sha in expected.items():
        versions = [r for r in by_path[path] if r["sha256"] == sha]
        assert len(versions) == 1, f"{path!r}: {len(versions)} rows with the camera hash"
        row = versions[0]
        assert row["state"] in ("sealed", "uploading", "confirmed"), (
            path,
            row["state"],
            row["reason"],
        )
        assert plain_sha256(data_dir / "staging" / row["staged_path"], identity) == sha, path
    records = rows(data_dir, "SELECT file_id FROM records WHERE kind='file'")
    ids = [r["file_id"] for r in records]
    assert len(ids) == len(set(ids)), "a file has more than one custody record"
    if settled:
        assert_no_temp_files(data_dir)


__all__ = ["assert_all_sealed", "assert_no_temp_files", "rows", "sha256_file"]


def assert_no_temp_files(data_dir: Path) -> None:
    leftovers = [p for p in (data_dir / "staging").rglob("*") if p.name.endswith(".part")]
    assert not leftovers, f"temporary files left: {leftovers[:5]}"
