"""The per-file copy loop of a dock session: claim, copy + hash, publish, mark staged, seal.

Files are taken in batches that share their commits and directory fsyncs; each file is still
fsynced on its own, and no row says `staged` before the directory holding its copy is. A
failure lands on the file's row (back in the queue, or failed) and in the summary. This module
does not choose which files to copy (the session does), opens camera files only through
`offload.Copier`, and holds no SQL.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from agent.camera.listing import size_at
from agent.camera.volume import UnsafePathError
from agent.core import crashpoints, durable
from agent.core.config import Config
from agent.core.errors import (
    ErrorKind,
    SourceChanged,
    StagingFull,
    StagingRanOut,
    classify,
    describe,
)
from agent.core.model import (
    AWAITING_COPY,
    Candidate,
    FileState,
    ImportSummary,
    ProblemKind,
    StagedCopy,
    display_name,
)
from agent.custody.seal import Sealer
from agent.ingest.offload import Copier
from agent.ingest.preflight import free_bytes
from agent.store import Store

# A camera that vanished: every further read will fail the same way, so stop the session.
_GONE = {errno.ENOTCONN, errno.ENODEV, errno.ENXIO, errno.ESHUTDOWN}

# Small files are copied in batches that share their commits and directory fsyncs.
BATCH_BYTES = 8 << 20
BATCH_FILES = 64

# One file copied but not yet published: (file id, display name, the copy, its temporary file).
_Staged = tuple[int, str, StagedCopy, durable.TempFile]

# Why a session stops copying, and its kind (None while it goes on).
Stop = tuple[str, ProblemKind]


def batches(
    pending: Sequence[tuple[int, int]], candidates: Sequence[Candidate]
) -> Iterator[list[tuple[int, int]]]:
    """(file id, candidate index) pairs in runs of at most BATCH_FILES files and BATCH_BYTES."""
    batch: list[tuple[int, int]] = []
    size = 0
    for item in pending:
        item_size = size_at(candidates, item[1])
        if batch and (size + item_size > BATCH_BYTES or len(batch) >= BATCH_FILES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


class BatchCopier:
    """Copies, stages and seals the batches of one camera, recording each outcome."""

    def __init__(
        self,
        config: Config,
        store: Store,
        sealer: Sealer,
        copier: Copier,
        now: Callable[[], str],
    ) -> None:
        self.config = config
        self.store = store
        self.sealer = sealer
        self.copier = copier
        self.now = now

    def copy_batch(
        self,
        root_fd: int,
        batch: list[tuple[int, int]],
        candidates: Sequence[Candidate],
        summary: ImportSummary,
        log_: Any,
    ) -> Stop | None:
        """Claim, copy, stage and seal a batch; returns why the session stops, or None.

        A batch shares its commits and directory fsyncs (small files: ~2 fsyncs each instead
        of ~7); each file is still fsynced on its own, and no row says `staged` before the
        directory holding its copy is fsynced.
        """
        self._claim(batch)
        staged: list[_Staged] = []
        stopped: Stop | None = None
        abort: BaseException | None = None
        ran_out = ("", "")  # the file during which staging filled up, and the error
        for file_id, index in batch:
            cand = candidates[index]
            name = display_name(cand.rel_path)
            crashpoints.hit("copy.claimed")
            if stopped is not None:
                self._release(file_id, *stopped)
                summary.add_problem(name, *stopped)
                continue
            try:
                copy, tmp = self.copier.copy_unpublished(
                    root_fd, cand, file_id, summary.device_serial
                )
            except (OSError, SourceChanged) as exc:
                try:
                    reason, kind, stopped = self._copy_failed(file_id, exc, name, log_)
                except StagingFull as full:
                    abort, stopped = full, ("staging full; not copied", ProblemKind.STAGING_FULL)
                    reason, kind = full.message, ProblemKind.STAGING_FULL
                    ran_out = (name, describe(exc))
                summary.add_problem(name, reason, kind)
                continue
            staged.append((file_id, name, copy, tmp))
        if staged:
            self._stage_and_seal(staged, summary, log_)
        if abort is not None:
            # Staging filled up halfway (ENOSPC on a write or a fallocate): the files sealed
            # before it are held, so the preflight's "nothing was copied" would be false.
            raise StagingRanOut(
                path=str(self.config.staging_path),
                file=ran_out[0],
                detail=ran_out[1],
                sealed=summary.files_sealed,
            ) from abort
        return stopped

    def _claim(self, batch: list[tuple[int, int]]) -> None:
        """Mark every file of the batch as being copied by this process, in one commit."""
        with self.store.transaction():
            attempts = self.store.attempts_of(file_id for file_id, _ in batch)
            for file_id, _ in batch:
                self.store.transition(
                    file_id,
                    AWAITING_COPY,
                    FileState.COPYING,
                    claimed_by=str(os.getpid()),
                    attempts=attempts.get(file_id, 0) + 1,
                    updated_at=self.now(),
                )

    def _release(self, file_id: int, reason: str, kind: ProblemKind) -> None:
        """Put a claimed file back in the queue, uncopied, saying why."""
        self.store.transition(
            file_id,
            FileState.COPYING,
            FileState.DISCOVERED,
            reason=reason,
            reason_kind=kind,
            claimed_by=None,
            updated_at=self.now(),
        )

    def _stage_and_seal(self, staged: list[_Staged], summary: ImportSummary, log_: Any) -> None:
        """Publish the copies, mark their rows staged in one commit, then seal them together."""
        self._publish(staged, summary.device_serial, log_)
        staged_at = self.now()
        with self.store.transaction():
            for file_id, _, copy, _ in staged:
                self.store.transition(
                    file_id,
                    FileState.COPYING,
                    FileState.STAGED,
                    sha256=copy.sha256,
                    stored_sha256=copy.stored_sha256,
                    stored_size=copy.stored_size,
                    staged_path=copy.staged_rel,
                    staged_at=staged_at,
                    updated_at=staged_at,
                    claimed_by=None,
                    reason="",
                )
        for _ in staged:
            crashpoints.hit("copy.staged")
        records = self.sealer.seal_many([file_id for file_id, *_ in staged], self.now())
        for (file_id, name, copy, _), record in zip(staged, records, strict=True):
            summary.bytes_copied += copy.size
            summary.files_sealed += 1
            log_.info(
                "file.sealed",
                file_id=file_id,
                file=name,
                sha256=copy.sha256,
                size=copy.size,
                seq=record.seq,
            )

    def _publish(self, staged: list[_Staged], serial: str, log_: Any) -> None:
        """Make a batch's copies durable: one syncfs for their content (one file: its fsync),
        then link each, then one fsync of the directory (DESIGN.md rules 4-5, batched). Any
        error discards the whole batch (never retry a sync and trust it); the rows go back to
        the queue."""
        directory = self.copier.directory(serial)
        published: list[Path] = []
        # A batch of one (every large file is one) fsyncs its file: a syncfs would write back
        # every dirty page of the staging file system, other programs' too, to make one file
        # durable whose bytes the O_DIRECT writers already put on the disk.
        alone = len(staged) == 1
        try:
            if not alone:
                durable.sync_filesystem(directory)
            for _, _, copy, tmp in staged:
                published.append(tmp.publish(copy.file_size, sync_dir=False, sync_file=alone))
            durable.fsync_dir(directory)
        except OSError as exc:
            for _, _, _, tmp in staged:
                tmp.discard()
            for path in published:
                path.unlink(missing_ok=True)
            for file_id, name, _, _ in staged:
                self._release(
                    file_id,
                    f"staging write failed, copied again: {describe(exc)}",
                    ProblemKind.STAGING_WRITE_FAILED,
                )
                log_.error("file.staging_failed", file_id=file_id, file=name, error=describe(exc))
            raise

    def _copy_failed(
        self, file_id: int, exc: BaseException, name: str, log_: Any
    ) -> tuple[str, ProblemKind, Stop | None]:
        """Put the row where the failure belongs; returns (reason, its kind, why the session
        stops)."""
        reason = describe(exc) if isinstance(exc, OSError) else str(exc)
        problem = ProblemKind.READ_FAILED
        if isinstance(exc, SourceChanged):
            problem = ProblemKind.SOURCE_CHANGED
        if isinstance(exc, UnsafePathError):
            reason = f"not a regular file when opened: {exc}"
        stop: Stop | None = None
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self._staging_full(file_id, exc, name, reason, log_)
        if isinstance(exc, OSError) and exc.errno in _GONE:
            stop = ("camera disconnected before this file was copied", ProblemKind.CAMERA_GONE)
            reason = f"camera disconnected while copying ({reason})"
            problem = ProblemKind.CAMERA_GONE
        kind = classify(exc)
        target = FileState.DISCOVERED if kind is ErrorKind.RETRYABLE else FileState.FAILED
        self.store.transition(
            file_id,
            FileState.COPYING,
            target,
            reason=reason,
            reason_kind=problem,
            claimed_by=None,
            updated_at=self.now(),
        )
        log_.warning(
            "file.copy_failed", file_id=file_id, file=name, reason=reason, error_kind=kind.value
        )
        return reason, problem, stop

    def _staging_full(self, file_id: int, exc: OSError, name: str, reason: str, log_: Any) -> None:
        """Staging filled up while copying this file: back to the queue, and raise StagingFull."""
        self.store.transition(
            file_id,
            FileState.COPYING,
            FileState.DISCOVERED,
            reason=f"staging full: {reason}",
            reason_kind=ProblemKind.STAGING_FULL,
            updated_at=self.now(),
        )
        log_.error(
            "file.copy_failed",
            file_id=file_id,
            file=name,
            reason=reason,
            error_kind="retryable",
        )
        needed = self.store.file(file_id).size
        raise StagingFull(
            path=str(self.config.staging_path), free=max(free_bytes(self.config), 0), needed=needed
        ) from exc
