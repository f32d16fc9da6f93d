"""Queries of file rows: registering what a camera holds, and the named reads of the queue.

Every read hands out FileRow (agent.store.rows); callers name what they want (the files in some
states, of a dock session, with a wipe interrupted), never a WHERE clause. A row holding a value
no agent writes stops a reader with StoreCorrupt; all_files, which `dockagent verify` walks,
yields it as an UnreadableFile instead, so the damage is named and the walk goes on. States
change only through FileTransitions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from agent.core.model import Candidate, FileState, ProblemKind
from agent.store.base import not_found
from agent.store.custody import FileTransitions, RecordRow, _with_kind
from agent.store.rows import (
    FileRow,
    StateCount,
    UnreadableFile,
    checked_file_row,
    file_row,
    unreadable_file,
)

_TIMES_BATCH = 1000


class FileTimes(NamedTuple):
    """The columns of a file row that its dock's health reads (agent.health)."""

    id: int
    session_id: int
    kind: str
    important: bool
    recorded_start: str
    recorded_end: str


_RECORD_FIELDS = (
    "seq",
    "kind",
    "file_id",
    "body",
    "record_hash",
    "prev_hash",
    "signature",
    "key_id",
)


def _marks(states: Iterable[FileState]) -> tuple[str, list[str]]:
    values = sorted(s.value for s in states)
    return ",".join("?" for _ in values), values


