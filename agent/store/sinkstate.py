"""Per-sink upload state: with several sinks ([[sync.sinks]]), how each file stands with each.

One row per file and sink name: `confirmed` (with the level and where the sink holds it),
`waiting` (a retryable failure; the file's own row carries the backoff) or `held` (a permanent
one, with the reason). These rows are what `status`, `queue` and the pool read; they unlock
nothing: purge and wipe ask the chain for the signed confirmations (agent.store.uploads). No
policy here, no clock but the times written down.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from agent.store.base import StoreBase

SINK_STATES = ("confirmed", "waiting", "held")


@dataclass(frozen=True, slots=True)
class SinkState:
    state: str  # one of SINK_STATES
    level: str = ""
    ref: str = ""
    reason: str = ""
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class SinkUpload:
    """One sink's own upload of a file (migration 0020): where it is and how far the server
    acknowledged it, so that sink resumes it after a restart."""

    url: str
    expires_at: str | None
    offset: int
    checksummed: bool


class SinkQueries(StoreBase):
    def sink_upload(self, file_id: int, sink: str) -> SinkUpload | None:
        """The sink's stored upload of the file, None when it has none."""
        row = self.conn.execute(
            "SELECT upload_url, upload_expires_at, upload_offset, upload_checksummed "
            "FROM file_sinks WHERE file_id=? AND sink=? AND upload_url IS NOT NULL",
            (file_id, sink),
        ).fetchone()
        if row is None:
            return None
        expires = None if row[1] is None else str(row[1])
        return SinkUpload(str(row[0]), expires, int(row[2]), bool(row[3]))

    def record_sink_upload(
        self,
        file_id: int,
        sink: str,
        now: str,
        *,
        url: str | None,
        expires_at: str | None = None,
        offset: int = 0,
        checksummed: bool = True,
    ) -> None:
        """The sink's upload URL (None: forgotten) and acknowledged offset. A sink with no row
        of the file yet gets one, `waiting`: it has not confirmed the file."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO file_sinks(file_id, sink, state, updated_at, upload_url, "
                "upload_expires_at, upload_offset, upload_checksummed) "
                "VALUES (?, ?, 'waiting', ?, ?, ?, ?, ?) ON CONFLICT(file_id, sink) DO UPDATE "
                "SET upload_url=excluded.upload_url, upload_expires_at=excluded.upload_expires_at, "
                "upload_offset=excluded.upload_offset, "
                "upload_checksummed=excluded.upload_checksummed, updated_at=excluded.updated_at",
                (file_id, sink, now, url, expires_at, offset, int(checksummed)),
            )

    def record_sink_offset(
        self, file_id: int, sink: str, offset: int, checksummed: bool, now: str
    ) -> None:
        """An offset the sink's server acknowledged, on the upload stored for it."""
        with self.transaction():
            self.conn.execute(
                "UPDATE file_sinks SET upload_offset=?, upload_checksummed=?, updated_at=? "
                "WHERE file_id=? AND sink=?",
                (offset, int(checksummed), now, file_id, sink),
            )

    def sink_states(self, file_id: int) -> dict[str, SinkState]:
        """How the file stands with each sink that has tried it, by sink name."""
        return {
            str(r["sink"]): SinkState(
                str(r["state"]),
                str(r["level"]),
                str(r["ref"]),
                str(r["reason"]),
                int(r["attempts"]),
            )
            for r in self.conn.execute(
                "SELECT sink, state, level, ref, reason, attempts FROM file_sinks WHERE file_id=?",
                (file_id,),
            )
        }

    def record_sink(
        self,
        file_id: int,
        sink: str,
        state: str,
        now: str,
        *,
        level: str = "",
        ref: str = "",
        reason: str = "",
    ) -> None:
        """One attempt's outcome for one sink (the caller's transaction, where it has one)."""
        if state not in SINK_STATES:
            raise ValueError(f"unknown sink state {state!r}")
        with self.transaction():
            self.conn.execute(
                "INSERT INTO file_sinks(file_id, sink, state, level, ref, reason, attempts, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT(file_id, sink) DO UPDATE "
                "SET state=excluded.state, level=excluded.level, ref=excluded.ref, "
                "reason=excluded.reason, attempts=attempts+1, updated_at=excluded.updated_at",
                (file_id, sink, state, level, ref, reason, now),
            )

    def sinks_pending(self) -> dict[str, dict[str, int]]:
        """Per sink, how many files wait for it or are held by it (confirmed ones are not
        counted: that would read the station's history)."""
        counts: dict[str, dict[str, int]] = {}
        for r in self._read(
            "SELECT sink, state, COUNT(*) FROM file_sinks WHERE state IN ('waiting', 'held') "
            "GROUP BY state, sink",
            (),
        ):
            counts.setdefault(str(r[0]), {})[str(r[1])] = int(r[2])
        return counts

    def sinks_to_backfill(self, limit: int) -> list[tuple[int, str]]:
        """(file id, sink) of confirmed files whose staged copy is kept that a sink outside
        held_when still waits for."""
        return [
            (int(r[0]), str(r[1]))
            for r in self.conn.execute(
                "SELECT s.file_id, s.sink FROM file_sinks s JOIN files f ON f.id = s.file_id "
                "WHERE s.state='waiting' AND f.state='confirmed' AND f.purged_at IS NULL "
                "LIMIT ?",
                (limit,),
            )
        ]

    def sinks_of_files(self, file_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """file id -> sink name -> state, for the given files (the queue view)."""
        result: dict[int, dict[str, str]] = {}
        for r in self._read(
            "SELECT file_id, sink, state FROM file_sinks "
            "WHERE file_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(set(file_ids))),),
        ):
            result.setdefault(int(r[0]), {})[str(r[1])] = str(r[2])
        return result

    def sink_offsets_of_files(self, file_ids: Iterable[int]) -> dict[int, dict[str, int]]:
        """file id -> sink name -> the offset that sink's server acknowledged (the queue's
        bytes sent to each sink, migration 0020_custody_sink_offsets)."""
        result: dict[int, dict[str, int]] = {}
        for r in self._read(
            "SELECT file_id, sink, upload_offset FROM file_sinks "
            "WHERE file_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(set(file_ids))),),
        ):
            result.setdefault(int(r[0]), {})[str(r[1])] = int(r[2] or 0)
        return result

    def _read(self, sql: str, args: tuple[object, ...]) -> list[sqlite3.Row]:
        """A view's rows; none from a database that a reader opened before migration 0014
        (`status` and `queue` only look, and do not migrate)."""
        try:
            return list(self.conn.execute(sql, args))
        except sqlite3.OperationalError as exc:
            # A column of 0020_custody_sink_offsets, on a database a reader found older.
            if "no such table: file_sinks" in str(exc) or "no such column: upload_" in str(exc):
                return []
            raise
