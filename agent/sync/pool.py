"""The upload pool: drain the queue of sealed files into the configured sink and confirm them.

The queue itself is the store's rows (claim_upload hands out the next sealed one: important
first, then the oldest), so this module is named for what it adds: the worker threads that
claim rows, hand each to a sink (agent.sync.tus_sink or agent.sync.directory) as a job
(agent.sync.jobs), record the upload URL and every acknowledged offset, and finish each row
with one transition: confirmed, back to sealed with a backoff (retryable), or held with the
reason (permanent); which of the two a failure is, agent.core.errors.classify decides. Also the
daemon's loop, within the upload windows (agent.sync.windows), and the purge of confirmed
copies (agent.sync.purge). Waits are measured on the monotonic clock (agent.sync.schedule),
never on the wall clock, which may be stepped. It never confirms what the sink did not prove,
never purges an unconfirmed copy and never wipes a camera.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.core import log, testhooks, wallclock
from agent.core.config import Config
from agent.core.config.station import (
    Destination,
    SinkIdentity,
    destinations,
    held_sinks,
    required_names,
    sink_of,
    source_of,
    station_destination,
)
from agent.core.config.station import station_sink as configured_sink
from agent.core.errors import (
    AgentError,
    ErrorKind,
    UploadMismatch,
    UploadUnconfirmable,
    UploadUnprovable,
    classify,
    describe,
)
from agent.core.model import ProblemKind
from agent.core.wallclock import utc_now
from agent.custody import keys
from agent.custody.keys import StationKey
from agent.custody.seal import Sealer
from agent.store import FileRow, Store
from agent.sync import token_delivery
from agent.sync.directory import DirectorySink
from agent.sync.jobs import build_job
from agent.sync.purge import WallTrust, purge_confirmed
from agent.sync.receipts import ReceiptWriter
from agent.sync.schedule import RetrySchedule, backoff_s
from agent.sync.sink import Confirmation, Progress, Sink, level_rank
from agent.sync.throttle import RateLimit, Throttle
from agent.sync.tus_sink import TusSink
from agent.sync.windows import in_window

_log = log.get(__name__)


@dataclass
class SyncReport:
    confirmed: list[dict[str, Any]] = field(default_factory=list)
    deferred: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    purged: int = 0
    purged_bytes: int = 0
    released_stale: int = 0
    outside_window: bool = False
    crashed: list[str] = field(default_factory=list)
    # Time-stamp tokens this pass delivered, per sink name, and why a sink took none.
    tokens_delivered: dict[str, int] = field(default_factory=dict)
    tokens_failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "confirmed": self.confirmed,
            "deferred": self.deferred,
            "held": self.held,
            "purged": self.purged,
            "purged_bytes": self.purged_bytes,
            "released_stale": self.released_stale,
            "outside_window": self.outside_window,
            "crashed": self.crashed,
            "tokens_delivered": self.tokens_delivered,
            "tokens_failed": self.tokens_failed,
        }


@dataclass
class _Claims:
    """Where one pass has got to in the queue: the rows it tried (and those not due), and the
    row it claimed last, from which the next claim reads on (UploadQueries.claim_upload)."""

    tried: set[int] = field(default_factory=set)
    last: dict[bool, FileRow] = field(default_factory=dict)  # by importance

    def next(self, store: Store, worker: str) -> FileRow | None:
        row = store.claim_upload(worker, utc_now(), exclude=self.tried, after=self.last.values())
        if row is not None:
            self.tried.add(row.id)
            self.last[row.important] = row
        return row


class _Stopped(Exception):
    """The daemon is stopping: the file goes back to the queue with its progress kept."""


class _RowProgress:
    def __init__(
        self,
        store: Store,
        file_id: int,
        sink: str,
        stop: threading.Event | None = None,
        receipt: ReceiptWriter | None = None,
    ) -> None:
        self.store, self.file_id, self.sink, self.stop = store, file_id, sink, stop
        self.receipt = receipt

    def url(self, url: str, expires_at: str | None) -> None:
        self.store.record_upload_url(self.file_id, self.sink, url, expires_at, utc_now())
        if self.receipt is not None:  # before the first byte: a rebuild resumes, not re-POSTs
            self.receipt.url(self.sink, url, expires_at)

    def offset(self, offset: int, checksummed: bool) -> None:
        self.store.record_upload_offset(self.file_id, offset, checksummed, utc_now())
        if self.stop is not None and self.stop.is_set():
            raise _Stopped

    def forget(self) -> None:
        self.store.forget_upload_url(self.file_id, utc_now())


class _SinkProgress:
    """Progress of one of several sinks' upload of a file: its own URL and offset (migration
    0020), so each sink resumes its own upload after a restart. `on_row`: also the file row's
    columns, which `queue` shows (the row is claimed; a tus sink's only: a directory sink's
    offset would overwrite them with a whole file); a confirmed file sent to a sink outside
    held_when (the backfill) has only the sink's."""

    def __init__(
        self,
        store: Store,
        file_id: int,
        dest: str,
        sink: str,
        stop: threading.Event | None,
        receipt: ReceiptWriter | None,
        on_row: bool,
    ) -> None:
        self.store, self.file_id, self.dest, self.stop = store, file_id, dest, stop
        self.row = _RowProgress(store, file_id, sink, stop, receipt) if on_row else None

    def url(self, url: str, expires_at: str | None) -> None:
        self.store.record_sink_upload(
            self.file_id, self.dest, utc_now(), url=url, expires_at=expires_at
        )
        if self.row is not None:
            self.row.url(url, expires_at)

    def offset(self, offset: int, checksummed: bool) -> None:
        self.store.record_sink_offset(self.file_id, self.dest, offset, checksummed, utc_now())
        if self.row is not None:
            self.row.offset(offset, checksummed)
        elif self.stop is not None and self.stop.is_set():
            raise _Stopped

    def forget(self) -> None:
        self.store.record_sink_upload(self.file_id, self.dest, utc_now(), url=None)
        if self.row is not None:
            self.row.forget()


