"""`dockagent verify --incremental`: from where the last clean verify ended, only what came
after is checked (the records past it, the file rows added, changed or removed since), and
damage there is named as a full verify names it; the record it ended at must still be the one it
saw. What it leaves to `--full` (the staged bytes of rows nobody changed) is shown too.

A real store and key with cameras docked in-process (tests/support/docking.py); damage done
with SQLite and file writes of the test's own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from agent.custody.verify import Report, verify
from agent.store import FileRow, VerifiedHead
from tests.support.docking import DockingStation, make_camera


@pytest.fixture
def dock(tmp_path: Path) -> Iterator[DockingStation]:
    config = tmp_path / "config.toml"
    config.write_text(
        'station_id = "VERIFY-INC"\n[storage]\nreserve_bytes = 0\n[ingest]\n'
        'wipe_policy = "never"\n[devices]\nrequire_enrollment = false\n'
    )
    station = DockingStation.open(tmp_path / "data", config)
    camera, _ = make_camera(tmp_path, "cam1", serial="VERINC01", files_per_day=3)
    station.dock(camera, datetime(2026, 1, 1, 12, 0, 0))
    yield station
    station.close()


def _clean_full(dock: DockingStation) -> VerifiedHead:
    """A full verify that found nothing, noted as the CLI notes it."""
    report = verify(dock.store, dock.key, dock.config.staging_path)
    assert report.ok and report.head is not None, report.problems
    dock.store.note_verified(*report.head, report.max_file_id, report.changed, "now")
    head = dock.store.verified_head()
    assert head is not None
    return head


def _incremental(dock: DockingStation) -> Report:
    since = dock.store.verified_head()
    assert since is not None
    return verify(dock.store, dock.key, dock.config.staging_path, since=since)


def _rows(dock: DockingStation) -> list[FileRow]:
    return [r for r in dock.store.all_files() if isinstance(r, FileRow)]


def _tamper(dock: DockingStation, sql: str, args: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(dock.store.path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS records_no_update")
    conn.execute(sql, args)
    conn.close()


def test_only_what_came_after_the_last_clean_verify_is_checked(
    dock: DockingStation, tmp_path: Path
) -> None:
    head = _clean_full(dock)
    before = {r.id for r in _rows(dock)}
    assert _incremental(dock).records_checked == 0  # nothing new: nothing walked
    camera, _ = make_camera(tmp_path, "cam2", serial="VERINC02", files_per_day=2)
    dock.dock(camera, datetime(2026, 1, 2, 12, 0, 0))
    new = [r for r in _rows(dock) if r.id not in before]
    report = _incremental(dock)
    assert report.ok, report.problems
    assert report.incremental and report.files_checked == len(new) > 0
    assert report.records_checked == (dock.store.chain_head() or (0, ""))[0] - head.seq
    assert report.bytes_hashed == sum(r.size for r in new)


def test_a_row_changed_since_the_last_clean_verify_is_checked_again(
    dock: DockingStation,
) -> None:
    _clean_full(dock)
    row = _rows(dock)[0]
    _tamper(dock, "UPDATE files SET size=size+1 WHERE id=?", (row.id,))
    report = _incremental(dock)
    assert [(p.kind, p.file_id) for p in report.problems or []] == [("row_edited", row.id)]


def test_a_row_removed_since_the_last_clean_verify_is_named(dock: DockingStation) -> None:
    _clean_full(dock)
    row = _rows(dock)[-1]
    _tamper(dock, "PRAGMA foreign_keys=OFF")
    conn = sqlite3.connect(dock.store.path, isolation_level=None)
    conn.execute("DELETE FROM files WHERE id=?", (row.id,))
    conn.close()
    report = _incremental(dock)
    assert [(p.kind, p.file_id) for p in report.problems or []] == [("missing_row", row.id)]


def test_the_record_the_last_verify_ended_at_must_be_the_one_it_checked(
    dock: DockingStation,
) -> None:
    head = _clean_full(dock)
    _tamper(dock, "UPDATE records SET record_hash=? WHERE seq=?", ("00" * 32, head.seq))
    report = _incremental(dock)
    assert ("chain_changed", head.seq) in {(p.kind, p.seq) for p in report.problems or []}


def test_the_staged_bytes_of_a_row_nobody_changed_are_left_to_full(dock: DockingStation) -> None:
    _clean_full(dock)
    row = _rows(dock)[0]
    staged = dock.config.staging_path / str(row.staged_path)
    staged.write_bytes(b"x" + staged.read_bytes()[1:])
    assert _incremental(dock).ok
    full = verify(dock.store, dock.key, dock.config.staging_path)
    assert [(p.kind, p.file_id) for p in full.problems or []] == [("changed_bytes", row.id)]


def test_a_clean_verify_moves_the_mark_and_keeps_later_changes(dock: DockingStation) -> None:
    _clean_full(dock)
    row = _rows(dock)[0]
    dock.store.set_file(row.id, reason="looked at")  # a change the triggers note
    report = _incremental(dock)
    assert report.ok and report.files_checked == 1
    assert report.head is not None
    dock.store.note_verified(*report.head, report.max_file_id, report.changed, "later")
    assert _incremental(dock).files_checked == 0
