"""One dock session end to end: identify, list, copy+hash, seal, and wipe where policy allows.

`Importer.import_volume` serves both `dockagent import PATH` and the daemon's device events, so
a camera is handled identically whichever way it arrived. The copy loop itself is
`agent.ingest.copying`'s. Per-file problems end up on the rows and in the summary, never only in
a log line. Holds no SQL and opens no camera file itself.

"Already held" is proven, never assumed: a listed file whose path, size and mtime match a row in
custody is hashed again (agent.ingest.proof), after the new recordings are copied, and is that
row only when its bytes hash to the row's sealed sha256; other bytes under that identity are new
evidence, registered as a row of their own and copied and sealed at this dock. So are bytes the
wipe pass finds changed just before an unlink (agent.ingest.wipe): taken in at this dock, wiped
at a later pass. The cost is a read of the camera's already-held files at every dock (reads
only); a pass that wipes reads them again at the unlink, which must not trust an earlier read.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from agent.camera import identity, scan
from agent.camera.listing import Listing, size_at
from agent.camera.profile import Profile
from agent.camera.volume import open_root
from agent.core import crashpoints, log
from agent.core.config import Config
from agent.core.config import station as station_config
from agent.core.errors import CameraRefused, SourceChanged, describe
from agent.core.model import (
    AWAITING_COPY,
    CUSTODY_STATES,
    Candidate,
    DeviceInfo,
    FileState,
    ImportSummary,
    ProblemKind,
    SessionOutcome,
    display_name,
)
from agent.core.wallclock import utc_now
from agent.custody.seal import Sealer
from agent.health.clock_dock import Readings
from agent.health.dock import DockCheck
from agent.ingest import binding
from agent.ingest.binding import BindingCheck, BindingState
from agent.ingest.continuation import ContinuedDock, DockHealth
from agent.ingest.copying import BatchCopier, Stop, batches
from agent.ingest.offload import Copier
from agent.ingest.pairs import Pairs, States
from agent.ingest.policy import WipeDecision, camera_may_be_wiped, held_state
from agent.ingest.preflight import fit_space, record_left
from agent.ingest.progress import Progress
from agent.ingest.proof import Prover
from agent.ingest.wipe import Changed, settle_interrupted_wipes, wipe_files
from agent.store import FileRow, SessionRow, Store

_log = log.get(__name__)

_STATES_RUN = 1000  # rows of a session whose signed confirmations one query asks for

READ_ONLY_MOUNT = (
    "the camera is mounted read-only: nothing can be wiped while it stays docked (a site that "
    "wipes sets DOCKAGENT_MOUNT_ACCESS=rw for dockagent-mount@.service)"
)


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
        self.copier = Copier(
            config.staging_path, config.storage.copy_chunk_bytes, config.custody.encrypt_to
        )
        # Bytes copied of the bytes to copy, for `devices` and a progress bar (a few store
        # writes a second at most: agent.ingest.progress).
        self.progress = Progress(store, now)
        self.copier.progress = self.progress
        self.batch_copier = BatchCopier(config, store, sealer, self.copier, now)
        self.prover = Prover(config.storage.copy_chunk_bytes)
        self.should_stop: Callable[[], bool] = lambda: False
        # For a volume the agent mounted read-only itself: remount read-write (True) only to
        # wipe and to write TIME.TXT, and back (False) right after.
        self.make_writable: Callable[[bool], None] | None = None
        self.stays_docked = False
        # The session import_volume opened, also when it then raised: the daemon finds a dock's
        # sessions by id. `continued`: that session's row as it was, when it was taken up again.
        self.session_id: int | None = None
        self.continued: SessionRow | None = None
        # What the volume's binding showed (agent.ingest.binding), and what the session records
        # of the camera's identity (the caller's check of the hardware, then the binding's).
        self.binding = BindingCheck(BindingState.OFF, "")
        self.hardware_check = ""
        self.identity_check = ""
        # The physical USB port the camera is docked in (udev ID_PATH), for the session's row.
        self.port_path = ""
        # What this pass listed on the camera, and the row of each listed (path, size, mtime)
        # once its content is known: another row of the same identity (bytes the camera no
        # longer holds there) is not this pass's file, though a pass of this session may have
        # listed it.
        self.current = _Current(Listing())
        # The dock's health checks of this pass's first take-in (not of a continued session):
        # their readiness is judged again while the camera stays docked.
        self.dock_check: DockCheck | None = None

    def import_volume(
        self,
        path: str,
        *,
        check: Callable[[DeviceInfo], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        stays_docked: bool = False,
        usb_serial: str = "",
        identity_check: str = "",
        make_writable: Callable[[bool], None] | None = None,
        continues: int | None = None,
        device_record: DeviceInfo | None = None,
        known: DeviceInfo | None = None,
        unlock: str = "",
        readings: Readings | None = None,
    ) -> ImportSummary:
        """Take one mounted camera in. `check` may refuse it (raising CameraRefused) once its
        DEVICE.INF is read and before any evidence is; `should_stop` is asked between files
        (daemon shutdown); a camera that stays docked is marked undocked by its source later.

        `continues` is the id of the session of this same dock, taken up again (the daemon's
        pass once every file is confirmed): no second session is opened and the dock's health
        is not read again (its first pass did, and wrote TIME.TXT if that was due); what this
        pass copies and wipes is added to that session.

        `identity_check` is what the caller checked of the camera's hardware identity, for the
        session's record; the binding's check (agent.ingest.binding) follows `check`'s and may
        refuse the camera too. Who the camera is comes from its profile's identity sources
        (agent.camera.identity): `device_record` (or `known`, the record an unlock at dock read:
        agent.runtime.unlock) is what the SCSI transport read, if any. `unlock` is what that
        unlock found, as JSON, for the session's row.

        `readings` is what a vendor unlock read or did before the take-in (charge, clock set
        over SCSI): the dock's health checks judge the camera by them (agent.health.clock_dock)."""
        self.should_stop = should_stop
        self.make_writable = make_writable
        self.stays_docked = stays_docked
        with open_root(path) as root_fd:
            info = identity.read_identity(
                root_fd, self.profile, path, usb_serial, device_record or known
            )
            if check is not None:
                check(info)
            self.binding = binding.check(
                root_fd, info, self.config, self.profile, self.store, self.sealer.key, path
            )
            self.hardware_check = identity_check
            self.identity_check = self._identity(self.binding.detail)
            if continues is None:
                session_id = self._open_session(info, path, usb_serial, self.identity_check)
                if unlock:
                    self.store.update_session(session_id, {"unlock": unlock})
            else:
                session_id = self._continue_session(continues, info, path)
            log_ = _log.bind(device_serial=info.serial, session_id=session_id)
            # Health: drift needs the station time of dock detection (the session's docked_at).
            check_ = DockCheck(
                self.config,
                self.store,
                self.profile,
                info,
                session_id,
                self.now,
                readings=readings,
            )
            dock: DockHealth = check_ if continues is None else ContinuedDock(check_, self.store)
            self.dock_check = check_ if continues is None else None
            dock.docked(root_fd)
            summary = ImportSummary(session_id, info.serial, info.officer_id, path)
            try:
                self._run(root_fd, path, summary, log_, dock)
            except BaseException as exc:
                dock.failed(exc)
                self.store.update_session(session_id, self._failed_fields(summary, exc))
                raise
            return summary

    def _open_session(
        self, info: DeviceInfo, path: str, usb_serial: str, identity_check: str
    ) -> int:
        session_id = self.store.open_session(
            {
                "device_serial": info.serial,
                "usb_serial": usb_serial,
                "identity_check": identity_check,
                "profile": self.profile.name,
                "officer_id": info.officer_id,
                "vendor": info.vendor,
                "model": info.model,
                "firmware": info.firmware,
                "unit": info.unit,
                "source": path,
                "docked_at": self.now(),
                "port_path": self.port_path,
            }
        )
        self.session_id = session_id
        crashpoints.hit("import.session_opened")
        _log.info(
            "session.opened",
            device_serial=info.serial,
            session_id=session_id,
            officer_id=info.officer_id,
            source=path,
        )
        return session_id

    def _continue_session(self, session_id: int, info: DeviceInfo, path: str) -> int:
        """Take the dock's session up again; the camera must still be the one it took in."""
        session = self.store.session(session_id)
        if session.device_serial != info.serial:
            raise CameraRefused(
                path=path,
                problem=f"its DEVICE.INF now names {info.serial}, not {session.device_serial} "
                f"of this dock's session {session_id}",
            )
        self.session_id = session_id
        self.continued = session
        _log.info("session.continued", device_serial=info.serial, session_id=session_id)
        return session_id

    def _failed_fields(self, summary: ImportSummary, exc: BaseException) -> dict[str, Any]:
        """The session's record of a pass that raised. A continued session keeps what its first
        pass did (its copy was complete): only why nothing was wiped is new."""
        if self.continued is not None:
            return {"ended_at": self.now(), "wipe_state": "not wiped", "wipe_detail": describe(exc)}
        return {
            "ended_at": self.now(),
            "undocked_at": None if self.stays_docked else self.now(),
            "outcome": SessionOutcome.FAILED,
            "problems": len(summary.problems) + 1,
            "wipe_state": "not wiped",
            "wipe_detail": describe(exc),
        }

    def _run(
        self, root_fd: int, path: str, summary: ImportSummary, log_: Any, dock: DockHealth
    ) -> None:
        vfs = os.fstatvfs(root_fd)
        capacity = vfs.f_blocks * vfs.f_frsize
        used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
        result = scan.scan_volume(root_fd, self.profile, capacity, self.binding.reserved())
        summary.files_found = len(result.candidates)
        if not isinstance(result.candidates, Listing):  # scan_volume's always is
            raise TypeError("a scan's candidates come as an agent.camera.listing.Listing")
        self.current = _Current(result.candidates)
        for problem in result.problems:
            summary.add_problem(
                display_name(problem.rel_path), problem.reason, ProblemKind.NOT_TAKEN
            )
            log_.warning(
                "file.unreadable", file=display_name(problem.rel_path), reason=problem.reason
            )
        for entry in result.ignored:
            summary.ignored.append({"file": display_name(entry.rel_path), "reason": entry.reason})
            log_.info("file.ignored", file=display_name(entry.rel_path), reason=entry.reason)

        pending, claimed = self._register(result.candidates, summary)
        dock.scanned(pending.ids)  # corrected times before sealing
        crashpoints.hit("import.registered")
        if not pending:
            log_.info("session.nothing_new", files=summary.files_found)

        fits = self._fit(pending, result.candidates, summary, log_)
        stopped = self._copy(root_fd, fits, result.candidates, summary, log_)
        # New evidence first (a camera may be pulled out early), then the proof that what the
        # listing matched with held rows is still those bytes (not once the session stopped:
        # the camera gone, or the station shutting down; the wipe proves each file anyway).
        changed = [] if stopped else self._prove(root_fd, claimed, summary, log_)
        if changed:
            summary.files_already_held -= len(changed)
            self._take_in(root_fd, changed, summary, log_)
        self._finish(root_fd, summary, result.problems, used, capacity, log_, dock)

    def _register(
        self, candidates: Sequence[Candidate], summary: ImportSummary
    ) -> tuple[Pairs, Pairs]:
        """Record every listed file in one commit; returns the (file id, candidate index) pairs
        still to be copied, and those whose path, size and mtime match a row in custody (held
        once _prove has hashed them). Wipes a crash interrupted are settled against the same
        listing."""
        now = self.now()
        pending, claimed = Pairs(), Pairs()
        with self.store.transaction():
            for index, cand in enumerate(candidates):
                file_id, state, is_new = self.store.register(
                    summary.session_id,
                    summary.device_serial,
                    cand,
                    display_name(cand.rel_path),
                    now,
                )
                self.current.set(index, file_id)
                if is_new:
                    summary.files_new += 1
                if state in CUSTODY_STATES:
                    summary.files_already_held += 1
                    claimed.append(file_id, index)
                elif state in AWAITING_COPY:
                    pending.append(file_id, index)
            settle_interrupted_wipes(self.store, summary.device_serial, self.current, now)
        return pending, claimed

    def _prove(
        self, root_fd: int, claimed: Pairs, summary: ImportSummary, log_: Any
    ) -> list[Changed]:
        """Hash again the camera files the listing matched with rows in custody; returns those
        whose bytes are not the row's (new evidence). One that cannot be read is a problem of
        this dock (not proven held; the wipe, which proves again, leaves it)."""
        changed: list[Changed] = []
        for file_id, index in claimed:
            if self.should_stop():
                break  # the wipe proves each file again before removing it
            row = self.store.file(file_id)
            cand = self.listing[index]
            name = display_name(cand.rel_path)
            try:
                sha256 = self.prover.hash_file(root_fd, cand.rel_path, cand.size, cand.mtime_ns)
            except (OSError, SourceChanged) as exc:
                reason = f"could not be read again to prove it held: {describe(exc)}"
                summary.add_problem(name, reason, ProblemKind.READ_FAILED)
                log_.warning("file.unproven", file_id=file_id, file=name, reason=describe(exc))
                continue
            if sha256 != row.sha256:
                log_.warning("file.changed_on_camera", file_id=file_id, file=name)
                changed.append(Changed(row, sha256))
        return changed

    def _copy(
        self,
        root_fd: int,
        pending: Sequence[tuple[int, int]],
        candidates: Sequence[Candidate],
        summary: ImportSummary,
        log_: Any,
    ) -> Stop | None:
        """Copy the pending files batch by batch; once the session has to stop (shutdown, the
        camera gone), every file not yet copied is listed in the summary with the reason, which
        is returned."""
        stopped: Stop | None = None
        self.progress.begin(summary.session_id, sum(size_at(candidates, i) for _, i in pending))
        for batch in batches(pending, candidates):
            if stopped is None and self.should_stop():
                stopped = (
                    "the station is shutting down; copied at the next start",
                    ProblemKind.SHUTTING_DOWN,
                )
            if stopped is not None:
                for _, index in batch:
                    summary.add_problem(display_name(candidates[index].rel_path), *stopped)
                continue
            stopped = self.batch_copier.copy_batch(root_fd, batch, candidates, summary, log_)
        self.progress.finish()
        return stopped

    def _finish(
        self,
        root_fd: int,
        summary: ImportSummary,
        scan_problems: tuple[object, ...],
        used: int,
        capacity: int,
        log_: Any,
        dock: DockHealth,
    ) -> None:
        states, listed = States(), 0
        for _, state, size in self._session_files(summary.session_id):
            states.append(state)
            listed += size
        policy = self.config.ingest.wipe_policy
        if not os.path.ismount(summary.source):
            # A directory laid out like a camera shares its file system with other data, so
            # the used-space accounting of a real volume does not apply to it.
            used, capacity = listed, max(capacity, listed)
        decision = camera_may_be_wiped(policy, states, len(scan_problems), used, listed, capacity)
        if decision.allowed and self.make_writable is None and _read_only(root_fd):
            # Trying anyway would refuse every file with EROFS: one reason for the session.
            decision = WipeDecision(False, READ_ONLY_MOUNT)
        due = self.binding.state is BindingState.DUE
        writable = self.make_writable is not None and (
            decision.allowed or dock.wants_clock_write() or due
        )
        if writable and self.make_writable is not None:
            self.make_writable(True)
        # Whole rows only for a wipe (it records each file's unlink on its row).
        # The same rows read again: a dock that wipes nothing keeps no id of each file.
        held = (
            {file_id: state for file_id, state, _ in self._session_files(summary.session_id)}
            if decision.allowed
            else {}
        )
        rows = self._session_rows(summary.session_id, held) if decision.allowed else []
        try:
            self._wipe_and_close(root_fd, summary, rows, states, decision, log_, dock)
            if due:
                self._bind(root_fd, summary)
        finally:
            if writable and self.make_writable is not None:
                self.make_writable(False)

    def _wipe_and_close(
        self,
        root_fd: int,
        summary: ImportSummary,
        rows: list[FileRow],
        states: Sequence[FileState],
        decision: WipeDecision,
        log_: Any,
        dock: DockHealth,
    ) -> None:
        policy = self.config.ingest.wipe_policy
        if decision.allowed:
            outcome = wipe_files(self.store, root_fd, rows, policy, self.now(), self.prover)
            summary.wipe = {
                "state": "wiped" if not outcome.refused else "partly wiped",
                "wiped": outcome.wiped,
                "refused": outcome.refused,
            }
            for refusal in outcome.refused:
                log_.warning("file.wipe_refused", **refusal)
            if outcome.changed:
                self._take_in(root_fd, outcome.changed, summary, log_)
                states = [r.state for r in self._session_rows(summary.session_id)]
        else:
            summary.wipe = {"state": "not wiped", "reason": decision.reason}
        complete = not summary.problems and all(s in CUSTODY_STATES for s in states)
        ended_as = SessionOutcome.COMPLETE if complete else SessionOutcome.INCOMPLETE
        self.store.update_session(summary.session_id, self._closing_fields(summary, ended_as))
        dock.finished(root_fd, summary)  # TIME.TXT, storage left, readiness: after the wipe
        log_.info(
            "session.closed",
            outcome=ended_as.value,
            files=summary.files_found,
            sealed=summary.files_sealed,
            already_held=summary.files_already_held,
            problems=len(summary.problems),
        )

    def _bind(self, root_fd: int, summary: ImportSummary) -> None:
        """Bind the camera now that its dock went through (agent.ingest.binding), and say so in
        the session's identity_check."""
        cfg, key = self.config, self.sealer.key
        done = binding.bind(root_fd, summary.device_serial, cfg, self.store, key, self.now())
        self.binding = BindingCheck(self.binding.state, done)
        self.identity_check = self._identity(done)
        self.store.update_session(summary.session_id, {"identity_check": self.identity_check})

    @property
    def listing(self) -> Listing:
        """What this pass listed on the camera."""
        return self.current.listing

    def _identity(self, binding_detail: str) -> str:
        return "; ".join(p for p in (self.hardware_check, binding_detail) if p)

    def _session_files(self, session_id: int) -> Iterator[tuple[int, FileState, int]]:
        """(id, state, size) of this session's files on the camera, the state held where the
        sinks held_when names signed its confirmation: for a listed identity, only the row
        whose content it holds. Read in runs of rows, none of them kept."""
        sinks = station_config.held_sinks(self.config)
        run: list[tuple[int, FileState, int]] = []
        for file_id, state, size, path, mtime_ns in self.store.states_of_session(session_id):
            if self.current.get((path, size, mtime_ns), file_id) == file_id:
                run.append((file_id, state, size))
                if len(run) >= _STATES_RUN:
                    yield from self._held_run(run, sinks)
        yield from self._held_run(run, sinks)

    def _held_run(
        self, run: list[tuple[int, FileState, int]], sinks: tuple[str, ...] | None
    ) -> Iterator[tuple[int, FileState, int]]:
        signed = self.store.signed_confirmations([i for i, _, _ in run], sinks)
        for file_id, state, size in run:
            yield file_id, held_state(state, file_id in signed), size
        run.clear()

    def _session_rows(
        self, session_id: int, held: dict[int, FileState] | None = None
    ) -> list[FileRow]:
        """The rows of this session's files on the camera: for a listed identity, only the row
        whose content it holds. With `held` (_session_states' state of each), in that state."""
        rows = self.store.files_of_session(session_id)
        rows = [r for r in rows if self.current.get(_row_identity(r), r.id) == r.id]
        if held is None:
            return rows
        return [replace(r, state=held.get(r.id, r.state)) for r in rows]

    def _take_in(
        self, root_fd: int, changed: list[Changed], summary: ImportSummary, log_: Any
    ) -> None:
        """Bytes found under a held file's identity (by _prove, or by the wipe just before an
        unlink) are new evidence: registered as a row of their own (or matched with another
        held content of that identity) and copied and sealed at this dock; not wiped in this
        pass. The row they were listed with is left out of this pass's wipe and accounting."""
        contents: dict[int, str] = {}
        for item in changed:
            index = self.current.index(item.row.camera_path)
            if index is not None:
                contents[index] = item.sha256
        chosen = sorted(contents)
        pending = Pairs()
        with self.store.transaction():
            for index in chosen:
                cand = self.listing[index]
                file_id, state, is_new = self.store.register(
                    summary.session_id,
                    summary.device_serial,
                    cand,
                    display_name(cand.rel_path),
                    self.now(),
                    contents[index],
                )
                self.current.set(index, file_id)
                summary.files_new += int(is_new)
                if state in AWAITING_COPY:
                    pending.append(file_id, index)
        fits = self._fit(pending, self.listing, summary, log_)
        self._copy(root_fd, fits, self.listing, summary, log_)

    def _fit(
        self,
        pending: Sequence[tuple[int, int]],
        candidates: Sequence[Candidate],
        summary: ImportSummary,
        log_: Any,
    ) -> Sequence[tuple[int, int]]:
        """The pending files staging can hold (agent.ingest.preflight); the others are left
        queued with their reason on the row."""
        fits = fit_space(self.config, pending, candidates)
        if len(fits) < len(pending):
            taken = {file_id for file_id, _ in fits}
            left = [item for item in pending if item[0] not in taken]
            record_left(self.store, left, candidates, summary, self.now)
            log_.warning("session.files_deferred", copied=len(fits), left=len(left))
        return fits

    def _closing_fields(self, summary: ImportSummary, ended_as: SessionOutcome) -> dict[str, Any]:
        """The session's record of this pass; a continued session adds this pass's copies to
        those of its first pass."""
        ended = self.now()
        earlier = self.continued
        return {
            "ended_at": ended,
            "undocked_at": None if self.stays_docked else ended,
            "outcome": ended_as,
            "files_found": summary.files_found,
            "files_new": summary.files_new + (earlier.files_new if earlier else 0),
            "files_sealed": summary.files_sealed + (earlier.files_sealed if earlier else 0),
            "bytes_copied": summary.bytes_copied + (earlier.bytes_copied if earlier else 0),
            "problems": len(summary.problems),
            "wipe_state": str(summary.wipe.get("state", "")),
            "wipe_detail": str(summary.wipe.get("reason", "")),
        }


