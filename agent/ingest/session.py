"""One dock session end to end: identify, list, copy+hash, seal, and wipe where policy allows.

The same function serves `dockagent import PATH` and (later) the daemon's device events, so a
camera is handled identically whichever way it arrived. Per-file problems end up on the rows
and in the summary, never only in a log line. Holds no SQL and opens no camera file itself.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.camera import deviceinfo as camera
from agent.camera import scan
from agent.camera.profile import Profile
from agent.camera.volume import UnsafePathError, open_root
from agent.core import crashpoints, durable, log
from agent.core.config import Config
from agent.core.errors import ErrorKind, StagingFull, StagingRanOut, classify, describe
from agent.core.model import (
    CUSTODY_STATES,
    Candidate,
    DeviceInfo,
    FileState,
    ImportSummary,
    StagedCopy,
    display_name,
)
from agent.core.wallclock import utc_now
from agent.custody.seal import Sealer
from agent.health.dock import DockCheck
from agent.ingest.offload import Copier, SourceChanged
from agent.ingest.policy import WipeDecision, camera_may_be_wiped
from agent.ingest.wipe import settle_interrupted_wipes, wipe_files
from agent.store import Store

_log = log.get(__name__)

# A camera that vanished: every further read will fail the same way, so stop the session.
_GONE = {errno.ENOTCONN, errno.ENODEV, errno.ENXIO, errno.ESHUTDOWN}


# Small files are copied in batches that share their commits and directory fsyncs.
BATCH_BYTES = 8 << 20
BATCH_FILES = 64


def _batches(
    pending: list[tuple[int, int]], candidates: tuple[Candidate, ...]
) -> Iterator[list[tuple[int, int]]]:
    batch: list[tuple[int, int]] = []
    size = 0
    for item in pending:
        item_size = candidates[item[1]].size
        if batch and (size + item_size > BATCH_BYTES or len(batch) >= BATCH_FILES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


class Importer:
    def __init__(
        self,
        config: Config,
        store: Store,
        sealer: Sealer,
        profile: Profile,
        now: Callable[[], str] = utc_now,
    ) -> None:
        self.config = config
        self.store = store
        self.sealer = sealer
        self.profile = profile
        self.now = now
        self.copier = Copier(config.staging_path, config.storage.copy_chunk_bytes)
        self.should_stop: Callable[[], bool] = lambda: False
        # For a volume the agent mounted read-only itself: remount read-write (True) only to
        # wipe and to write TIME.TXT, and back (False) right after.
        self.make_writable: Callable[[bool], None] | None = None
        self.stays_docked = False
        # The session import_volume opened, also when it then raised: the daemon finds a dock's
        # sessions by id.
        self.session_id: int | None = None

    def import_volume(
        self,
        path: str,
        *,
        check: Callable[[DeviceInfo], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        stays_docked: bool = False,
        usb_serial: str = "",
        make_writable: Callable[[bool], None] | None = None,
    ) -> ImportSummary:
        """Take one mounted camera in. `check` may refuse it (raising CameraRefused) once its
        DEVICE.INF is read and before any evidence is; `should_stop` is asked between files
        (daemon shutdown); a camera that stays docked is marked undocked by its source later."""
        self.should_stop = should_stop
        self.make_writable = make_writable
        with open_root(path) as root_fd:
            info = camera.read_device_info(root_fd, self.profile, path)
            if check is not None:
                check(info)
            session_id = self.store.open_session(
                {
                    "device_serial": info.serial,
                    "usb_serial": usb_serial,
                    "profile": self.profile.name,
                    "officer_id": info.officer_id,
                    "vendor": info.vendor,
                    "model": info.model,
                    "firmware": info.firmware,
                    "unit": info.unit,
                    "source": path,
                    "docked_at": self.now(),
                }
            )
            self.session_id = session_id
            self.stays_docked = stays_docked
            crashpoints.hit("import.session_opened")
            log_ = _log.bind(device_serial=info.serial, session_id=session_id)
            log_.info("session.opened", officer_id=info.officer_id, source=path)
            # Health: drift needs the station time of dock detection (the session's docked_at).
            dock = DockCheck(self.config, self.store, self.profile, info, session_id, self.now)
            dock.docked(root_fd)
            summary = ImportSummary(session_id, info.serial, info.officer_id, path)
            try:
                self._run(root_fd, path, summary, log_, dock)
            except BaseException as exc:
                dock.failed(exc)
                self.store.update_session(
                    session_id,
                    {
                        "ended_at": self.now(),
                        "undocked_at": None if stays_docked else self.now(),
                        "outcome": "failed",
                        "problems": len(summary.problems) + 1,
                        "wipe_state": "not wiped",
                        "wipe_detail": describe(exc),
                    },
                )
                raise
            return summary

    def _run(
        self, root_fd: int, path: str, summary: ImportSummary, log_: Any, dock: DockCheck
    ) -> None:
        vfs = os.fstatvfs(root_fd)
        capacity = vfs.f_blocks * vfs.f_frsize
        used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
        result = scan.scan_volume(root_fd, self.profile, capacity)
        summary.files_found = len(result.candidates)
        for problem in result.problems:
            summary.problems.append(
                {"file": display_name(problem.rel_path), "reason": problem.reason}
            )
            log_.warning(
                "file.unreadable", file=display_name(problem.rel_path), reason=problem.reason
            )

        now = self.now()
        pending: list[tuple[int, int]] = []  # (file_id, candidate index)
        with self.store.transaction():
            for index, cand in enumerate(result.candidates):
                file_id, state, is_new = self.store.register(
                    summary.session_id,
                    summary.device_serial,
                    cand,
                    display_name(cand.rel_path),
                    now,
                )
                if is_new:
                    summary.files_new += 1
                if state in CUSTODY_STATES:
                    summary.files_already_held += 1
                elif state in (FileState.DISCOVERED, FileState.FAILED):
                    pending.append((file_id, index))
            present = {(c.rel_path, c.size, c.mtime_ns) for c in result.candidates}
            settle_interrupted_wipes(self.store, summary.device_serial, present, now)
        dock.scanned([file_id for file_id, _ in pending])  # corrected times before sealing
        crashpoints.hit("import.registered")
        if not pending:
            log_.info("session.nothing_new", files=summary.files_found)

        needed = sum(result.candidates[i].size for _, i in pending)
        self._check_space(needed)

        stopped = ""
        for batch in _batches(pending, result.candidates):
            if not stopped and self.should_stop():
                stopped = "the station is shutting down; copied at the next start"
            if stopped:
                for _, index in batch:
                    name = display_name(result.candidates[index].rel_path)
                    summary.problems.append({"file": name, "reason": stopped})
                continue
            stopped = self._copy_batch(root_fd, batch, result.candidates, summary, log_)

        self._finish(root_fd, summary, result.problems, used, capacity, log_, dock)

    def _copy_batch(
        self,
        root_fd: int,
        batch: list[tuple[int, int]],
        candidates: tuple[Candidate, ...],
        summary: ImportSummary,
        log_: Any,
    ) -> str:
        """Claim, copy, stage and seal a batch; returns why the session stops, or "".

        A batch shares its commits and directory fsyncs (small files: ~2 fsyncs each instead
        of ~7); each file is still fsynced on its own, and no row says `staged` before the
        directory holding its copy is fsynced.
        """
        serial = summary.device_serial
        with self.store.transaction():
            for file_id, _ in batch:
                self.store.transition(
                    file_id,
                    (FileState.DISCOVERED, FileState.FAILED),
                    FileState.COPYING,
                    claimed_by=str(os.getpid()),
                    attempts=self._attempts(file_id) + 1,
                    updated_at=self.now(),
                )
        staged: list[tuple[int, str, StagedCopy, durable.TempFile]] = []
        stopped = ""
        abort: BaseException | None = None
        ran_out = ("", "")  # the file during which staging filled up, and the error
        for file_id, index in batch:
            cand = candidates[index]
            name = display_name(cand.rel_path)
            crashpoints.hit("copy.claimed")
            if stopped:
                self.store.transition(
                    file_id,
                    FileState.COPYING,
                    FileState.DISCOVERED,
                    reason=stopped,
                    claimed_by=None,
                    updated_at=self.now(),
                )
                summary.problems.append({"file": name, "reason": stopped})
                continue
            try:
                copy, tmp = self.copier.copy_unpublished(root_fd, cand, file_id, serial)
            except (OSError, SourceChanged) as exc:
                try:
                    reason, stopped = self._copy_failed(file_id, exc, name, log_)
                except StagingFull as full:
                    abort, stopped = full, "staging full; not copied"
                    reason = full.message
                    ran_out = (name, describe(exc))
                summary.problems.append({"file": name, "reason": reason})
                continue
            staged.append((file_id, name, copy, tmp))
        if staged:
            self._publish(staged, serial, log_)
            staged_at = self.now()
            with self.store.transaction():
                for file_id, _, copy, _ in staged:
                    self.store.transition(
                        file_id,
                        FileState.COPYING,
                        FileState.STAGED,
                        sha256=copy.sha256,
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

    def _publish(
        self, staged: list[tuple[int, str, StagedCopy, durable.TempFile]], serial: str, log_: Any
    ) -> None:
        """Make a batch's copies durable: one syncfs for their content, then link each, then
        one fsync of the directory (DESIGN.md rules 4-5, batched). Any error discards the
        whole batch (never retry a sync and trust it); the rows go back to the queue."""
        directory = self.copier.directory(serial)
        published: list[Path] = []
        try:
            durable.sync_filesystem(directory)
            for _, _, copy, tmp in staged:
                published.append(tmp.publish(copy.size, sync_dir=False, sync_file=False))
            durable.fsync_dir(directory)
        except OSError as exc:
            for _, _, _, tmp in staged:
                tmp.discard()
            for path in published:
                path.unlink(missing_ok=True)
            for file_id, name, _, _ in staged:
                self.store.transition(
                    file_id,
                    FileState.COPYING,
                    FileState.DISCOVERED,
                    reason=f"staging write failed, copied again: {describe(exc)}",
                    claimed_by=None,
                    updated_at=self.now(),
                )
                log_.error("file.staging_failed", file_id=file_id, file=name, error=describe(exc))
            raise

    def _attempts(self, file_id: int) -> int:
        return int(self.store.file(file_id)["attempts"])

    def _check_space(self, needed: int) -> None:
        if needed == 0:
            return
        staging = self.config.staging_path
        staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        vfs = os.statvfs(staging)
        free = vfs.f_bavail * vfs.f_frsize - self.config.storage.reserve_bytes
        if needed > free:
            raise StagingFull(path=str(staging), free=max(free, 0), needed=needed)

    def _copy_failed(
        self, file_id: int, exc: BaseException, name: str, log_: Any
    ) -> tuple[str, str]:
        """Put the row where the failure belongs; returns (reason, why the session stops)."""
        reason = describe(exc) if isinstance(exc, OSError) else str(exc)
        if isinstance(exc, UnsafePathError):
            reason = f"not a regular file when opened: {exc}"
        stop = ""
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            stop = "staging full; not copied"
            self.store.transition(
                file_id,
                FileState.COPYING,
                FileState.DISCOVERED,
                reason=f"staging full: {reason}",
                updated_at=self.now(),
            )
            log_.error(
                "file.copy_failed",
                file_id=file_id,
                file=name,
                reason=reason,
                error_kind="retryable",
            )
            vfs = os.statvfs(self.config.staging_path)
            free = vfs.f_bavail * vfs.f_frsize - self.config.storage.reserve_bytes
            needed = int(self.store.file(file_id)["size"])
            raise StagingFull(
                path=str(self.config.staging_path), free=max(free, 0), needed=needed
            ) from exc
        if isinstance(exc, OSError) and exc.errno in _GONE:
            stop = "camera disconnected before this file was copied"
            reason = f"camera disconnected while copying ({reason})"
        kind = ErrorKind.RETRYABLE if isinstance(exc, SourceChanged) else classify(exc)
        target = FileState.DISCOVERED if kind is ErrorKind.RETRYABLE else FileState.FAILED
        self.store.transition(
            file_id,
            FileState.COPYING,
            target,
            reason=reason,
            claimed_by=None,
            updated_at=self.now(),
        )
        log_.warning(
            "file.copy_failed", file_id=file_id, file=name, reason=reason, error_kind=kind.value
        )
        return reason, stop

    def _finish(
        self,
        root_fd: int,
        summary: ImportSummary,
        scan_problems: tuple[object, ...],
        used: int,
        capacity: int,
        log_: Any,
        dock: DockCheck,
    ) -> None:
        rows = self.store.files("last_session_id=?", (summary.session_id,))
        states = [FileState(r["state"]) for r in rows]
        listed = sum(r["size"] for r in rows)
        policy = self.config.ingest.wipe_policy
        if not os.path.ismount(summary.source):
            # A directory laid out like a camera shares its file system with other data, so
            # the used-space accounting of a real volume does not apply to it.
            used, capacity = listed, max(capacity, listed)
        decision = camera_may_be_wiped(policy, states, len(scan_problems), used, listed, capacity)
        writable = self.make_writable is not None and (decision.allowed or dock.wants_clock_write())
        if writable and self.make_writable is not None:
            self.make_writable(True)
        try:
            self._wipe_and_close(root_fd, summary, rows, states, decision, log_, dock)
        finally:
            if writable and self.make_writable is not None:
                self.make_writable(False)

    def _wipe_and_close(
        self,
        root_fd: int,
        summary: ImportSummary,
        rows: list[dict[str, Any]],
        states: list[FileState],
        decision: WipeDecision,
        log_: Any,
        dock: DockCheck,
    ) -> None:
        policy = self.config.ingest.wipe_policy
        if decision.allowed:
            outcome = wipe_files(self.store, root_fd, rows, policy, self.now())
            summary.wipe = {
                "state": "wiped" if not outcome.refused else "partly wiped",
                "wiped": outcome.wiped,
                "refused": outcome.refused,
            }
            for refusal in outcome.refused:
                log_.warning("file.wipe_refused", **refusal)
        else:
            summary.wipe = {"state": "not wiped", "reason": decision.reason}
        complete = not summary.problems and all(s in CUSTODY_STATES for s in states)
        ended = self.now()
        self.store.update_session(
            summary.session_id,
            {
                "ended_at": ended,
                "undocked_at": None if self.stays_docked else ended,
                "outcome": "complete" if complete else "incomplete",
                "files_found": summary.files_found,
                "files_new": summary.files_new,
                "files_sealed": summary.files_sealed,
                "bytes_copied": summary.bytes_copied,
                "problems": len(summary.problems),
                "wipe_state": str(summary.wipe.get("state", "")),
                "wipe_detail": str(summary.wipe.get("reason", "")),
            },
        )
        dock.finished(root_fd, summary)  # TIME.TXT, storage left, readiness: after the wipe
        log_.info(
            "session.closed",
            outcome="complete" if complete else "incomplete",
            files=summary.files_found,
            sealed=summary.files_sealed,
            already_held=summary.files_already_held,
            problems=len(summary.problems),
        )


# utc_now is the station clock's (agent.core.wallclock); it stays importable from here.
__all__ = ["BATCH_BYTES", "BATCH_FILES", "Importer", "utc_now"]
