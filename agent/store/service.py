"""Queries behind running as a service: metrics, the systemd STATUS line and `dockagent doctor`.

Read-only aggregates over the same rows `status` and `queue` show, so the numbers agree, and the
full database integrity check. No writes and no judgement of what the numbers mean here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from agent.core.model import FileState
from agent.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class OldestUnconfirmed:
    """The file seen longest ago that no sink has confirmed yet: which, where, since when."""

    file_id: int
    device_serial: str
    state: str
    discovered_at: str  # station UTC text


WHOLE_CHECKED = "whole_checked_at"


class ServiceQueries(StoreBase):
    def note_whole_check(self, at: str) -> None:
        """Record that the whole database passed PRAGMA quick_check at `at` (station UTC)."""
        with self.transaction():
            self.set_meta(WHOLE_CHECKED, at)

    def whole_checked_at(self) -> str | None:
        """When the whole database last passed its check (note_whole_check), if ever."""
        return self.meta(WHOLE_CHECKED)

    def integrity_problems(self, limit: int = 20) -> list[str]:
        """PRAGMA integrity_check: [] when the whole database is sound (slow on a big one)."""
        rows = self.conn.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()
        found = [str(r[0]) for r in rows]
        return [] if found == ["ok"] else found

    def bytes_in_states(self, states: Iterable[FileState]) -> int:
        wanted = [s.value for s in states]
        marks = ",".join("?" for _ in wanted)
        row = self.conn.execute(
            f"SELECT COALESCE(SUM(size), 0) FROM files WHERE state IN ({marks})", wanted
        ).fetchone()
        return int(row[0])

    def oldest_unconfirmed(self) -> OldestUnconfirmed | None:
        """The file seen longest ago that no sink has confirmed yet (any state but confirmed)."""
        # The state as a literal, not a parameter: only then may SQLite read the partial index
        # files_unconfirmed (https://www.sqlite.org/partialindex.html, "Queries Using Partial
        # Indexes"), which holds the rows still in the pipeline, not every file confirmed.
        row = self.conn.execute(
            "SELECT id, device_serial, state, discovered_at FROM files "
            f"WHERE state != '{FileState.CONFIRMED.value}' ORDER BY discovered_at, id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return OldestUnconfirmed(
            int(row["id"]), str(row["device_serial"]), str(row["state"]), str(row["discovered_at"])
        )

    def last_confirmed_at(self) -> str | None:
        try:
            row = self.conn.execute("SELECT MAX(confirmed_at) FROM files").fetchone()
        except sqlite3.OperationalError:  # a database from before uploads (0003_uploads)
            return None
        return None if row is None or row[0] is None else str(row[0])

    def docked_count(self) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM sessions WHERE undocked_at IS NULL")
        return int(row.fetchone()[0])

    def refusal_count(self, since: str = "") -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM refusals WHERE at >= ?", (since,))
        return int(row.fetchone()[0])
