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


class SinkQueries(StoreBase):
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

    def _read(self, sql: str, args: tuple[object, ...]) -> list[sqlite3.Row]:
        """A view's rows; none from a database that a reader opened before migration 0014
        (`status` and `queue` only look, and do not migrate)."""
        try:
            return list(self.conn.execute(sql, args))
        except sqlite3.OperationalError as exc:
            if "no such table: file_sinks" in str(exc):
                return []
            raise
