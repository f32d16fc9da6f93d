"""Queries of the custody pipeline: the file-state transition, the chain.

Every change of a file's state goes through FileTransitions (one row, or every row in a state):
it names the state it expects, checks the edge against model.ALLOWED_TRANSITIONS and refuses
otherwise. Records are append-only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from agent.core.errors import TransitionRefused
from agent.core.model import FileState, ProblemKind, transition_allowed
from agent.store.base import StoreBase, not_found


@dataclass(frozen=True)
class RecordRow:
    seq: int
    kind: str
    file_id: int | None
    body: str
    record_hash: str
    prev_hash: str
    signature: str
    key_id: str


def _with_kind(fields: dict[str, Any]) -> dict[str, Any]:
    """A reason written goes with its kind: none for a cleared reason, `other` for a reason
    whose writer named no kind, so a row never keeps the kind of an earlier reason."""
    if "reason" in fields and "reason_kind" not in fields:
        return {**fields, "reason_kind": ProblemKind.OTHER.value if fields["reason"] else ""}
    if isinstance(fields.get("reason_kind"), ProblemKind):
        return {**fields, "reason_kind": fields["reason_kind"].value}
    return fields


class FileTransitions(StoreBase):
    """The one way a file row changes state."""

    def transition(
        self, file_id: int, old: FileState | Sequence[FileState], new: FileState, **fields: Any
    ) -> None:
        """Move a row from `old` (one of) to `new`, refusing if the row is not where expected."""
        olds = (old,) if isinstance(old, FileState) else tuple(old)
        for state in olds:
            if not transition_allowed(state, new):
                raise TransitionRefused(file_id=file_id, old=state, new=new, actual="not checked")
        fields = _with_kind(fields)
        assignments = ["state=?"] + [f"{name}=?" for name in fields]
        values: list[Any] = [new.value, *fields.values()]
        marks = ",".join("?" for _ in olds)
        cur = self.conn.execute(
            f"UPDATE files SET {', '.join(assignments)} WHERE id=? AND state IN ({marks})",
            [*values, file_id, *(s.value for s in olds)],
        )
        if cur.rowcount != 1:
            actual = self.conn.execute("SELECT state FROM files WHERE id=?", (file_id,)).fetchone()
            raise TransitionRefused(
                file_id=file_id,
                old="|".join(s.value for s in olds),
                new=new.value,
                actual=actual[0] if actual else "missing",
            )

    def transition_all(self, old: FileState, new: FileState, **fields: Any) -> int:
        """Move every row in `old` to `new` (the edge checked once: every row it moves is in
        `old`); returns how many moved."""
        if not transition_allowed(old, new):
            raise TransitionRefused(file_id="every", old=old, new=new, actual="not checked")
        fields = _with_kind(fields)
        assignments = ["state=?"] + [f"{name}=?" for name in fields]
        cur = self.conn.execute(
            f"UPDATE files SET {', '.join(assignments)} WHERE state=?",
            [new.value, *fields.values(), old.value],
        )
        return cur.rowcount


class CustodyQueries(FileTransitions):
    def _one(self, table: str, row_id: int) -> dict[str, Any]:
        row = self.conn.execute(f"SELECT * FROM {table} WHERE id=?", (row_id,)).fetchone()
        if row is None:
            raise not_found(table, row_id)
        return dict(row)

    # ---- custody records -------------------------------------------------------------------

    def chain_head(self) -> tuple[int, str] | None:
        row = self.conn.execute(
            "SELECT seq, record_hash FROM records ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def append_record(self, record: RecordRow, created_at: str) -> None:
        self.conn.execute(
            "INSERT INTO records(seq, kind, file_id, body, record_hash, prev_hash, signature, "
            "key_id, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                record.seq,
                record.kind,
                record.file_id,
                record.body,
                record.record_hash,
                record.prev_hash,
                record.signature,
                record.key_id,
                created_at,
            ),
        )

    def records(self, kind: str | None = None, *, after: int = 0) -> Iterator[RecordRow]:
        """The records (of one kind when given) after seq `after`, in chain order, streamed."""
        where, args = "WHERE seq > ?", [after]
        args_: list[object] = list(args)
        if kind:
            where, args_ = where + " AND kind=?", [*args_, kind]
        for r in self.conn.execute(
            "SELECT seq, kind, file_id, body, record_hash, prev_hash, signature, key_id "
            f"FROM records {where} ORDER BY seq",
            args_,
        ):
            yield RecordRow(**dict(r))

    def unpurged_confirmations(self, after: int = 0) -> list[tuple[RecordRow, str]]:
        """Sinks' confirmations after seq `after` of files whose staged copy is not purged, with
        that copy's staged path (where the confirmation's sidecar belongs). Purged files are
        left out, as for file sidecars: a start then costs what staging holds, not every file
        ever held."""
        rows = self.conn.execute(
            "SELECT r.seq, r.kind, r.file_id, r.body, r.record_hash, r.prev_hash, r.signature, "
            "r.key_id, f.staged_path FROM records r JOIN files f ON f.id = r.file_id "
            "WHERE r.kind = 'confirmation' AND r.seq > ? AND f.purged_at IS NULL "
            "AND f.staged_path IS NOT NULL ORDER BY r.seq",
            (after,),
        ).fetchall()
        out: list[tuple[RecordRow, str]] = []
        for r in rows:
            fields = dict(r)
            staged = str(fields.pop("staged_path"))
            out.append((RecordRow(**fields), staged))
        return out

    def last_records(self, count: int) -> list[RecordRow]:
        """The newest `count` records, oldest first (the head of the chain)."""
        rows = self.conn.execute(
            "SELECT seq, kind, file_id, body, record_hash, prev_hash, signature, key_id "
            "FROM records ORDER BY seq DESC LIMIT ?",
            (count,),
        ).fetchall()
        return [RecordRow(**dict(r)) for r in reversed(rows)]

    def record_hashes(self, seqs: Sequence[int]) -> dict[int, str]:
        """The record_hash of each of these records the chain holds (one query for them all)."""
        rows = self.conn.execute(
            "SELECT seq, record_hash FROM records WHERE seq IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted({int(s) for s in seqs})),),
        )
        return {int(r[0]): str(r[1]) for r in rows}

    def file_records_without_rows(
        self, *, after_seq: int | None = None, changed_upto: int = 0
    ) -> Iterator[RecordRow]:
        """File records whose file row is gone, by seq (one pass over the chain, each row found
        by its key). With `after_seq`, only the records after it and those naming a row noted
        changed or removed up to note `changed_upto` (agent.store.verified)."""
        where, args = "", []
        if after_seq is not None:
            where = (
                "AND (r.seq > ? OR r.file_id IN (SELECT file_id FROM files_changed WHERE n <= ?)) "
            )
            args = [after_seq, changed_upto]
        for r in self.conn.execute(
            "SELECT seq, kind, file_id, body, record_hash, prev_hash, signature, key_id "
            "FROM records r WHERE kind='file' AND file_id IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM files f WHERE f.id = r.file_id) {where}"
            "ORDER BY seq",
            args,
        ):
            yield RecordRow(**dict(r))

    def record(self, seq: int) -> RecordRow | None:
        r = self.conn.execute(
            "SELECT seq, kind, file_id, body, record_hash, prev_hash, signature, key_id "
            "FROM records WHERE seq=?",
            (seq,),
        ).fetchone()
        return None if r is None else RecordRow(**dict(r))

    def record_created_at(self, seq: int) -> str | None:
        """When record `seq` was committed (the station's clock), None if there is none."""
        r = self.conn.execute("SELECT created_at FROM records WHERE seq=?", (seq,)).fetchone()
        return None if r is None else str(r[0])