class _Current:
    """The row each file of this pass's listing is, by its index (8 bytes a file: a dict by
    (path, size, mtime) took ~200, 20 MiB for a camera of 100,000 files), found by path
    through the listing's order (agent.camera.listing)."""

    def __init__(self, listing: Listing) -> None:
        self.listing = listing
        self.ids = array("q", bytes(8 * len(listing)))  # 0: no row yet
        self._next = 0

    def set(self, index: int, file_id: int) -> None:
        self.ids[index] = file_id

    def index(self, path: bytes) -> int | None:
        """The listing index of this path. Rows are mostly asked for in the order they were
        registered, the listing's: the file after the last one found is tried first."""
        hint = self._next
        if hint < len(self.listing) and self.listing.path(hint) == path:
            index: int | None = hint
        else:
            index = self.listing.find(path)
        if index is not None:
            self._next = index + 1
        return index

    def listed(self, identity: object) -> int | None:
        """The listing index of this (path, size, mtime), or None: not on the camera so."""
        if not (isinstance(identity, tuple) and identity and isinstance(identity[0], bytes)):
            return None
        index = self.index(identity[0])
        return index if index is not None and self.listing.identity(index) == identity else None

    def get(self, identity: tuple[bytes, int, int], default: int) -> int:
        """The row of this pass listed with this identity, else `default`."""
        index = self.listed(identity)
        return default if index is None else (self.ids[index] or default)

    def __contains__(self, identity: object) -> bool:
        """Is this (path, size, mtime) on the camera as listed?"""
        return self.listed(identity) is not None


def _row_identity(row: FileRow) -> tuple[bytes, int, int]:
    return row.camera_path, row.size, row.mtime_ns


def _read_only(root_fd: int) -> bool:
    return bool(os.fstatvfs(root_fd).f_flag & os.ST_RDONLY)


# utc_now is the station clock's (agent.core.wallclock); it stays importable from here.
__all__ = ["READ_ONLY_MOUNT", "Importer", "utc_now"]
