"""File rows as the store hands them out: typed, named by what they hold, honest about damage.

What a technician reads from them is checked too: `dockagent devices` counts a held upload
among the sealed files, and `dockagent queue --json` prints each file as it always has.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agent.cli.devices import docked_now
from agent.cli.inspecting import queue_item
from agent.core.errors import StoreCorrupt
from agent.core.model import (
    Candidate,
    FileKind,
    FileState,
    ProblemKind,
    SessionOutcome,
    display_name,
)
from agent.store import FileRow, Store, UnreadableFile
from agent.store.rows import file_row


def _cand(name: bytes, size: int = 10) -> Candidate:
    return Candidate(name, size, 1, 0, 0, FileKind.VIDEO, "", "", None, False, True)


def _docked(tmp_path: Path, names: list[bytes]) -> tuple[Store, int, list[int]]:
    """A station with one camera docked now (its session not undocked) and these files."""
    store = Store.open(tmp_path, create=True)
    sid = store.open_session(
        {
            "device_serial": "CAM1",
            "source": "/x",
            "docked_at": "t",
            "outcome": SessionOutcome.COMPLETE,
        }
    )
    ids = [store.register(sid, "CAM1", _cand(n), display_name(n), "t")[0] for n in names]
    return store, sid, ids


def _seal(store: Store, fid: int) -> None:
    store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    store.transition(
        fid, FileState.COPYING, FileState.STAGED, sha256="ab" * 32, staged_path=f"C/{fid}.mp4"
    )
    store.transition(fid, FileState.STAGED, FileState.SEALED, record_seq=fid)


def test_devices_counts_a_held_upload_among_the_sealed_files(tmp_path: Path) -> None:
    store, sid, (sealed, held, waiting) = _docked(tmp_path, [b"A.MP4", b"B.MP4", b"C.MP4"])
    _seal(store, sealed)
    _seal(store, held)
    store.claim_upload("w1", "t", exclude=[sealed])
    store.hold_upload(held, "refused by the server", "t")
    [camera] = docked_now(store)
    # The held file's evidence is sealed and in custody: only the sink refused it.
    assert camera["states"] == {"sealed": 1, "held": 1, "discovered": 1}
    assert (camera["session_id"], camera["files_sealed"]) == (sid, 2)
    assert waiting not in (sealed, held)


def test_a_claimed_upload_is_a_typed_row(tmp_path: Path) -> None:
    store, _, (fid,) = _docked(tmp_path, [b"RECORD/\xff.MP4"])
    _seal(store, fid)
    row = store.claim_upload("w1", "t")
    assert isinstance(row, FileRow)
    assert (row.id, row.state, row.kind, row.camera_path) == (
        fid,
        FileState.UPLOADING,
        FileKind.VIDEO,
        b"RECORD/\xff.MP4",
    )
    assert (row.upload_attempts, row.claimed_by, row.important, row.wipeable) == (
        1,
        "w1",
        False,
        True,
    )
    with pytest.raises(AttributeError):
        row.state = FileState.SEALED  # type: ignore[misc]  # frozen


def test_the_named_queries_pick_the_rows_they_name(tmp_path: Path) -> None:
    store, sid, (a, b, c) = _docked(tmp_path, [b"A.MP4", b"B.MP4", b"C.MP4"])
    _seal(store, b)
    assert [r.id for r in store.files_in_state(FileState.DISCOVERED)] == [a, c]
    assert [r.id for r in store.files_in_state(FileState.SEALED, FileState.HELD)] == [b]
    assert [r.id for r in store.files_not_in_state(FileState.DISCOVERED)] == [b]
    assert [r.id for r in store.files_of_session(sid)] == [a, b, c]
    assert store.files_of_session(sid + 1) == []
    assert store.session_state_counts(sid) == {"discovered": 2, "sealed": 1}
    store.set_file(c, wipe_started_at="t")
    assert [r.id for r in store.interrupted_wipes("CAM1")] == [c]
    assert store.interrupted_wipes("CAM2") == []


def test_a_state_no_agent_writes_stops_readers_and_is_named_to_verify(tmp_path: Path) -> None:
    store, _, (good, bad) = _docked(tmp_path, [b"A.MP4", b"B.MP4"])
    store.conn.execute("UPDATE files SET state='bogus' WHERE id=?", (bad,))
    with pytest.raises(StoreCorrupt, match=f"file {bad}: state holds 'bogus'") as caught:
        store.file(bad)
    assert caught.value.exit_code == 65
    with pytest.raises(StoreCorrupt, match="dockagent rebuild"):
        store.files_not_in_state(FileState.CONFIRMED)
    assert [r.id for r in store.files_in_state(FileState.DISCOVERED)] == [good]
    rows = list(store.all_files())
    assert isinstance(rows[0], FileRow) and rows[0].id == good
    assert rows[1] == UnreadableFile(bad, "B.MP4", "bogus", "state holds 'bogus'")
    assert store.state_counts() == {"bogus": 1, "discovered": 1}  # counted, not hidden


def test_a_row_of_a_database_not_yet_migrated_reads_with_the_migrations_defaults() -> None:
    # The columns of 0001_initial only: what a reader meets before the daemon migrated.
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    conn.execute(
        "CREATE TABLE files (id INTEGER, session_id INTEGER, last_session_id INTEGER, "
        "device_serial TEXT, camera_path BLOB, camera_name TEXT, size INTEGER, "
        "mtime_ns INTEGER, kind TEXT, state TEXT, discovered_at TEXT, updated_at TEXT, "
        "reason TEXT DEFAULT 'unplugged')"
    )
    conn.execute(
        "INSERT INTO files VALUES (7, 1, 2, 'CAM1', ?, 'A.MP4', 5, 9, 'audio', 'held', 't', 'u', "
        "'unplugged')",
        (b"A.MP4",),
    )
    row = file_row(conn.execute("SELECT * FROM files").fetchone())
    assert (row.id, row.state, row.kind, row.reason) == (
        7,
        FileState.HELD,
        FileKind.AUDIO,
        "unplugged",
    )
    assert (row.upload_offset, row.upload_checksummed, row.upload_url) == (0, True, None)
    assert (row.reason_kind, row.confirmed_boottime_s, row.retention_class) == (None, None, "")


def test_restoring_a_row_writes_what_reading_it_gives_back(tmp_path: Path) -> None:
    store = Store.open(tmp_path, create=True)
    sid = store.open_session({"device_serial": "CAM1", "source": "/x", "docked_at": "t"})
    row = FileRow(
        id=12,
        session_id=sid,
        last_session_id=sid,
        device_serial="CAM1",
        camera_path=b"RECORD/\x01.MP4",
        camera_name="RECORD/\\u0001.MP4",
        size=4,
        mtime_ns=5,
        kind=FileKind.PHOTO,
        state=FileState.CONFIRMED,
        important=True,
        sha256="cd" * 32,
        staged_path="CAM1/12.jpg",
        record_seq=1,
        discovered_at="t",
        updated_at="u",
        confirmed_boottime_s=1.5,
        reason="kept",
        reason_kind=ProblemKind.UPLOAD_HELD,
    )
    store.restore_file(row)
    assert store.file(12) == row


def test_queue_json_shows_a_file_as_it_always_has(tmp_path: Path) -> None:
    store, _, (fid,) = _docked(tmp_path, [b"A.MP4"])
    _seal(store, fid)
    store.claim_upload("w1", "t")
    store.record_upload_url(fid, "tus", "https://sink/1", None, "t")
    store.record_upload_offset(fid, 4, True, "t")
    store.defer_upload(fid, "503 from the server", "2030-01-01T00:00:00Z", "t")
    item = queue_item(store.file(fid))
    assert json.dumps(item, sort_keys=True) == json.dumps(
        {
            "file_id": fid,
            "camera": "CAM1",
            "name": "A.MP4",
            "state": "sealed",
            "reason": "upload will be retried: 503 from the server",
            "size": 10,
            "sha256": "ab" * 32,
            "attempts": 0,  # copies: none counted by the test's own transitions
            "important": False,
            "wiped": False,
            "upload": "40% of 10 after 2030-01-01T00:00:00Z",
            "upload_offset": 4,
            "upload_percent": 40.0,
            "upload_attempts": 1,
            "next_attempt_at": "2030-01-01T00:00:00Z",
            "last_error": "503 from the server",
            "copy_done": None,  # not being copied
            "copy_total": None,
            "upload_done": 4,
            "upload_total": 10,
        },
        sort_keys=True,
    )