_BACKFILL_PER_PASS = 256  # files per pass sent to sinks outside held_when

# Liveness.working: the calling thread works on something until the block ends, and must beat
# at least every given number of seconds.
Working = Callable[[str, float], AbstractContextManager[None]]


@contextmanager
def _unwatched(_name: str, _longest_step_s: float) -> Iterator[None]:
    yield


def _beating(throttle: Throttle | None, beat: Callable[[], None] | None) -> Throttle | None:
    """The throttle a worker's sink draws on, beating for the worker first (a sign of life
    on the worker's own thread: Liveness.beat is per thread)."""
    if beat is None:
        return throttle

    def draw(nbytes: int) -> None:
        beat()
        if throttle is not None:
            throttle(nbytes)

    return draw


def make_sink(config: Config, throttle: Throttle | None) -> Sink:
    if config.sync.kind == "tus":
        return TusSink(config.sync, throttle=throttle)
    return DirectorySink(config.archive_path, config.station_id, throttle)


def make_destination_sink(config: Config, dest: Destination, throttle: Throttle | None) -> Sink:
    """The sink of one of several destinations ([[sync.sinks]])."""
    if dest.sync.kind == "tus":
        return TusSink(dest.sync, throttle=throttle)
    return DirectorySink(Path(dest.identity.endpoint), config.station_id, throttle)


