"""Queries of the upload queue: claiming sealed rows, recording progress, confirming, purging.

Every transition goes through the store's one (FileTransitions.transition: it names the state it
expects, checks the edge against model.ALLOWED_TRANSITIONS and refuses otherwise), so an upload can
never confirm a row that is not the one it claimed. Timestamps are UTC ISO strings in one format,
written down but never compared with the clock here: when a retry is due and when a purge may happen
are decided on clocks a wall-clock step cannot move (agent.sync.schedule, agent.ingest.policy). No
network, no file I/O, no policy here.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Container, Iterable
from typing import Any

from agent.core.errors import TransitionRefused
from agent.core.model import UPLOAD_QUEUE, FileState, ProblemKind
from agent.store.custody import FileTransitions
from agent.store.rows import FileRow, checked_file_row

# A confirmation record (agent.custody.seal.Sealer.confirm) of the file, of the hash its row has.
_SIGNED_BATCH = 1000  # ids a query of signed_confirmations
_SIGNED = (
    "EXISTS (SELECT 1 FROM records r WHERE r.kind='confirmation' AND r.file_id=files.id "
    "AND json_extract(r.body, '$.sha256')=files.sha256)"
)
# With several sinks, held_when may require the confirmations of named sinks (by fingerprint,
# as each record names its sink): as many distinct sinks among them as are required. The `?`
# is a JSON array of the fingerprints.
_SIGNED_BY = (
    "(SELECT COUNT(DISTINCT json_extract(r.body, '$.sink_id')) FROM records r "
    "WHERE r.kind='confirmation' AND r.file_id=files.id "
    "AND json_extract(r.body, '$.sha256')=files.sha256 "
    "AND json_extract(r.body, '$.sink_id') IN (SELECT value FROM json_each(?))) = ?"
)


def _signed(required: tuple[str, ...] | None) -> tuple[str, list[object]]:
    """The condition that the chain holds the confirmations purge and wipe need: any sink's
    (required None: a single sink, or held_when "any"), else each required sink's."""
    if required is None:
        return _SIGNED, []
    return _SIGNED_BY, [json.dumps(sorted(set(required))), len(set(required))]


