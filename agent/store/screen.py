"""Queries of the bay status screen: how far each docked camera's dock has gone, and the
station's newest upload trouble, each in one statement over indexed columns.

Read-only: the screen's process opens the store over a `mode=ro` connection
(Store.open_read_only) and nothing here writes. What the numbers mean (copying, sealing,
uploading, time left) is decided by agent.screen, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.model import FileState
from agent.store.base import StoreBase
from agent.store.devices import RefusalRow


@dataclass(frozen=True, slots=True)
class DockProgress:
    """The files a dock session saw, summed by state (files_of_session: last seen at it)."""

    files: dict[str, int]  # state -> files
    sizes: dict[str, int]  # state -> bytes
    uploaded: int  # bytes the sink acknowledged of files not yet confirmed (upload_offset)
    wiped: int  # files wiped from the camera
    first_staged_at: str | None  # station UTC text of the first and last copy finished
    last_staged_at: str | None


@dataclass(frozen=True, slots=True)
class UploadTrouble:
    """Files whose upload was put off after a failure (their error text is not handed out: it
    may name the server's address, which the screen does not show)."""

    waiting: int
    since: str  # station UTC text: the newest failure among them


class ScreenQueries(StoreBase):
    def dock_progress(self, session_id: int) -> DockProgress:
        rows = self.conn.execute(
            "SELECT state, COUNT(*), COALESCE(SUM(size), 0), "
            "COALESCE(SUM(CASE WHEN state != ? THEN upload_offset ELSE 0 END), 0), "
            "SUM(wiped_at IS NOT NULL), MIN(staged_at), MAX(staged_at) "
            "FROM files WHERE last_session_id=? GROUP BY state",
            (FileState.CONFIRMED.value, session_id),
        ).fetchall()
        starts = [str(r[5]) for r in rows if r[5] is not None]
        ends = [str(r[6]) for r in rows if r[6] is not None]
        return DockProgress(
            files={str(r[0]): int(r[1]) for r in rows},
            sizes={str(r[0]): int(r[2]) for r in rows},
            uploaded=sum(int(r[3]) for r in rows),
            wiped=sum(int(r[4] or 0) for r in rows),
            first_staged_at=min(starts) if starts else None,
            last_staged_at=max(ends) if ends else None,
        )

    def upload_trouble(self) -> UploadTrouble | None:
        """Files waiting for a retry after a failed upload (sealed, with a last_error and a
        next attempt set); None when no upload is being put off."""
        row = self.conn.execute(
            "SELECT COUNT(*), MAX(updated_at) FROM files "
            f"WHERE state = '{FileState.SEALED.value}' AND last_error != '' "
            "AND next_attempt_at IS NOT NULL"
        ).fetchone()
        if row is None or not row[0]:
            return None
        return UploadTrouble(int(row[0]), str(row[1] or ""))

    def refusals_since(self, since: str, limit: int = 5) -> list[RefusalRow]:
        """The newest `limit` refusals at or after `since` (station UTC text), newest first:
        read from the index on their time, however many the station refused before."""
        rows = self.conn.execute(
            "SELECT * FROM refusals WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?",
            (since, max(0, int(limit))),
        )
        return [RefusalRow.from_row(r) for r in rows]