class Uploader:
    """The upload pool: max_parallel_uploads threads, each with its own store and sink."""

    def __init__(
        self,
        config: Config,
        *,
        open_store: Callable[[], Store] | None = None,
        sink_factory: Callable[[Throttle | None], Sink] | None = None,
        local_now: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = wallclock.monotonic,
        working: Working | None = None,
        beat: Callable[[], None] | None = None,
        station_sink: SinkIdentity | None = None,
        key: StationKey | None = None,
    ) -> None:
        self.config = config
        # The sink the station's own configuration names (agent.core.config.station): each
        # confirmation record names it beside the sink that confirmed, so one confirmed under
        # another configuration is told apart by `dockagent verify`.
        self.station_sink = station_sink or configured_sink(config)
        self.sink_identity = sink_of(config)
        # [[sync.sinks]]: each file goes to every one (_fan_out); empty: the one sink.
        self.destinations = destinations(config) if config.sync.sinks else ()
        self.required = required_names(config)
        self._key = key
        self.open_store = open_store or (lambda: Store.open(config.data_path, create=False))
        rate = config.sync.bandwidth_bytes_per_s
        self.throttle: Throttle | None = RateLimit(rate) if rate else None
        self.sink_factory = sink_factory or (lambda t: make_sink(config, t))
        # Windows are station-local times of day: the wall clock is their only measure.
        self.local_now = local_now or (lambda: wallclock.now().astimezone())
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self.lock = threading.Lock()
        self.schedule = RetrySchedule(float(config.sync.retry_max_delay_s), monotonic)
        self.wall_trust = WallTrust()
        # The daemon's watchdog liveness (agent.runtime.liveness), handed in: each worker with
        # a file is watched, and beats whenever it starts a request or sends a piece.
        self.working: Working = working or _unwatched
        self.beat = beat
        # Sinks outside held_when that failed a file: when (monotonic) to try them again, and
        # how many times in a row they failed.
        self._sink_backoff: dict[str, tuple[float, int]] = {}
        # Tokens kept before this process noted for delivery, adopted at its first pass.
        self._tokens_adopted = False
        # Whether each sink (by upload sink name, or by configured name with several sinks)
        # has proven a Repr-Digest to this station: asked of the store once per process, set
        # by each `verified` confirmation (tus_sink.reupload_unprovable decides by it).
        self._proven: dict[tuple[str, bool], bool] = {}

    @property
    def key(self) -> StationKey:
        """The station key, which signs each confirmation (loaded at the first one)."""
        with self.lock:
            if self._key is None:
                self._key = keys.load_or_create(self.config.key_path)
            return self._key

    # ---- one pass ----------------------------------------------------------------------------

    def run_once(self, store: Store, *, honour_backoff: bool = False) -> SyncReport:
        """Drain: every sealed file is tried at most once in this pass; then purge."""
        report = SyncReport()
        report.released_stale = store.release_stale_uploads(utc_now())
        if in_window(self.config.sync.windows, self.local_now()):
            self._drain(store, report, honour_backoff=honour_backoff)
            self._backfill(store, report)
            self._deliver_tokens(store, report)
        else:
            report.outside_window = True
            _log.info("upload.window_closed", windows=",".join(self.config.sync.windows))
        report.purged, report.purged_bytes = self._purge(store)
        return report

    def _purge(self, store: Store) -> tuple[int, int]:
        return purge_confirmed(
            store,
            self.config.staging_path,
            self.config.sync.purge_grace_s,
            self.wall_trust,
            held_sinks(self.config),
        )

    def serve(self, stop: threading.Event, max_wait_s: float = 60.0) -> None:
        """The daemon's loop, on a thread of its own (the caller holds the writer lock): drain
        what is due, purge, sleep until the next due time or until stop is set."""
        store = self.open_store()
        try:
            self._serve(store, stop, max_wait_s)
        finally:
            store.close()

    def _serve(self, store: Store, stop: threading.Event, max_wait_s: float) -> None:
        if wallclock.injected_offset_file():
            _log.warning(
                "clock.offset_injected",
                path=wallclock.injected_offset_file(),
                reason=f"test hook ${testhooks.WALL_OFFSET_FILE} shifts the wall clock; "
                "it must never be set in production",
            )
        store.release_stale_uploads(utc_now())
        jumps = wallclock.JumpWatch()
        while not stop.is_set():
            unscheduled = False
            try:
                if in_window(self.config.sync.windows, self.local_now()):
                    self._drain(store, SyncReport(), honour_backoff=True, stop=stop)
                    self._backfill(store, SyncReport(), stop)
                    self._deliver_tokens(store, SyncReport(), stop)
                _note_jump(jumps)  # before the purge: it trusts the wall clock less after one
                self._purge(store)
                unscheduled = store.uploads_unscheduled()
            except Exception as exc:  # the loop outlives one bad pass (e.g. a busy database)
                _log.exception("upload.loop_failed", reason=describe(exc))
            wait = max_wait_s
            if unscheduled:
                wait = 1.0  # files queued without a backoff (sealed meanwhile)
            else:
                seconds = self.schedule.seconds_to_next()
                if seconds is not None:
                    wait = min(max_wait_s, max(1.0, seconds))
            stop.wait(wait)  # Event.wait measures on the monotonic clock

    def _drain(
        self,
        store: Store,
        report: SyncReport,
        *,
        honour_backoff: bool,
        stop: threading.Event | None = None,
    ) -> None:
        """One pass: every sealed file tried at most once; with honour_backoff, files whose
        backoff has not run out on the monotonic clock are left for a later pass."""
        claims = _Claims()
        if honour_backoff:
            self.schedule.adopt(store.waiting_uploads(), wallclock.now())
            claims.tried |= self.schedule.not_due()
        if not store.next_sealed(claims.tried):
            return  # idle: no worker started, no store opened
        threads = [
            threading.Thread(
                target=self._work,
                args=(report, claims, stop, f"{os.getpid()}-{n}"),
                name=f"upload-{n}",
            )
            for n in range(self.config.sync.max_parallel_uploads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _work(
        self,
        report: SyncReport,
        claims: _Claims,
        stop: threading.Event | None,
        worker: str,
    ) -> None:
        try:
            store = self.open_store()
        except Exception as exc:  # reported; the other workers go on
            with self.lock:
                report.crashed.append(describe(exc))
            return
        sinks: list[tuple[Destination | None, Sink]] = []
        try:
            throttle = _beating(self.throttle, self.beat)
            if self.destinations:
                for dest in self.destinations:
                    sinks.append((dest, make_destination_sink(self.config, dest, throttle)))
            else:
                sinks.append((None, self.sink_factory(throttle)))
            # Several sinks are sent one after the other: the longest step is each one's.
            longest = max(sink.longest_step_s for _dest, sink in sinks)
            while stop is None or not stop.is_set():
                with self.lock:
                    row = claims.next(store, worker)
                    if row is None:
                        return
                with self.working(f"upload worker {worker}", longest):
                    if self.destinations:
                        self._fan_out(store, sinks, row, report, stop)
                    else:
                        self._process(store, sinks[0][1], row, report, stop)
        except Exception as exc:  # a worker must not die silently
            _log.exception("upload.worker_failed", worker=worker, reason=describe(exc))
            with self.lock:
                report.crashed.append(describe(exc))
        finally:
            for _dest, sink in sinks:
                sink.close()
            store.close()

    def _process(
        self,
        store: Store,
        sink: Sink,
        row: FileRow,
        report: SyncReport,
        stop: threading.Event | None = None,
    ) -> None:
        file_id = row.id
        attempt = row.upload_attempts
        log_ = _log.bind(file_id=file_id, sha256=row.sha256, attempt=attempt)
        item = {"file_id": file_id, "sha256": row.sha256, "name": row.camera_name}
        try:
            proven = self._digest_proven(store, sink.name, named=False)
            job = build_job(store, row, self.config, sink.name, digest_proven=proven)
            log_.info("upload.started", size=job.size, offset=job.resume_offset, sink=sink.name)
            receipt = ReceiptWriter(self.config.staging_path, row)
            confirmation = sink.send(job, _RowProgress(store, file_id, sink.name, stop, receipt))
        except _Stopped:
            now = utc_now()
            store.defer_upload(file_id, "interrupted by shutdown", now, now)
            self.schedule.defer(file_id, 0.0, now)
            log_.info("upload.interrupted")
            return
        except Exception as exc:  # every per-file failure becomes row data
            self._count_unprovable(store, file_id, exc)
            self._failed(store, row, exc, report, item, log_)
            return
        self._confirm(store, row, confirmation)
        self._note_proof(sink.name, False, confirmation)
        self.schedule.forget(file_id)
        receipt.confirmed(sink.name, confirmation.level, confirmation.ref, utc_now())
        log_.info("upload.confirmed", level=confirmation.level, ref=confirmation.ref)
        with self.lock:
            report.confirmed.append({**item, "level": confirmation.level, "ref": confirmation.ref})

    def _confirm(self, store: Store, row: FileRow, confirmation: Confirmation) -> None:
        """The row confirmed and the sink's signed confirmation appended in one transaction:
        purge and wipe follow only from such a record (agent.store.uploads.purge_candidates)."""
        at = wallclock.stamp()
        sealer = Sealer(store, self.key, self.config.station_id, self.config.staging_path)
        sink, station = self.sink_identity, self.station_sink
        with store.transaction():
            store.confirm_upload(
                row.id, confirmation.level, confirmation.ref, at.wall, at.epoch, at.boottime_s
            )
            sealer.confirm(row, self._confirmed_by(sink, station, confirmation), at.wall)

    def _confirmed_by(
        self, sink: SinkIdentity, station: SinkIdentity, confirmation: Confirmation
    ) -> dict[str, Any]:
        """What a signed confirmation record says of the sink that confirmed a file and of the
        sink the station's own configuration names (so a foreign one shows)."""
        return {
            "sink_kind": sink.kind,
            "sink_endpoint": sink.endpoint,
            "sink_id": sink.fingerprint,
            "station_sink_id": station.fingerprint,
            "station_sink_endpoint": station.endpoint,
            "level": confirmation.level,
            "sink_ref": confirmation.ref,
            "digest": confirmation.digest,
            "config": source_of(self.config),
        }

    # ---- several sinks ([[sync.sinks]]) -------------------------------------------------------

    def _fan_out(
        self,
        store: Store,
        sinks: list[tuple[Destination | None, Sink]],
        row: FileRow,
        report: SyncReport,
        stop: threading.Event | None,
    ) -> None:
        """Send the claimed row to every sink that has not confirmed it, each on its own (one
        failing never keeps the file from the others), then finish the row once: confirmed
        where held_when is met, else back to the queue or held for the sinks it waits for."""
        item = {"file_id": row.id, "sha256": row.sha256, "name": row.camera_name}
        log_ = _log.bind(file_id=row.id, sha256=row.sha256, attempt=row.upload_attempts)
        done = {
            name: Confirmation(st.level, st.ref)
            for name, st in store.sink_states(row.id).items()
            if st.state == "confirmed"
        }
        failures: dict[str, BaseException] = {}
        for dest, sink in sinks:
            if dest is None or dest.name in done:
                continue
            try:
                done[dest.name] = self._send_one(store, dest, sink, row, stop, log_)
            except _Stopped:
                now = utc_now()
                store.defer_upload(row.id, "interrupted by shutdown", now, now)
                self.schedule.defer(row.id, 0.0, now)
                log_.info("upload.interrupted", sink=dest.name)
                return
            except Exception as exc:  # per sink: recorded, the next sink still gets the file
                failures[dest.name] = exc
                self._sink_failed(store, row.id, dest.name, exc, log_)
        self._finish_fan_out(store, row, done, failures, report, item, log_)

    def _backfill(
        self, store: Store, report: SyncReport, stop: threading.Event | None = None
    ) -> None:
        """Confirmed files (held_when met) that a sink outside the rule still waits for, while
        their staged copy is kept: sent to it here, one at a time. A sink that fails waits for
        a later pass: the next one for `sync --once` (stop None), else its backoff on the
        monotonic clock (the daemon passes every few seconds while files arrive)."""
        if not self.destinations:
            return
        by_name = {d.name: d for d in self.destinations}
        now = self.schedule.monotonic()
        failed = {n for n, (due, _) in self._sink_backoff.items() if stop is not None and due > now}
        sinks: dict[str, Sink] = {}
        try:
            for file_id, name in store.sinks_to_backfill(_BACKFILL_PER_PASS):
                dest = by_name.get(name)
                if dest is None or name in failed or (stop is not None and stop.is_set()):
                    continue
                if name not in sinks:
                    throttle = _beating(self.throttle, self.beat)
                    sinks[name] = make_destination_sink(self.config, dest, throttle)
                if self._backfill_one(store, dest, sinks[name], file_id, report, stop):
                    self._sink_backoff.pop(name, None)
                else:
                    failed.add(name)
                    self._back_off_sink(name)
        finally:
            for sink in sinks.values():
                sink.close()

    def _deliver_tokens(
        self, store: Store, report: SyncReport, stop: threading.Event | None = None
    ) -> None:
        """The time-stamp tokens each sink waits for (agent.sync.token_delivery), after the
        files: one sink that fails waits for its backoff (the daemon), or the next pass
        (`sync --once`); the others are still sent theirs."""
        names = token_delivery.sink_names(self.config)
        if not self._tokens_adopted:
            token_delivery.adopt_kept(store, self.config.staging_path, names)
            self._tokens_adopted = True
        now = self.schedule.monotonic()
        due = [
            n
            for n in names
            if (stop is None or self._sink_backoff.get(f"token:{n}", (0.0, 0))[0] <= now)
            and store.tokens_waiting(n, 1)
        ]
        if not due:
            return
        by_name = {d.name: d for d in self.destinations}
        throttle = _beating(self.throttle, self.beat)
        sinks: list[tuple[str, Sink]] = []
        try:
            for name in due:
                dest = by_name.get(name)
                sink = (
                    make_destination_sink(self.config, dest, throttle)
                    if dest is not None
                    else self.sink_factory(throttle)
                )
                sinks.append((name, sink))
            longest = max(sink.longest_step_s for _name, sink in sinks)
            with self.working("time-stamp tokens to the sinks", longest):
                result = token_delivery.deliver(store, self.config, sinks, stop)
        finally:
            for _name, sink in sinks:
                sink.close()
        for name in due:
            if name in result.failed:
                self._back_off_sink(f"token:{name}")
            else:
                self._sink_backoff.pop(f"token:{name}", None)
        report.tokens_delivered.update(result.delivered)
        report.tokens_failed.update(result.failed)

    def _back_off_sink(self, name: str) -> None:
        _due, attempts = self._sink_backoff.get(name, (0.0, 0))
        delay = self._backoff(attempts, None)
        self._sink_backoff[name] = (self.schedule.monotonic() + delay, attempts + 1)

    def _backfill_one(
        self,
        store: Store,
        dest: Destination,
        sink: Sink,
        file_id: int,
        report: SyncReport,
        stop: threading.Event | None,
    ) -> bool:
        row = store.file(file_id)
        log_ = _log.bind(file_id=row.id, sha256=row.sha256)
        try:
            with self.working(f"upload to {dest.name}", sink.longest_step_s):
                confirmation = self._send_one(store, dest, sink, row, stop, log_, rowless=True)
        except _Stopped:
            return True
        except Exception as exc:  # recorded for this sink; the file stays confirmed
            self._sink_failed(store, row.id, dest.name, exc, log_)
            return False
        with self.lock:
            report.confirmed.append(
                {
                    "file_id": row.id,
                    "sha256": row.sha256,
                    "name": row.camera_name,
                    "level": confirmation.level,
                    "ref": confirmation.ref,
                    "sinks": [dest.name],
                }
            )
        return True

    def _send_one(
        self,
        store: Store,
        dest: Destination,
        sink: Sink,
        row: FileRow,
        stop: threading.Event | None,
        log_: Any,
        *,
        rowless: bool = False,
    ) -> Confirmation:
        """Send to one sink and sign its confirmation. `rowless`: the row is confirmed already
        (a sink outside held_when): its resume columns are not this upload's to write."""
        # Each sink resumes its own upload (migration 0020); one stored on the file row before
        # it by this sink is resumed too.
        resume = store.sink_upload(row.id, dest.name)
        proven = self._digest_proven(store, dest.name, named=True)
        job = build_job(store, row, self.config, sink.name, resume=resume, digest_proven=proven)
        log_.info("upload.started", size=job.size, offset=job.resume_offset, sink=dest.name)
        receipt = ReceiptWriter(self.config.staging_path, row)
        progress: Progress = _SinkProgress(
            store,
            row.id,
            dest.name,
            sink.name,
            stop,
            None if rowless else receipt,
            not rowless and dest.sync.kind == "tus",
        )
        confirmation = sink.send(job, progress)
        self._confirm_sink(store, row, dest, confirmation)
        self._note_proof(dest.name, True, confirmation)
        receipt.confirmed(sink.name, confirmation.level, confirmation.ref, utc_now())
        log_.info(
            "upload.sink_confirmed", sink=dest.name, level=confirmation.level, ref=confirmation.ref
        )
        return confirmation

    def _confirm_sink(
        self, store: Store, row: FileRow, dest: Destination, confirmation: Confirmation
    ) -> None:
        """This sink's state and its signed confirmation, in one transaction."""
        at = wallclock.stamp()
        sealer = Sealer(store, self.key, self.config.station_id, self.config.staging_path)
        station = station_destination(self.config, dest)
        with store.transaction():
            store.record_sink(
                row.id,
                dest.name,
                "confirmed",
                at.wall,
                level=confirmation.level,
                ref=confirmation.ref,
            )
            details = self._confirmed_by(dest.identity, station, confirmation)
            sealer.confirm(row, {**details, "sink_name": dest.name}, at.wall)

    def _sink_failed(
        self, store: Store, file_id: int, name: str, exc: BaseException, log_: Any
    ) -> None:
        self._count_unprovable(store, file_id, exc)
        retryable = classify(exc) is ErrorKind.RETRYABLE
        reason = describe(exc)
        store.record_sink(
            file_id, name, "waiting" if retryable else "held", utc_now(), reason=reason
        )
        log_.warning(
            "upload.sink_failed",
            sink=name,
            error_kind="retryable" if retryable else "permanent",
            reason=reason,
        )

    def _finish_fan_out(
        self,
        store: Store,
        row: FileRow,
        done: dict[str, Confirmation],
        failures: dict[str, BaseException],
        report: SyncReport,
        item: dict[str, Any],
        log_: Any,
    ) -> None:
        wanted = self.required if self.required is not None else tuple(done)
        if done and all(name in done for name in wanted):
            held = [done[name] for name in wanted]
            weakest = min(held, key=lambda c: level_rank(c.level))
            at = wallclock.stamp()
            store.confirm_upload(
                row.id, weakest.level, weakest.ref, at.wall, at.epoch, at.boottime_s
            )
            self.schedule.forget(row.id)
            log_.info("upload.confirmed", level=weakest.level, sinks=",".join(sorted(done)))
            with self.lock:
                report.confirmed.append(
                    {**item, "level": weakest.level, "ref": weakest.ref, "sinks": sorted(done)}
                )
            return
        # Waiting for sinks held_when needs: retried while any of them may still succeed.
        waiting = {n: e for n, e in failures.items() if n in wanted or self.required is None}
        retryable = {n: e for n, e in waiting.items() if classify(e) is ErrorKind.RETRYABLE}
        name, exc = next(iter(retryable.items() or waiting.items()))
        self._failed(store, row, exc, report, item, log_, prefix=f"sink {name}: ")

    def _failed(
        self,
        store: Store,
        row: FileRow,
        exc: BaseException,
        report: SyncReport,
        item: dict[str, Any],
        log_: Any,
        prefix: str = "",
    ) -> None:
        file_id = row.id
        reason = prefix + describe(exc)
        kind = classify(exc)
        now = utc_now()
        if isinstance(exc, UploadMismatch):
            # The alarm: the destination holds something else than the sealed evidence.
            log_.error("upload.digest_mismatched", error_kind="permanent", reason=reason)
        if kind is ErrorKind.RETRYABLE:
            delay = self._backoff(row.upload_attempts, getattr(exc, "retry_after", None))
            when = wallclock.iso(wallclock.now() + timedelta(seconds=delay))
            store.defer_upload(file_id, reason, when, now)
            self.schedule.defer(file_id, delay, when)
            log_.warning(
                "upload.deferred",
                error_kind="retryable",
                reason=reason,
                next_attempt_at=when,
                retry_in_s=round(delay, 3),
            )
            with self.lock:
                report.deferred.append({**item, "reason": reason, "next_attempt_at": when})
            return
        if not isinstance(exc, AgentError):
            log_.error("upload.failed", error_kind="permanent", reason=reason, exc_info=exc)
        problem = (
            ProblemKind.UPLOAD_UNCONFIRMABLE
            if isinstance(exc, UploadUnconfirmable)
            else ProblemKind.UPLOAD_HELD
        )
        store.hold_upload(file_id, reason, now, problem)
        self.schedule.forget(file_id)
        log_.error("upload.held", error_kind="permanent", reason=reason)
        with self.lock:
            report.held.append({**item, "reason": reason})

    def _digest_proven(self, store: Store, sink: str, *, named: bool) -> bool:
        """Whether the sink has confirmed a file `verified` for this station (the store asked
        once per process and sink; a later `verified` confirmation sets it, _note_proof)."""
        with self.lock:
            known = self._proven.get((sink, named))
        if known is None:
            known = store.digest_proven(sink, named=named)
            with self.lock:
                known = self._proven.setdefault((sink, named), known)
        return known

    def _note_proof(self, sink: str, named: bool, confirmation: Confirmation) -> None:
        if confirmation.level == "verified":
            with self.lock:
                self._proven[(sink, named)] = True

    @staticmethod
    def _count_unprovable(store: Store, file_id: int, exc: BaseException) -> None:
        """A complete upload the sink terminated to send the file again: counted on the row
        (migration 0021), so the bound holds across restarts."""
        if isinstance(exc, UploadUnprovable):
            store.count_unprovable_upload(file_id, utc_now())

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        cap = float(self.config.sync.retry_max_delay_s)
        return backoff_s(attempts, retry_after, cap, self.rng.random())


def _note_jump(jumps: wallclock.JumpWatch) -> None:
    """Log a step of the station's wall clock: waits and purges do not follow it."""
    jump = jumps.check()
    if jump is not None:
        step, before, after = jump
        _log.warning(
            "clock.jumped",
            step_s=round(step, 3),
            wall_before=wallclock.iso(before),
            wall_after=wallclock.iso(after),
        )
