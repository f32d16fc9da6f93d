"""Where the last clean `dockagent verify` ended, and the file rows changed since (migration
0010_scale_verify_marks), so `verify --incremental` checks only what came after.

The notes of changed rows are written by triggers, never here; this module reads them, and
moves the mark forward once a verify found nothing. Whether a verify was clean is decided by
agent.custody.verify, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class VerifiedHead:
    """The chain's head and the highest file row when a verify last found nothing wrong, and
    the last note of a changed row it had seen (`changed`)."""

    seq: int
    record_hash: str
    max_file_id: int
    verified_at: str
    changed: int = 0


class VerifiedQueries(StoreBase):
    def marks_kept(self) -> bool:
        """Whether migration 0010 was applied (a reader never migrates the database)."""
        return self.has_table("verified_head")

    def verified_head(self) -> VerifiedHead | None:
        """The last clean verify's place, with the newest note of a changed row now."""
        if not self.marks_kept():
            return None
        row = self.conn.execute(
            "SELECT seq, record_hash, max_file_id, verified_at FROM verified_head WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        return VerifiedHead(int(row[0]), str(row[1]), int(row[2]), str(row[3]), self.changed_mark())

    def changed_mark(self) -> int:
        """The newest note of a changed row (0: none); notes after it came later."""
        if not self.marks_kept():
            return 0
        row = self.conn.execute("SELECT MAX(n) FROM files_changed").fetchone()
        return int(row[0] or 0)

    def note_verified(
        self, seq: int, record_hash: str, max_file_id: int, changed: int, now: str
    ) -> None:
        """A verify found nothing wrong up to record `seq` and file row `max_file_id`, and saw
        the notes of changed rows up to `changed`: those are dropped, later ones kept."""
        if not self.marks_kept():
            return
        with self.transaction():
            self.conn.execute(
                "INSERT INTO verified_head(id, seq, record_hash, max_file_id, verified_at) "
                "VALUES (1, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET seq=excluded.seq, "
                "record_hash=excluded.record_hash, max_file_id=excluded.max_file_id, "
                "verified_at=excluded.verified_at",
                (seq, record_hash, max_file_id, now),
            )
            self.conn.execute("DELETE FROM files_changed WHERE n <= ?", (changed,))