class UploadQueries(FileTransitions):
    # ---- claiming --------------------------------------------------------------------------

    def release_stale_uploads(self, now: str) -> int:
        """Rows left `uploading` by a process that is gone (the caller holds the writer lock and
        has started no upload worker yet, so no claim in the store can be live).

        No clock decides it: `now` is only written down. The upload URL and offset stay, so the
        next claim resumes with HEAD.
        """
        with self.transaction():
            return self.transition_all(
                FileState.UPLOADING,
                FileState.SEALED,
                claimed_by=None,
                updated_at=now,
                reason="upload interrupted; resumes from the server's offset",
                reason_kind=ProblemKind.UPLOAD_INTERRUPTED,
            )

    def claim_upload(
        self,
        worker: str,
        now: str,
        *,
        exclude: Container[int] = (),
        after: Iterable[FileRow] = (),
    ) -> FileRow | None:
        """Claim the next sealed row not in `exclude`: important first, then the oldest.

        `after`: the rows this pass claimed last (of the important ones, of the others); each
        part of the queue is read on from there, so a pass over n rows costs n index probes,
        not n scans of what it tried. A row sealed while the pass goes on is sealed later than
        any it claimed, so it is still found (an important one before the others). `exclude`
        is tested here, never sent to SQLite. Whether a waiting row is due is the caller's
        (agent.sync.schedule, on the monotonic clock); `now` is only written down.
        """
        with self.transaction():
            file_id = self._next_sealed(exclude, after)
            if file_id is None:
                return None
            self.transition(
                file_id,
                FileState.SEALED,
                FileState.UPLOADING,
                claimed_by=worker,
                updated_at=now,
                upload_attempts=self._value(file_id, "upload_attempts") + 1,
            )
            self.conn.execute(
                "UPDATE files SET upload_started_at=COALESCE(upload_started_at, ?) WHERE id=?",
                (now, file_id),
            )
            claimed = self.conn.execute("SELECT * FROM files WHERE id=?", (file_id,)).fetchone()
            return checked_file_row(claimed, self.path)

    def next_sealed(self, exclude: Container[int] = (), after: Iterable[FileRow] = ()) -> bool:
        """Whether claim_upload would find a row (the daemon's idle pass asks only this)."""
        return self._next_sealed(exclude, after) is not None

    def _next_sealed(self, exclude: Container[int], after: Iterable[FileRow]) -> int | None:
        last = {int(row.important): (row.sealed_at, row.id) for row in after}
        for important in (1, 0):
            key = last.get(important)
            while (row := self._sealed_after(important, key)) is not None:
                if int(row["id"]) not in exclude:
                    return int(row["id"])
                key = (row["sealed_at"], int(row["id"]))
        return None

    def _sealed_after(self, important: int, key: tuple[str | None, int] | None) -> Any:
        """The first sealed row of this importance after `key` (sealed_at, id) in claim order,
        by index range queries only (files_upload_queue; NULL sorts first, as in ORDER BY)."""
        base = f"SELECT id, sealed_at FROM files WHERE state=? AND important={important:d} AND "
        sealed = FileState.SEALED.value
        queries: list[tuple[str, tuple[object, ...]]]
        if key is None:
            queries = [(base + "1 ORDER BY sealed_at, id LIMIT 1", (sealed,))]
        elif key[0] is None:
            queries = [
                (base + "sealed_at IS NULL AND id > ? ORDER BY id LIMIT 1", (sealed, key[1])),
                (base + "sealed_at IS NOT NULL ORDER BY sealed_at, id LIMIT 1", (sealed,)),
            ]
        else:
            queries = [
                (base + "sealed_at = ? AND id > ? ORDER BY id LIMIT 1", (sealed, *key)),
                (base + "sealed_at > ? ORDER BY sealed_at, id LIMIT 1", (sealed, key[0])),
            ]
        for sql, args in queries:
            row = self.conn.execute(sql, args).fetchone()
            if row is not None:
                return row
        return None

    def _value(self, file_id: int, column: str) -> int:
        row = self.conn.execute(f"SELECT {column} FROM files WHERE id=?", (file_id,)).fetchone()
        return int(row[0] or 0)

    # ---- progress --------------------------------------------------------------------------

    def record_upload_url(
        self, file_id: int, sink: str, url: str, expires_at: str | None, now: str
    ) -> None:
        self._progress(
            file_id,
            upload_sink=sink,
            upload_url=url,
            upload_expires_at=expires_at,
            upload_offset=0,
            upload_checksummed=1,
            upload_progress_at=now,
        )

    def record_upload_offset(self, file_id: int, offset: int, checksummed: bool, now: str) -> None:
        self._progress(
            file_id,
            upload_offset=offset,
            upload_checksummed=int(checksummed),
            upload_progress_at=now,
        )

    def forget_upload_url(self, file_id: int, now: str) -> None:
        self._progress(
            file_id,
            upload_url=None,
            upload_expires_at=None,
            upload_offset=0,
            upload_checksummed=1,
            upload_progress_at=now,
        )

    def _progress(self, file_id: int, **fields: Any) -> None:
        names = ", ".join(f"{name}=?" for name in fields)
        with self.transaction():
            cur = self.conn.execute(
                f"UPDATE files SET {names} WHERE id=? AND state=?",
                [*fields.values(), file_id, FileState.UPLOADING.value],
            )
            if cur.rowcount != 1:
                row = self.conn.execute("SELECT state FROM files WHERE id=?", (file_id,)).fetchone()
                raise TransitionRefused(
                    file_id=file_id,
                    old="uploading",
                    new="uploading",
                    actual=row[0] if row else "missing",
                )

    # ---- outcomes --------------------------------------------------------------------------

    def confirm_upload(
        self, file_id: int, level: str, sink_ref: str, now: str, clock: str, boottime_s: float
    ) -> None:
        """`clock` and `boottime_s`: the moment on the boot clock too (migration 0005)."""
        with self.transaction():
            self.transition(
                file_id,
                FileState.UPLOADING,
                FileState.CONFIRMED,
                confirmed_at=now,
                confirmed_clock=clock,
                confirmed_boottime_s=boottime_s,
                confirm_level=level,
                sink_ref=sink_ref,
                claimed_by=None,
                reason="",
                last_error="",
                next_attempt_at=None,
                updated_at=now,
            )

    def defer_upload(self, file_id: int, reason: str, next_attempt_at: str, now: str) -> None:
        with self.transaction():
            self.transition(
                file_id,
                FileState.UPLOADING,
                FileState.SEALED,
                claimed_by=None,
                reason=f"upload will be retried: {reason}",
                reason_kind=ProblemKind.UPLOAD_DEFERRED,
                last_error=reason,
                next_attempt_at=next_attempt_at,
                updated_at=now,
            )

    def count_unprovable_upload(self, file_id: int, now: str) -> int:
        """One more upload of the file was complete but unprovable at confirm_level and was
        terminated to be sent again (migration 0021); the count after it."""
        with self.transaction():
            self.conn.execute(
                "UPDATE files SET unprovable_uploads=unprovable_uploads+1, updated_at=? WHERE id=?",
                (now, file_id),
            )
            return self._value(file_id, "unprovable_uploads")

    def digest_proven(self, sink: str, *, named: bool) -> bool:
        """Whether `sink` ever confirmed a file of this station at level `verified` (a
        Repr-Digest it computed): by its configured name in file_sinks (`named`, several
        sinks), else as the file rows' upload sink. Asked once per process and sink (the pool
        keeps the answer), so a scan of the confirmed rows is affordable."""
        if named:
            sql = (
                "SELECT 1 FROM file_sinks WHERE sink=? AND state='confirmed' "
                "AND level='verified' LIMIT 1"
            )
        else:
            sql = "SELECT 1 FROM files WHERE upload_sink=? AND confirm_level='verified' LIMIT 1"
        return self.conn.execute(sql, (sink,)).fetchone() is not None

    def hold_upload(
        self,
        file_id: int,
        reason: str,
        now: str,
        kind: ProblemKind = ProblemKind.UPLOAD_HELD,
    ) -> None:
        with self.transaction():
            self.transition(
                file_id,
                FileState.UPLOADING,
                FileState.HELD,
                claimed_by=None,
                reason=reason,
                reason_kind=kind,
                last_error=reason,
                next_attempt_at=None,
                updated_at=now,
            )

    def release_for_retry(self, file_ids: Iterable[int] | None, now: str) -> list[int]:
        """Held rows (all, or the given ones) back to sealed, and waiting rows due now."""
        ids = None if file_ids is None else list(file_ids)
        released: list[int] = []
        with self.transaction():
            if ids is None:
                rows = self.conn.execute(
                    "SELECT id, state FROM files WHERE state=?", (FileState.HELD.value,)
                ).fetchall()
            else:
                marks = ",".join("?" for _ in ids)
                rows = self.conn.execute(
                    f"SELECT id, state FROM files WHERE id IN ({marks})", ids
                ).fetchall()
            for row in rows:
                file_id, state = int(row["id"]), FileState(row["state"])
                if state is FileState.HELD:
                    self.transition(
                        file_id,
                        FileState.HELD,
                        FileState.SEALED,
                        reason="",
                        next_attempt_at=None,
                        updated_at=now,
                        # A technician's retry starts the bound on sending it again anew.
                        unprovable_uploads=0,
                    )
                elif state is FileState.SEALED:
                    self.conn.execute(
                        "UPDATE files SET next_attempt_at=NULL, updated_at=? WHERE id=?",
                        (now, file_id),
                    )
                else:
                    continue
                released.append(file_id)
        return released

    # ---- queue views -----------------------------------------------------------------------

    def waiting_uploads(self) -> dict[int, str]:
        """Sealed rows waiting for a retry: file id -> next_attempt_at (wall clock, as written)."""
        return {
            int(r[0]): str(r[1])
            for r in self.conn.execute(
                "SELECT id, next_attempt_at FROM files "
                "WHERE state=? AND next_attempt_at IS NOT NULL",
                (FileState.SEALED.value,),
            )
        }

    def uploads_unscheduled(self) -> bool:
        """Whether a sealed row waits for no backoff (sealed meanwhile, or released)."""
        row = self.conn.execute(
            "SELECT 1 FROM files WHERE state=? AND next_attempt_at IS NULL LIMIT 1",
            (FileState.SEALED.value,),
        ).fetchone()
        return row is not None

    def upload_backlog(self) -> dict[str, int]:
        """Rows per state of the upload queue (model.UPLOAD_QUEUE)."""
        wanted = sorted(s.value for s in UPLOAD_QUEUE)
        rows = self.conn.execute(
            f"SELECT state, COUNT(*) FROM files WHERE state IN ({','.join('?' for _ in wanted)}) "
            "GROUP BY state",
            wanted,
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    # ---- purge -----------------------------------------------------------------------------

    def purge_candidates(
        self,
        not_after: tuple[str, float] | None = None,
        required: tuple[str, ...] | None = None,
    ) -> list[FileRow]:
        """Confirmed rows whose staged copy is not purged yet, with the moment of confirmation
        on both clocks; whether the grace has passed is agent.ingest.policy's. Only `confirmed`
        rows that the chain holds a sink's signed confirmation of, for the hash the row holds:
        a row set to confirmed any other way (or unconfirmed) is never purged.

        `not_after` (epoch, boot time): leave out the rows confirmed on that clock epoch after
        that boot time; the caller passes now less the grace, so the rows still in their grace
        on this boot (every one of them, each pass) are not read. `required`: the sinks whose
        confirmations held_when requires (agent.core.config.station.held_sinks).
        """
        signed, signed_args = _signed(required)
        sql = (
            "SELECT * FROM files WHERE state=? AND purged_at IS NULL AND confirmed_at IS NOT NULL"
            f" AND {signed}"
        )
        args: list[object] = [FileState.CONFIRMED.value, *signed_args]
        if not_after is not None:
            sql += (
                " AND NOT (confirmed_clock IS ? AND confirmed_boottime_s IS NOT NULL"
                " AND confirmed_boottime_s > ?)"
            )
            args += list(not_after)
        return [
            checked_file_row(r, self.path) for r in self.conn.execute(sql + " ORDER BY id", args)
        ]

    def signed_confirmations(
        self, file_ids: Iterable[int], required: tuple[str, ...] | None = None
    ) -> set[int]:
        """The files among these that the chain holds a sink's signed confirmation of, for the
        hash their row holds (what a wipe after confirmation needs); with `required`, one of
        each of those sinks."""
        signed, signed_args = _signed(required)
        sql = f"SELECT id FROM files WHERE id IN (SELECT value FROM json_each(?)) AND {signed}"
        found: set[int] = set()
        # In runs of ids, not one JSON text of all: a camera of 100,000 files.
        ids = iter(file_ids)
        while run := list(itertools.islice(ids, _SIGNED_BATCH)):
            rows = self.conn.execute(sql, (json.dumps(run), *signed_args))
            found.update(int(r[0]) for r in rows)
        return found

    def mark_purged(self, file_id: int, now: str) -> bool:
        """Record the purge intent first: a crash after it leaves a harmless extra copy."""
        with self.transaction():
            cur = self.conn.execute(
                "UPDATE files SET purged_at=?, updated_at=? "
                "WHERE id=? AND state=? AND purged_at IS NULL",
                (now, now, file_id, FileState.CONFIRMED.value),
            )
            # A sink outside held_when that still waits for the file cannot get it any more
            # (several sinks, migration 0014): held, with the reason.
            self.conn.execute(
                "UPDATE file_sinks SET state='held', updated_at=?, reason='the staged copy was "
                "purged before this sink confirmed the file' WHERE file_id=? AND state='waiting'",
                (now, file_id),
            )
            return cur.rowcount == 1

    def purged_paths(self, among: Iterable[int]) -> list[str]:
        """Staged paths of the files among these ids whose copy was purged."""
        # CROSS JOIN keeps the ids as the outer loop (https://sqlite.org/optoverview.html,
        # "Manual Control Of Query Plans Using CROSS JOIN"): left to itself SQLite walked the
        # files_purge index over every file ever purged, at every writing command's start.
        return [
            str(r[0])
            for r in self.conn.execute(
                "SELECT f.staged_path FROM json_each(?) AS j CROSS JOIN files AS f "
                "ON f.id = j.value WHERE f.state=? AND f.purged_at IS NOT NULL",
                (json.dumps(sorted(set(among))), FileState.CONFIRMED.value),
            )
        ]
