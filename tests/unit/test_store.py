"""The store: pragmas, checked transitions, append-only chain, refusal of damaged or lost state."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.errors import StoreCorrupt, StoreMismatch, StoreMissing, TransitionRefused
from agent.core.model import Candidate, FileKind, FileState
from agent.store import Store


def _cand(name: bytes = b"RECORD/A.MP4", size: int = 10, mtime: int = 1) -> Candidate:
    return Candidate(name, size, mtime, 0, 0, FileKind.VIDEO, "", "", None, False, True)


def _store_with_file(tmp_path: Path) -> tuple[Store, int]:
    store = Store.open(tmp_path, create=True)
    sid = store.open_session({"device_serial": "CAM1", "source": "/x", "docked_at": "t"})
    fid, state, new = store.register(sid, "CAM1", _cand(), "RECORD/A.MP4", "t")
    assert (state, new) == (FileState.DISCOVERED, True)
    return store, fid


def test_every_connection_is_wal_with_full_sync(tmp_path: Path) -> None:
    store = Store.open(tmp_path, create=True)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    again = Store.open(tmp_path, create=False)
    assert again.conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_transitions_check_the_expected_state(tmp_path: Path) -> None:
    store, fid = _store_with_file(tmp_path)
    store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    with pytest.raises(TransitionRefused, match="row is copying"):
        store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    with pytest.raises(TransitionRefused):  # not an allowed edge of the state machine
        store.transition(fid, FileState.COPYING, FileState.CONFIRMED)
    store.transition(fid, FileState.COPYING, FileState.STAGED, sha256="ab")
    assert store.file(fid).state == "staged"


def test_same_file_again_is_not_new_and_a_changed_uncopied_file_keeps_its_row(
    tmp_path: Path,
) -> None:
    store, fid = _store_with_file(tmp_path)
    assert store.register(1, "CAM1", _cand(), "n", "t") == (fid, FileState.DISCOVERED, False)
    # not yet copied, grew on the camera: same row, new identity
    assert store.register(1, "CAM1", _cand(size=20), "n", "t") == (fid, FileState.DISCOVERED, False)
    assert store.file(fid).size == 20


def test_custody_records_are_append_only(tmp_path: Path) -> None:
    from agent.store import RecordRow

    store = Store.open(tmp_path, create=True)
    store.append_record(RecordRow(1, "file", None, "{}", "h", "0", "s", "k"), "t")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE records SET body='x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM records")


def test_a_damaged_database_is_refused(tmp_path: Path) -> None:
    store, _ = _store_with_file(tmp_path)
    store.close()
    db = tmp_path / "dockagent.db"
    with open(db, "r+b") as fh:
        fh.write(b"this is not sqlite at all")
    with pytest.raises(StoreCorrupt, match="is damaged"):
        Store.open(tmp_path, create=True)


def test_a_lost_or_emptied_database_is_not_silently_recreated(tmp_path: Path) -> None:
    store, _ = _store_with_file(tmp_path)
    store.close()
    db = tmp_path / "dockagent.db"
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(db) + suffix):
            os.unlink(str(db) + suffix)
    os.truncate(db, 0)
    with pytest.raises(StoreMissing, match="is empty, but this data directory was initialised"):
        Store.open(tmp_path, create=True)
    db.unlink()
    with pytest.raises(StoreMissing, match="is missing"):
        Store.open(tmp_path, create=True)
    assert not db.exists()


def test_a_database_from_another_station_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    Store.open(a, create=True).close()
    Store.open(b, create=True).close()
    (a / "dockagent.db").unlink()
    (b / "dockagent.db").rename(a / "dockagent.db")
    with pytest.raises(StoreMismatch):
        Store.open(a, create=True)


def test_cli_refuses_a_corrupt_database_with_a_clear_message(station) -> None:  # type: ignore[no-untyped-def]
    station.data_dir.mkdir()
    Store.open(station.data_dir, create=True).close()
    db = station.data_dir / "dockagent.db"
    db.write_bytes(b"\0" * 4096)
    proc = station.run("status")
    assert proc.returncode == 65
    assert "is damaged" in proc.stderr and "refusing to run" in proc.stderr


def test_a_lost_marker_is_restored_from_a_whole_database(tmp_path: Path) -> None:
    store, fid = _store_with_file(tmp_path)
    store_id = store.meta("store_id")
    store.close()
    (tmp_path / "store.id").unlink()
    again = Store.open(tmp_path, create=True)
    assert again.file(fid).state == "discovered"
    assert (tmp_path / "store.id").read_text().strip() == store_id


def test_an_interrupted_initialisation_leaves_nothing_to_trust(tmp_path: Path) -> None:
    # A kill while the database was being built leaves only the temporary build.
    (tmp_path / "dockagent.db.init").write_bytes(b"half")
    store = Store.open(tmp_path, create=True)
    assert store.meta("store_id")
    assert not (tmp_path / "dockagent.db.init").exists()


def test_no_state_change_skips_the_checked_transition(tmp_path: Path) -> None:
    store, fid = _store_with_file(tmp_path)
    with pytest.raises(ValueError, match="only through transition"):
        store.set_file(fid, state="confirmed")
    with pytest.raises(TransitionRefused):  # the bulk variant checks its edge too
        store.transition_all(FileState.DISCOVERED, FileState.CONFIRMED)
    assert store.file(fid).state == "discovered"
    store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    store.transition(fid, FileState.COPYING, FileState.STAGED, sha256="ab", staged_path="C/1.mp4")
    store.transition(fid, FileState.STAGED, FileState.SEALED)
    assert store.claim_upload("w1", "t") is not None
    # A process that is gone left it uploading: back to sealed, with the kind of its reason.
    assert store.release_stale_uploads("t2") == 1
    row = store.file(fid)
    assert (row.state, row.claimed_by, row.reason_kind) == (
        "sealed",
        None,
        "upload_interrupted",
    )
    assert row.reason == "upload interrupted; resumes from the server's offset"


def test_a_reason_is_never_left_with_the_kind_of_another(tmp_path: Path) -> None:
    store, fid = _store_with_file(tmp_path)
    store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    store.transition(
        fid, FileState.COPYING, FileState.FAILED, reason="read error", reason_kind="read_failed"
    )
    assert store.file(fid).reason_kind == "read_failed"
    store.transition(fid, FileState.FAILED, FileState.COPYING)
    store.transition(fid, FileState.COPYING, FileState.DISCOVERED, reason="unplugged")
    assert store.file(fid).reason_kind == "other"  # written without a kind: not the old one
    store.set_file(fid, reason="")
    assert store.file(fid).reason_kind is None


def test_a_failed_file_that_changed_on_the_camera_is_listed_again(tmp_path: Path) -> None:
    store, fid = _store_with_file(tmp_path)
    store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    store.transition(fid, FileState.COPYING, FileState.FAILED, reason="read error")
    assert store.register(1, "CAM1", _cand(size=20), "n", "t") == (fid, FileState.DISCOVERED, False)
    row = store.file(fid)
    assert (row.state, row.size, row.reason, row.reason_kind) == (
        "discovered",
        20,
        "",
        None,  # no kind beside no reason
    )


def test_a_copied_file_is_the_same_only_with_the_same_content(tmp_path: Path) -> None:
    store, fid = _store_with_file(tmp_path)
    store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    store.transition(fid, FileState.COPYING, FileState.STAGED, sha256="aa" * 32)
    # Not hashed yet: the row of that identity, for the caller to prove.
    assert store.register(1, "CAM1", _cand(), "n", "t") == (fid, FileState.STAGED, False)
    # Its bytes proven the same: the row held.
    assert store.register(1, "CAM1", _cand(), "n", "t", "aa" * 32) == (fid, FileState.STAGED, False)
    # Other bytes under the same path, size and mtime: a new row.
    other, state, new = store.register(1, "CAM1", _cand(), "n", "t", "bb" * 32)
    assert (state, new) == (FileState.DISCOVERED, True) and other != fid
    # That new row waits for its copy; seen again before it, it is the same row.
    assert store.register(1, "CAM1", _cand(), "n", "t") == (other, FileState.DISCOVERED, False)
    assert store.register(1, "CAM1", _cand(), "n", "t", "bb" * 32)[0] == other
    assert store.register(1, "CAM1", _cand(), "n", "t", "aa" * 32)[0] == fid
    with pytest.raises(sqlite3.IntegrityError):  # never two uncopied rows of one identity
        store.conn.execute(
            "INSERT INTO files (session_id, last_session_id, device_serial, camera_path, "
            "camera_name, size, mtime_ns, kind, state, discovered_at, updated_at) "
            "SELECT session_id, last_session_id, device_serial, camera_path, camera_name, size, "
            "mtime_ns, kind, state, discovered_at, updated_at FROM files WHERE id=?",
            (other,),
        )


def test_a_store_made_before_versions_of_a_path_keeps_its_rows_and_records(
    tmp_path: Path,
) -> None:
    import sqlite_utils

    from agent.store import MIGRATIONS

    store, fid = _store_with_file(tmp_path)
    store.close()
    # Back to the schema before 0007: one row per path, size and mtime.
    conn = sqlite3.connect(tmp_path / "dockagent.db", isolation_level=None)
    conn.executescript(
        "PRAGMA foreign_keys=OFF; PRAGMA legacy_alter_table=ON; DROP INDEX files_identity_uncopied;"
        "ALTER TABLE files RENAME TO files_new;"
    )
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name='files_new'").fetchone()
    conn.execute(
        sql.replace('CREATE TABLE "files_new"', "CREATE TABLE files")
        .replace("CREATE TABLE files_new", "CREATE TABLE files")
        .rstrip(")\n ")
        + ", UNIQUE (device_serial, camera_path, size, mtime_ns))"
    )
    conn.executescript(
        "INSERT INTO files SELECT * FROM files_new; DROP TABLE files_new;"
        "CREATE INDEX files_device_path ON files(device_serial, camera_path);"
        "CREATE INDEX files_state ON files(state);"
        "DELETE FROM _sqlite_migrations WHERE name='0008_wipe_versions_of_a_path';"
    )
    conn.execute(
        "INSERT INTO records (kind, file_id, body, record_hash, prev_hash, signature, key_id, "
        "created_at) VALUES ('file', ?, '{}', 'h1', '', 's', 'k', 't')",
        (fid,),
    )
    conn.close()
    db = sqlite_utils.Database(tmp_path / "dockagent.db")
    assert "0008_wipe_versions_of_a_path" not in {m.name for m in MIGRATIONS.applied(db)}
    db.close()

    again = Store.open(tmp_path, create=True)
    assert again.file(fid).camera_path == b"RECORD/A.MP4"
    assert again.conn.execute("SELECT file_id FROM records").fetchall()[0][0] == fid
    assert again.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert again.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    (sql,) = again.conn.execute("SELECT sql FROM sqlite_master WHERE name='files'").fetchone()
    assert "UNIQUE" not in sql
    indexes = {r[0] for r in again.conn.execute("SELECT name FROM pragma_index_list('files')")}
    assert {"files_device_path", "files_identity_uncopied", "files_state"} <= indexes


def test_a_wipe_intent_on_bytes_replaced_under_their_name_is_not_settled_as_ours(
    tmp_path: Path,
) -> None:
    from agent.ingest.wipe import settle_interrupted_wipes

    store, fid = _store_with_file(tmp_path)
    store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    store.transition(fid, FileState.COPYING, FileState.STAGED, sha256="aa" * 32)
    store.set_file(fid, wipe_started_at="t")  # then the station lost power before the unlink
    # The camera now holds other bytes under the same identity: a new row takes them in...
    store.register(1, "CAM1", _cand(), "n", "t", "bb" * 32)
    # ...and once they are wiped too, the first row's bytes were not removed by us.
    assert settle_interrupted_wipes(store, "CAM1", set(), "later") == 0
    assert store.file(fid).wiped_at is None


def test_a_store_writes_sessions_and_files_without_importing_sqlite_utils(tmp_path: Path) -> None:
    """Once its migrations are applied, a writing command (an import, the daemon) opens,
    inserts and updates without sqlite-utils (click, dateutil, its plugins: ~10 MiB of every
    import's resident memory); a row that is not there is still NotFoundError, a column that
    is not one still refused."""
    Store.open(tmp_path, create=True).close()
    code = f"""
import sys
from agent.core.model import Candidate, FileKind
from agent.store import Store
store = Store.open(__import__("pathlib").Path({str(tmp_path)!r}), create=False)
with store.transaction():
    sid = store.open_session({{"device_serial": "CAM1", "source": "/x", "docked_at": "t"}})
    cand = Candidate(b"R/A.MP4", 10, 1, 0, 0, FileKind.VIDEO, "", "", None, False, True)
    fid, _, _ = store.register(sid, "CAM1", cand, "R/A.MP4", "t")
    store.update_session(sid, {{"files_found": 1, "wipe_detail": "none"}})
    store.set_file(fid, reason="kept", wiped_at="w")
print(sid, store.session(sid).files_found, store.file(fid).reason, "sqlite_utils" in sys.modules)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "1", "kept", "False"]
    store = Store.open(tmp_path, create=False)
    from sqlite_utils.db import NotFoundError

    with pytest.raises(NotFoundError):
        store.update_session(99, {"files_found": 1})
    with pytest.raises(NotFoundError):
        store.set_file(99)
    with pytest.raises(ValueError, match="not a column of files"):
        store.set_file(1, **{"reason=1; --": "x"})
    assert store.file(1).reason == "kept"