class FileQueries(FileTransitions):
    # ---- registering -----------------------------------------------------------------------

    def register(
        self,
        session_id: int,
        serial: str,
        cand: Candidate,
        display: str,
        now: str,
        content: str | None = None,
    ) -> tuple[int, FileState, bool]:
        """Record a file seen on a camera; returns (file_id, state, is_new).

        Path, size and time prove no content. Without `content` (not hashed yet) the newest
        row of that identity is returned, and the caller proves it by hashing the camera's
        bytes; with `content` (their sha256) a copied row (it has a sha256) is this file only
        when the two are equal, and other bytes under its identity are new evidence with a row
        of their own. A row not copied yet is the same file whatever its bytes (they are read
        when copied), and one whose size or time changed is the same row with a new identity.
        """
        rows = self.conn.execute(
            "SELECT id, state, size, mtime_ns, sha256 FROM files "
            "WHERE device_serial=? AND camera_path=? ORDER BY id DESC",
            (serial, cand.rel_path),
        ).fetchall()
        same = [r for r in rows if (r["size"], r["mtime_ns"]) == (cand.size, cand.mtime_ns)]
        # The copied row of exactly these bytes first, else the newest row of the identity
        # that is not contradicted by them.
        proven = [r for r in same if content is not None and r["sha256"] == content]
        open_ = [r for r in same if content is None or r["sha256"] is None]
        if proven or open_:
            row = (proven or open_)[0]
            self.conn.execute(
                "UPDATE files SET last_session_id=? WHERE id=?", (session_id, row["id"])
            )
            return int(row["id"]), FileState(row["state"]), False
        fields = {
            "size": cand.size,
            "mtime_ns": cand.mtime_ns,
            "kind": cand.kind.value,
            "recorded_start": cand.recorded_start,
            "recorded_end": cand.recorded_end,
            "segment": cand.segment,
            "important": int(cand.important),
            "wipeable": int(cand.wipeable),
            "last_session_id": session_id,
            "updated_at": now,
        }
        for row in rows:
            if row["state"] == FileState.FAILED:
                self.transition(
                    row["id"], FileState.FAILED, FileState.DISCOVERED, **fields, reason=""
                )
                self._set_class(row["id"], cand)
                return int(row["id"]), FileState.DISCOVERED, False
            if row["state"] == FileState.DISCOVERED:
                self.set_file(row["id"], **fields, reason="")
                self._set_class(row["id"], cand)
                return int(row["id"]), FileState.DISCOVERED, False
        # Other bytes under a copied row's identity: that row's bytes are no longer on the
        # camera, and not by our doing, so a wipe intent left on it must not be settled later
        # as our wipe of them.
        self.conn.execute(
            "UPDATE files SET wipe_started_at=NULL WHERE device_serial=? AND camera_path=? "
            "AND size=? AND mtime_ns=? AND sha256 IS NOT NULL AND wiped_at IS NULL",
            (serial, cand.rel_path, cand.size, cand.mtime_ns),
        )
        values = {
            **fields,
            "session_id": session_id,
            "device_serial": serial,
            "camera_path": cand.rel_path,
            "camera_name": display,
            "state": FileState.DISCOVERED.value,
            "discovered_at": now,
        }
        # A plain INSERT (the column names are ours, the values bound): sqlite-utils' insert()
        # reads the schema again at every call, a seventh of a small file's import.
        cursor = self.conn.execute(
            f"INSERT INTO files({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )
        file_id = int(cursor.lastrowid or 0)
        self._set_class(file_id, cand)
        return file_id, FileState.DISCOVERED, True

    def _set_class(self, file_id: int, cand: Candidate) -> None:
        """What the camera's profile says of the file beyond its kind and times (channel,
        partner's clip, note), kept only for the files it says something of."""
        self.conn.execute("DELETE FROM file_classes WHERE file_id=?", (file_id,))
        if cand.channel or cand.partner_of or cand.note:
            self.conn.execute(
                "INSERT INTO file_classes(file_id, channel, partner_of, class_note) "
                "VALUES (?, ?, ?, ?)",
                (file_id, cand.channel, cand.partner_of or None, cand.note),
            )

    def classified(self, row: FileRow) -> FileRow:
        """The row with what file_classes holds of it (channel, partner's clip, note)."""
        found = self.conn.execute(
            "SELECT channel, partner_of, class_note FROM file_classes WHERE file_id=?", (row.id,)
        ).fetchone()
        if found is None:
            return row
        partner_of = found["partner_of"]
        return replace(
            row,
            channel=str(found["channel"]),
            partner_of=bytes(partner_of) if partner_of is not None else None,
            class_note=str(found["class_note"]),
        )

    def set_file(self, file_id: int, **fields: Any) -> None:
        """Update columns that are not the state (wipe marks, reasons); the state changes only
        through transition()."""
        if "state" in fields:
            raise ValueError("a file's state changes only through transition()")
        self.update_row("files", file_id, _with_kind(fields))

    # ---- reads -----------------------------------------------------------------------------

    def _file_rows(self, where: str, args: Iterable[object] = ()) -> list[FileRow]:
        """Rows matching a WHERE clause written in this package (never a caller's)."""
        sql = f"SELECT * FROM files WHERE {where} ORDER BY id"
        return [checked_file_row(r, self.path) for r in self.conn.execute(sql, list(args))]

    def staged_paths(self, file_ids: Iterable[int]) -> dict[int, str]:
        """The staged path of each of these rows that has one, in one query (verify asks a
        batch of confirmations' files at a time)."""
        return {
            int(r[0]): str(r[1])
            for r in self.conn.execute(
                "SELECT id, staged_path FROM files WHERE id IN (SELECT value FROM json_each(?)) "
                "AND staged_path IS NOT NULL",
                (json.dumps(sorted(set(file_ids))),),
            )
        }

    def attempts_of(self, file_ids: Iterable[int]) -> dict[int, int]:
        """Each of these rows' copy attempts so far, in one query (a batch of small files is
        claimed together: one whole row read per file was a tenth of its import)."""
        return {
            int(r[0]): int(r[1])
            for r in self.conn.execute(
                "SELECT id, attempts FROM files WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(set(file_ids))),),
            )
        }

    def file_times(self, file_ids: Sequence[int]) -> Iterator[FileTimes]:
        """What dating and classing a dock's files needs of each of these rows, in id order,
        `_TIMES_BATCH` ids a query: not every row read whole, one query a file (that was a
        fifth of a small file's import), nor all of a large camera's rows at once."""
        sql = (
            "SELECT id, session_id, kind, important, recorded_start, recorded_end FROM files "
            "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id"
        )
        # A dock's new rows come in id order already: sorting them again held a list of
        # 100,000 ints (and a set) for a camera of 100,000 files.
        ordered = file_ids if _ascending(file_ids) else sorted(set(file_ids))
        for start in range(0, len(ordered), _TIMES_BATCH):
            chunk = json.dumps(list(ordered[start : start + _TIMES_BATCH]))
            for r in self.conn.execute(sql, (chunk,)):
                yield FileTimes(int(r[0]), int(r[1]), str(r[2]), bool(r[3]), str(r[4]), str(r[5]))

    def file(self, file_id: int) -> FileRow:
        row = self.conn.execute("SELECT * FROM files WHERE id=?", (file_id,)).fetchone()
        if row is None:
            raise not_found("files", file_id)
        return checked_file_row(row, self.path)

    def files_in_state(self, *states: FileState) -> list[FileRow]:
        marks, values = _marks(states)
        return self._file_rows(f"state IN ({marks})", values)

    def files_not_in_state(self, *states: FileState) -> list[FileRow]:
        if states == (FileState.CONFIRMED,):
            # `dockagent queue`: as a literal, the partial index files_unconfirmed answers it
            # (https://www.sqlite.org/partialindex.html), not a walk over every file confirmed.
            # Sorted here: ORDER BY id would have SQLite walk the table in id order instead.
            sql = f"SELECT * FROM files WHERE state != '{FileState.CONFIRMED.value}'"
            rows = [checked_file_row(r, self.path) for r in self.conn.execute(sql)]
            return sorted(rows, key=lambda r: r.id)
        marks, values = _marks(states)
        return self._file_rows(f"state NOT IN ({marks})", values)

    def unpurged_files_in_state(self, *states: FileState) -> list[FileRow]:
        """Rows in these states whose staged copy was not purged after confirmation."""
        marks, values = _marks(states)
        return self._file_rows(f"state IN ({marks}) AND purged_at IS NULL", values)

    def files_of_session(self, session_id: int) -> list[FileRow]:
        """The files a dock session saw on its camera (last seen there at that dock)."""
        return self._file_rows("last_session_id=?", (session_id,))

    def states_of_session(
        self, session_id: int
    ) -> Iterator[tuple[int, FileState, int, bytes, int]]:
        """(id, state, size, camera_path, mtime_ns) of files_of_session's rows, streamed in id
        order: what closing a session needs of each row, without every row loaded whole (a
        camera with 100,000 files held ~150 MiB of FileRows)."""
        sql = (
            "SELECT id, state, size, camera_path, mtime_ns FROM files "
            "WHERE last_session_id=? ORDER BY id"
        )
        for r in self.conn.execute(sql, (session_id,)):
            yield int(r[0]), FileState(r[1]), int(r[2]), bytes(r[3]), int(r[4])

    def interrupted_wipes(self, serial: str) -> list[FileRow]:
        """The camera's rows whose wipe was started and is not recorded as done."""
        return self._file_rows(
            "device_serial=? AND wipe_started_at IS NOT NULL AND wiped_at IS NULL", (serial,)
        )

    def all_files(self) -> Iterator[FileRow | UnreadableFile]:
        """Every row, streamed in id order (a station's whole history is never loaded at once);
        a row holding a value no agent writes comes as an UnreadableFile naming it."""
        for row in self.conn.execute("SELECT * FROM files ORDER BY id"):
            try:
                yield file_row(row)
            except ValueError as exc:
                yield unreadable_file(row, exc)

    def files_with_records(
        self, *, after_id: int | None = None, changed_upto: int = 0
    ) -> Iterator[tuple[FileRow | UnreadableFile, RecordRow | None, bool]]:
        """Every row streamed in id order as all_files yields it, with the record its
        record_seq names (None if the chain holds none) and whether a file record names the
        row: one join, read as it goes, instead of the chain held in memory and a query per row
        (`dockagent verify`). With `after_id`, only the rows after it and those noted changed
        up to note `changed_upto` (agent.store.verified)."""
        where, args = "", []
        if after_id is not None:
            where = "WHERE f.id > ? OR f.id IN (SELECT file_id FROM files_changed WHERE n <= ?) "
            args = [after_id, changed_upto]
        sql = (
            "SELECT f.*, r.seq AS r_seq, r.kind AS r_kind, r.file_id AS r_file_id, "
            "r.body AS r_body, r.record_hash AS r_record_hash, r.prev_hash AS r_prev_hash, "
            "r.signature AS r_signature, r.key_id AS r_key_id, "
            "EXISTS (SELECT 1 FROM records n WHERE n.kind='file' AND n.file_id = f.id) "
            "AS r_named FROM files f LEFT JOIN records r ON r.seq = f.record_seq "
            f"{where}ORDER BY f.id"
        )
        for row in self.conn.execute(sql, args):
            rec = None
            if row["r_seq"] is not None:
                rec = RecordRow(**{f: row[f"r_{f}"] for f in _RECORD_FIELDS})
            try:
                yield file_row(row), rec, bool(row["r_named"])
            except ValueError as exc:
                yield unreadable_file(row, exc), rec, bool(row["r_named"])

    def max_file_id(self) -> int:
        row = self.conn.execute("SELECT MAX(id) FROM files").fetchone()
        return int(row[0] or 0)

    # ---- counts ----------------------------------------------------------------------------

    def tus_verified_count(self) -> int:
        """Files a tus server has confirmed at the `verified` level (their sink_ref is a URL)."""
        row = self.conn.execute(
            "SELECT count(*) FROM files WHERE confirm_level='verified' AND sink_ref LIKE 'http%'"
        ).fetchone()
        return int(row[0])

    def unconfirmable_holds(self) -> list[FileRow]:
        """Held files whose sink could not confirm them at the configured level."""
        return self._file_rows(
            "state=? AND reason_kind=?",
            (FileState.HELD.value, ProblemKind.UPLOAD_UNCONFIRMABLE.value),
        )

    def _counts_kept(self) -> bool:
        """Whether file_counts is kept by triggers (migration 0009_scale_indexes); a reader of
        a database not migrated yet counts over the rows instead."""
        return self.has_table("file_counts")

    def state_counts(self) -> dict[str, int]:
        """Files per state, as the column holds it (a damaged state is counted, not hidden);
        read off file_counts, so its cost does not grow with the station's history."""
        if not self._counts_kept():
            sql = "SELECT state, COUNT(*) FROM files GROUP BY state"
            return {str(r[0]): int(r[1]) for r in self.conn.execute(sql)}
        sql = "SELECT state, SUM(files) FROM file_counts WHERE files > 0 GROUP BY state"
        return {str(r[0]): int(r[1]) for r in self.conn.execute(sql)}

    def session_state_counts(self, session_id: int) -> dict[str, int]:
        """Files per state among those a dock session saw (files_of_session)."""
        return self.sessions_state_counts([session_id]).get(session_id, {})

    def sessions_state_counts(self, session_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """Files per state among those each of these dock sessions saw, in one query."""
        sql = (
            "SELECT last_session_id, state, COUNT(*) FROM files "
            "WHERE last_session_id IN (SELECT value FROM json_each(?)) "
            "GROUP BY last_session_id, state"
        )
        out: dict[int, dict[str, int]] = {}
        ids = json.dumps(sorted({int(i) for i in session_ids}))
        for r in self.conn.execute(sql, (ids,)):
            out.setdefault(int(r[0]), {})[str(r[1])] = int(r[2])
        return out

    def state_counts_by_camera(self) -> list[StateCount]:
        sql = (
            "SELECT device_serial, state, files, bytes FROM file_counts WHERE files > 0 "
            "ORDER BY device_serial, state"
        )
        if not self._counts_kept():
            sql = (
                "SELECT device_serial, state, COUNT(*), SUM(size) FROM files "
                "GROUP BY device_serial, state ORDER BY device_serial, state"
            )
        return [
            StateCount(key=str(r[0]), state=str(r[1]), files=int(r[2]), bytes=int(r[3] or 0))
            for r in self.conn.execute(sql)
        ]


def _ascending(ids: Sequence[int]) -> bool:
    """Strictly increasing (so no id twice)."""
    return all(ids[i] < ids[i + 1] for i in range(len(ids) - 1))
