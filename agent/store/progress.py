"""How far the work on a docked camera is: its copy (bytes done and total, and of the file being
copied) and its uploads (bytes the sink acknowledged of the bytes to send), and the readiness
verdict re-judged while it stays docked.

A copy's progress is one row per session (copy_progress), overwritten by the copier a few times
a second at most (agent.ingest.progress throttles): never a commit per buffer. Upload progress
is not kept twice: it is the acknowledged offsets the upload pool already records on the files.
No policy here, and nothing that decides when to write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.core.model import FileState
from agent.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class CopyProgress:
    session_id: int
    bytes_done: int
    bytes_total: int
    file_id: int | None
    file_done: int
    file_total: int
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "file_id": self.file_id,
            "file_done": self.file_done,
            "file_total": self.file_total,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class UploadProgress:
    bytes_done: int  # confirmed files whole, the others to the offset the sink acknowledged
    bytes_total: int  # every file of the session the station holds or sends

    def as_dict(self) -> dict[str, int]:
        return {"bytes_done": self.bytes_done, "bytes_total": self.bytes_total}


class ProgressQueries(StoreBase):
    def progress_ready(self) -> bool:
        """Whether migration 0016 was applied (a reader never migrates the database)."""
        return self.has_table("copy_progress")

    def put_copy_progress(self, progress: CopyProgress) -> None:
        """One row per session, replaced; its own short transaction (or the caller's)."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO copy_progress(session_id, bytes_done, bytes_total, file_id, "
                "file_done, file_total, updated_at) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT(session_id) DO UPDATE SET bytes_done=excluded.bytes_done, "
                "bytes_total=excluded.bytes_total, file_id=excluded.file_id, "
                "file_done=excluded.file_done, file_total=excluded.file_total, "
                "updated_at=excluded.updated_at",
                (
                    progress.session_id,
                    progress.bytes_done,
                    progress.bytes_total,
                    progress.file_id,
                    progress.file_done,
                    progress.file_total,
                    progress.updated_at,
                ),
            )

    def copy_progress(self, session_ids: list[int]) -> dict[int, CopyProgress]:
        if not session_ids or not self.progress_ready():
            return {}
        rows = self.conn.execute(
            "SELECT * FROM copy_progress WHERE session_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(session_ids)),),
        )
        return {
            int(r["session_id"]): CopyProgress(**{k: r[k] for k in r.keys()})  # noqa: SIM118
            for r in rows
        }

    def copying_progress(self) -> dict[int, tuple[int, int]]:
        """(bytes done, bytes total) of each file being copied now, by file id."""
        if not self.progress_ready():
            return {}
        # From the files being copied (an index on state), each to its session's row: the
        # progress rows, one per dock, are never walked. The state as a literal, as the
        # partial index files_unconfirmed needs (https://www.sqlite.org/partialindex.html).
        rows = self.conn.execute(
            "SELECT f.id, p.file_done, p.file_total FROM files f "
            "JOIN copy_progress p ON p.session_id = f.last_session_id AND p.file_id = f.id "
            f"WHERE f.state = '{FileState.COPYING.value}'"
        )
        return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def upload_progress(self, session_ids: list[int]) -> dict[int, UploadProgress]:
        """Per session, the bytes its files' uploads have done of their total."""
        if not session_ids:
            return {}
        rows = self.conn.execute(
            "SELECT last_session_id, "
            # The staged copy's size (the ciphertext's where it is encrypted): what is sent.
            "SUM(CASE WHEN state=? THEN COALESCE(stored_size, size) WHEN state IN (?,?,?) "
            "THEN MIN(upload_offset, COALESCE(stored_size, size)) ELSE 0 END), "
            "SUM(CASE WHEN state IN (?,?,?,?) THEN COALESCE(stored_size, size) ELSE 0 END) "
            "FROM files WHERE last_session_id IN (SELECT value FROM json_each(?)) "
            "GROUP BY last_session_id",
            (
                FileState.CONFIRMED.value,
                FileState.SEALED.value,
                FileState.UPLOADING.value,
                FileState.HELD.value,
                FileState.SEALED.value,
                FileState.UPLOADING.value,
                FileState.CONFIRMED.value,
                FileState.HELD.value,
                json.dumps(sorted(session_ids)),
            ),
        )
        return {int(r[0]): UploadProgress(int(r[1] or 0), int(r[2] or 0)) for r in rows}

    def judge_readiness(
        self, session_id: int, at: str, verdict: str, reasons: list[dict[str, str]], **fields: Any
    ) -> bool:
        """Store a verdict judged again while the camera stays docked (with the battery and
        storage it was judged on); False, and nothing written, once the verdict is final."""
        allowed = {"battery", "battery_verdict", "storage_free_bytes", "storage_capacity_bytes"}
        if set(fields) - allowed:
            raise ValueError(f"not a re-judged column: {sorted(set(fields) - allowed)}")
        values = [json.dumps(v) if isinstance(v, dict | list) else v for v in fields.values()]
        sets = "".join(f", {name}=?" for name in fields)
        with self.transaction():
            cur = self.conn.execute(
                "UPDATE session_health SET readiness=?, readiness_reasons=?, "
                f"readiness_at=?{sets}, updated_at=? WHERE session_id=? AND readiness_final=0",
                [verdict, json.dumps(reasons), at, *values, at, session_id],
            )
        return cur.rowcount > 0

    def finalise_readiness(self, session_ids: list[int] | None) -> None:
        """The camera was undocked (None: every camera, at the daemon's start, when nothing is
        docked yet): its verdict as last judged is final."""
        if not self.progress_ready() or session_ids == []:
            return
        if session_ids is None:
            self.conn.execute("UPDATE session_health SET readiness_final=1 WHERE readiness_final=0")
            return
        self.conn.execute(
            "UPDATE session_health SET readiness_final=1 "
            "WHERE session_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(session_ids)),),
        )
