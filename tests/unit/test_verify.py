"""agent.custody.verify as a unit: a whole station verifies; each kind of damage is one named
problem (never an exception), on the record, the file row, the staged copy or a sidecar.

A real store and key in a temporary data directory with one camera docked in-process
(tests/support/docking.py); the damage is done with SQLite and file writes of the test's own.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from agent.core.model import Problem
from agent.custody.verify import Report, check_chain, verify
from agent.store import FileRow, RecordRow, UnreadableFile
from tests.support.docking import DockingStation, make_camera


@pytest.fixture
def dock(tmp_path: Path) -> Iterator[DockingStation]:
    config = tmp_path / "config.toml"
    config.write_text(
        'station_id = "VERIFY-TEST"\n[storage]\nreserve_bytes = 0\n[ingest]\n'
        'wipe_policy = "never"\n[devices]\nrequire_enrollment = false\n'
    )
    station = DockingStation.open(tmp_path / "data", config)
    camera, _ = make_camera(tmp_path, "cam", serial="VERIFY01", files_per_day=4)
    summary = station.dock(camera, datetime(2026, 1, 1, 12, 0, 0))
    assert summary.files_sealed == summary.files_found > 4, summary
    yield station
    station.close()


def _rows(dock: DockingStation) -> list[FileRow | UnreadableFile]:
    """Every file row, read to the end (no statement left open across a tamper)."""
    return list(dock.store.all_files())


def _verify(dock: DockingStation) -> Report:
    return verify(dock.store, dock.key, dock.config.staging_path)


def _tamper(dock: DockingStation, sql: str, args: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(dock.store.path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS records_no_update")
    conn.execute("DROP TRIGGER IF EXISTS records_no_delete")
    conn.execute(sql, args)
    conn.close()


def _found(report: Report) -> set[tuple[str, int | None]]:
    return {(p.kind, p.seq) for p in report.problems or []}


def test_a_whole_station_verifies(dock: DockingStation) -> None:
    report = _verify(dock)
    assert report.ok, report.problems
    files = len(_rows(dock))
    assert (report.files_checked, report.records_checked) == (files, files)
    assert report.bytes_hashed == sum(r.size for r in dock.store.all_files())


@pytest.mark.parametrize(
    ("sql", "args", "expected"),
    [
        ("UPDATE records SET body='[1, 2, 3]' WHERE seq=2", (), ("record_malformed", 2)),
        ("UPDATE records SET body='{not json' WHERE seq=2", (), ("record_unreadable", 2)),
        ("UPDATE records SET body=? WHERE seq=2", (b"\x00\x01",), ("record_malformed", 2)),
        ("UPDATE records SET signature='%%% not base64' WHERE seq=2", (), ("bad_signature", 2)),
        ("UPDATE records SET signature=? WHERE seq=2", (b"\x01" * 64,), ("record_malformed", 2)),
        ("UPDATE records SET file_id='seven' WHERE seq=2", (), ("record_malformed", 2)),
        ("UPDATE records SET kind='audit' WHERE seq=2", (), ("record_edited", 2)),
        ("UPDATE records SET key_id='0123456789abcdef' WHERE seq=2", (), ("unknown_key", 2)),
        ("UPDATE records SET record_hash=? WHERE seq=2", ("0" * 64,), ("record_edited", 2)),
        ("DELETE FROM records WHERE seq=2", (), ("chain_gap", 3)),
    ],
)
def test_damage_to_a_record_is_named_never_raised(
    dock: DockingStation, sql: str, args: tuple[object, ...], expected: tuple[str, int]
) -> None:
    _tamper(dock, sql, args)
    report = _verify(dock)
    assert not report.ok
    assert expected in _found(report), report.problems
    json.dumps([p.as_dict() for p in report.problems or []])  # what `verify --json` prints


def test_a_body_that_is_not_an_object_leaves_the_rest_checked(dock: DockingStation) -> None:
    row = next(r for r in dock.store.all_files() if r.record_seq == 2)
    _tamper(dock, "UPDATE records SET body='[]' WHERE seq=2")
    report = _verify(dock)
    files = len(_rows(dock))
    assert report.files_checked == files and report.records_checked == files
    # The staged copy is still checked (against the row's hash), the sidecar no longer matches.
    assert report.bytes_hashed == sum(r.size for r in dock.store.all_files())
    kinds = {(p.kind, p.seq, p.file_id) for p in report.problems or []}
    assert ("sidecar_differs", None, row.id) in kinds
    assert ("chain_broken", 3, None) in {(k, s, None) for k, s, _ in kinds}


def test_a_changed_staged_byte_and_a_missing_copy_are_named_on_their_files(
    dock: DockingStation,
) -> None:
    first, second = _rows(dock)[:2]
    staging = dock.config.staging_path
    path = staging / first.staged_path
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    (staging / second.staged_path).unlink()
    problems = _verify(dock).problems or []
    assert {(p.kind, p.file_id) for p in problems} == {
        ("changed_bytes", first.id),
        ("missing_file", second.id),
    }


def test_a_row_edited_beside_its_record_is_named(dock: DockingStation) -> None:
    row = _rows(dock)[0]
    _tamper(dock, "UPDATE files SET size=size+1 WHERE id=?", (row.id,))
    problems = _verify(dock).problems or []
    assert [(p.kind, p.file_id) for p in problems] == [("row_edited", row.id)]


def test_a_row_whose_state_was_edited_away_from_custody_is_named(dock: DockingStation) -> None:
    row = _rows(dock)[0]
    _tamper(dock, "UPDATE files SET state='discovered' WHERE id=?", (row.id,))
    problems = _verify(dock).problems or []
    assert [(p.kind, p.file_id) for p in problems] == [("state_edited", row.id)]


def test_a_row_whose_state_no_agent_writes_is_named_not_a_crash(dock: DockingStation) -> None:
    first, second = _rows(dock)[:2]
    _tamper(dock, "UPDATE files SET state='lost' WHERE id=?", (first.id,))
    _tamper(dock, "UPDATE files SET size='big' WHERE id=?", (second.id,))
    problems = _verify(dock).problems or []
    assert [(p.kind, p.file_id, p.detail) for p in problems] == [
        ("state_edited", first.id, "has a record but is lost"),
        ("row_edited", second.id, "the row cannot be read: size holds 'big'"),
    ]


def test_a_removed_row_and_a_truncated_chain_are_named(dock: DockingStation) -> None:
    last = max(r.seq for r in dock.store.records())
    row = next(r for r in dock.store.all_files() if r.record_seq == 1)
    conn = sqlite3.connect(dock.store.path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS records_no_delete")
    conn.execute("DELETE FROM files WHERE id=?", (row.id,))
    conn.execute("DELETE FROM records WHERE seq=?", (last,))
    conn.close()
    kinds = {p.kind for p in _verify(dock).problems or []}
    assert {"missing_row", "chain_truncated", "missing_record"} <= kinds


def test_a_sidecar_edited_or_lost_is_named(dock: DockingStation) -> None:
    first, second = _rows(dock)[:2]
    staging = dock.config.staging_path
    side = staging / (first.staged_path + ".custody.json")
    side.write_bytes(side.read_bytes().replace(b'"signature": "', b'"signature": "A'))
    (staging / (second.staged_path + ".custody.json")).unlink()
    problems = _verify(dock).problems or []
    assert ("sidecar_differs", first.id) in {(p.kind, p.file_id) for p in problems}
    assert ("missing_sidecar", second.id) in {(p.kind, p.file_id) for p in problems}


def test_check_chain_names_reordered_records(dock: DockingStation) -> None:
    records = list(dock.store.records())
    swapped = [
        records[0],
        dataclasses.replace(records[2], seq=2),
        dataclasses.replace(records[1], seq=3),
        *records[3:],
    ]
    by_seq, problems = check_chain(iter(swapped), dock.key)
    assert sorted(by_seq) == [r.seq for r in records]
    assert {("chain_broken", 2), ("chain_broken", 3)} <= {(p.kind, p.seq) for p in problems}


def test_check_chain_of_hostile_records_names_each_and_returns(dock: DockingStation) -> None:
    good = list(dock.store.records())
    hostile: list[RecordRow] = [
        dataclasses.replace(good[0], body=None),  # type: ignore[arg-type]
        dataclasses.replace(good[1], signature=base64.b64encode(b"short").decode()),
        dataclasses.replace(good[2], body=json.dumps({"seq": [], "prev": {}})),
        dataclasses.replace(good[3], key_id=b"\xff"),  # type: ignore[arg-type]
    ]
    _, problems = check_chain(iter(hostile), dock.key)
    assert {p.seq for p in problems} >= {1, 2, 3, 4}
    assert all(isinstance(p, Problem) and p.detail for p in problems)
