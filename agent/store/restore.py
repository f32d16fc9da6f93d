"""Queries that put a store back together from the signed sidecars (agent.rebuild uses them).

Rows are inserted with the ids their signed records name, into a store created moments before;
a damaged database is only ever read, through a private copy, so the one kept aside for
inspection is not changed by reading it. Which rows to write is agent.rebuild's decision, not
this module's; no evidence is read or written here.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from agent.store.base import StoreBase
from agent.store.custody import RecordRow
from agent.store.rows import FileRow
from agent.store.sessions import SessionRow

_RECORD_COLUMNS = "seq, kind, file_id, body, record_hash, prev_hash, signature, key_id"
_SCRATCH_PREFIX = ".salvage-"


class RestoreQueries(StoreBase):
    def restore_session(self, row: SessionRow) -> None:
        """A dock session as far as its records tell, under the id they name."""
        self.db.table("sessions").insert(row.columns())

    def restore_file(self, row: FileRow) -> None:
        """A file row under the id its custody record names, with what its profile said of it
        (channel, partner's clip, note: the file_classes table) where its record says any."""
        self.db.table("files").insert(row.columns())
        if row.channel or row.partner_of or row.class_note:
            self.conn.execute(
                "INSERT INTO file_classes(file_id, channel, partner_of, class_note) "
                "VALUES (?, ?, ?, ?)",
                (row.id, row.channel, row.partner_of, row.class_note),
            )


def salvage_records(db_path: Path, scratch_parent: Path) -> tuple[list[RecordRow], str]:
    """Custody records still readable in a damaged database, and what stopped the reading.

    Reads a private copy (with its -wal, if any) so that SQLite's own recovery on open cannot
    change the original. The chain is read from both ends: damage in the middle of the table
    still leaves the records before and after it. Every record returned is unverified: the
    caller checks each one's hash and signature.
    """
    found: dict[int, RecordRow] = {}
    problems: list[str] = []
    _discard_old_scratch(scratch_parent)
    with tempfile.TemporaryDirectory(prefix=_SCRATCH_PREFIX, dir=scratch_parent) as tmp:
        copy = Path(tmp) / "damaged.db"
        try:
            shutil.copyfile(db_path, copy)
            wal = Path(f"{db_path}-wal")
            if wal.exists():
                shutil.copyfile(wal, Path(f"{copy}-wal"))
        except OSError as exc:
            return [], f"could not copy {db_path}: {exc}"
        for order in ("ASC", "DESC"):
            try:
                conn = sqlite3.connect(copy, isolation_level=None)
            except sqlite3.Error as exc:
                problems.append(str(exc))
                break
            try:
                sql = f"SELECT {_RECORD_COLUMNS} FROM records ORDER BY seq {order}"
                for row in conn.execute(sql):
                    record = _record(row)
                    if record is None:
                        continue
                    if record.seq in found:
                        if order == "DESC":
                            break  # met the records already read from the front
                        continue
                    found[record.seq] = record
            except sqlite3.Error as exc:
                problems.append(str(exc))
            finally:
                conn.close()
    return [found[seq] for seq in sorted(found)], "; ".join(dict.fromkeys(problems))


def _discard_old_scratch(parent: Path) -> None:
    """Private copies left by a salvage that was killed: copies only (the damaged database is
    kept under its own name), each as large as the database, so they do not pile up."""
    for old in parent.glob(f"{_SCRATCH_PREFIX}*"):
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)


def _record(row: tuple[Any, ...]) -> RecordRow | None:
    seq, kind, file_id, body, record_hash, prev_hash, signature, key_id = row
    if not isinstance(seq, int) or not all(
        isinstance(v, str) for v in (kind, body, record_hash, prev_hash, signature, key_id)
    ):
        return None
    return RecordRow(
        seq=seq,
        kind=kind,
        file_id=file_id if isinstance(file_id, int) else None,
        body=body,
        record_hash=record_hash,
        prev_hash=prev_hash,
        signature=signature,
        key_id=key_id,
    )
