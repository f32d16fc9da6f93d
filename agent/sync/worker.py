"""Upload workers: drain the queue of sealed files into the configured sink and confirm them.

Claims sealed rows (important first, then the oldest), drives the tus protocol or the directory
sink, records the upload URL and every acknowledged offset, and finishes each row with one
transition: confirmed, back to sealed with a backoff (retryable), or held with the reason
(permanent). Also purges the staged copies of confirmed files after the grace period
(agent.sync.purge). Waits are measured on the monotonic clock (agent.sync.schedule), never on
the wall clock, which may be stepped. It never confirms what the sink did not prove, never
purges an unconfirmed copy and never wipes a camera.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import tenacity

from agent.core import log, wallclock
from agent.core.config import Config, SyncConfig
from agent.core.errors import (
    AgentError,
    ErrorKind,
    StagedCopyChanged,
    UploadConflict,
    UploadGone,
    UploadMismatch,
    UploadRetryable,
    UploadUnconfirmable,
    classify,
    describe,
)
from agent.core.model import display_name
from agent.core.wallclock import utc_now
from agent.custody.records import canonical, envelope
from agent.store import Store
from agent.sync import Confirmation, Progress, Sink, UploadJob, level_rank
from agent.sync.directory import DirectorySink
from agent.sync.purge import WallTrust, purge_confirmed
from agent.sync.receipts import ReceiptWriter
from agent.sync.schedule import RetrySchedule
from agent.sync.tus import READ_PIECE, Throttle, TusClient, UploadStatus

_log = log.get(__name__)

# A short retry waits at most this long; a longer Retry-After defers the file instead.
SHORT_WAIT_MAX_S = 30.0
# First long backoff after a failed attempt; doubles per attempt up to retry_max_delay_s.
BACKOFF_BASE_S = 30.0


# ---- bandwidth and windows -------------------------------------------------------------------


class RateLimit:
    """A token bucket shared by all workers: at most `rate` bytes/s on average.

    Waits on the monotonic clock, so a wall-clock step (NTP) neither stalls nor bursts uploads.
    """

    BURST_S = 0.25

    def __init__(
        self,
        rate: int,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate)
        self.monotonic = monotonic
        self.sleep = sleep
        self.lock = threading.Lock()
        self.ready_at = monotonic()

    def __call__(self, nbytes: int) -> None:
        with self.lock:
            now = self.monotonic()
            self.ready_at = max(self.ready_at, now - self.BURST_S) + nbytes / self.rate
            delay = self.ready_at - now - self.BURST_S
        if delay > 0:
            self.sleep(delay)


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def in_window(windows: tuple[str, ...], local: datetime) -> bool:
    """Whether uploads may run at this station-local time; a window may wrap midnight."""
    if not windows:
        return True
    now = local.hour * 60 + local.minute
    for window in windows:
        start_text, end_text = window.split("-")
        start, end = _minutes(start_text), _minutes(end_text)
        if start <= end:
            if start <= now < end:
                return True
        elif now >= start or now < end:
            return True
    return False


# ---- the job -----------------------------------------------------------------------------------


def _rfc3339(camera_time: str, zone: ZoneInfo | None) -> str:
    if not camera_time:
        return ""
    try:
        naive = datetime.fromisoformat(camera_time)
    except ValueError:
        return ""
    if naive.tzinfo is not None:
        return naive.isoformat()
    # astimezone() on a naive time takes the station's zone with the DST rule of that date.
    aware = naive.replace(tzinfo=zone) if zone else naive.astimezone()
    return aware.isoformat()


def _pick(body: dict[str, Any], name: str) -> str:
    return str(body.get(f"{name}_corrected") or body.get(name) or "")


def _drift(body: dict[str, Any]) -> str:
    drift = body.get("clock_drift_s")
    return "0" if drift is None or isinstance(drift, bool) else str(drift)


def build_job(store: Store, row: dict[str, Any], config: Config, sink_name: str) -> UploadJob:
    """The metadata of upload-protocol.md, taken from the signed record where it holds it."""
    record = store.record(int(row["record_seq"]))
    if record is None:
        raise StagedCopyChanged(path=row["staged_path"], actual="no custody record", expected="one")
    env = envelope(record)
    body = env["body"]
    zone = ZoneInfo(config.ingest.camera_timezone) if config.ingest.camera_timezone else None
    camera_path = bytes(row["camera_path"])
    staged = config.staging_path / row["staged_path"]
    metadata = {
        "filename": display_name(os.path.basename(camera_path)),
        "sha256": row["sha256"],
        "kind": row["kind"],
        "station_id": str(body.get("station_id", config.station_id)),
        "device_serial": row["device_serial"],
        "officer_id": str(body.get("officer_id", "")),
        # upload-protocol.md: times corrected for the drift measured at docking. Where the
        # record carries no correction (sealed before clock health measured it, or the camera
        # clock could not be read) the camera's own times go with the station's UTC offset and
        # the drift is reported as "0".
        "recorded_start": _rfc3339(_pick(body, "recorded_start"), zone),
        "recorded_end": _rfc3339(_pick(body, "recorded_end"), zone),
        "camera_clock_offset_s": _drift(body),
        "ingested_at": str(body.get("ingested_at", row["staged_at"] or "")),
        "retention_class": str(
            body.get("retention_class")
            or row.get("retention_class")
            or config.retention.default_class
        ),
        "important": "1" if row["important"] else "0",
        "custody_record": base64.b64encode(canonical(env)).decode("ascii"),
    }
    same_sink = row.get("upload_sink") == sink_name and row.get("upload_url")
    return UploadJob(
        file_id=int(row["id"]),
        sha256=str(row["sha256"]),
        size=int(row["size"]),
        path=staged,
        ext=staged.suffix.lstrip(".") or "bin",
        ingested_at=metadata["ingested_at"] or utc_now(),
        metadata=metadata,
        custody=env,
        resume_url=str(row["upload_url"]) if same_sink else None,
        resume_offset=int(row.get("upload_offset") or 0) if same_sink else 0,
        resume_checksummed=bool(row.get("upload_checksummed", 1)) if same_sink else True,
        resume_expires_at=row.get("upload_expires_at") if same_sink else None,
    )


# ---- the tus sink ------------------------------------------------------------------------------


@dataclass
class _TusState:
    """Where one file's upload stands; survives short retries (and, via the row, restarts)."""

    url: str | None
    offset: int
    checksummed: bool
    need_head: bool
    failures: int = 0  # consecutive failures without progress
    digest_seen: dict[str, bytes] = field(default_factory=dict)
    final_checked: bool = False
    hashed_upto: int = 0
    file_hash: Any = field(default_factory=hashlib.sha256)


class TusSink:
    """Drives one file through tus: create or resume, PATCH chunk by chunk, confirm."""

    def __init__(
        self,
        sync: SyncConfig,
        *,
        throttle: Throttle | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        token = ""
        if sync.bearer_token_file:
            with open(sync.bearer_token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        self.client = TusClient(
            sync.endpoint,
            ca_bundle=sync.ca_bundle,
            client_cert=sync.client_cert,
            client_key=sync.client_key,
            bearer_token=token,
            connect_timeout=float(sync.connect_timeout_s),
            read_timeout=float(sync.read_timeout_s),
            throttle=throttle,
        )
        self.sync = sync
        self.name = sync.endpoint
        self.sleep = sleep
        self.rng = random.Random()  # noqa: S311 - jitter, not secrets

    def close(self) -> None:
        self.client.close()

    def send(self, job: UploadJob, progress: Progress) -> Confirmation:
        expired = bool(job.resume_expires_at and job.resume_expires_at <= utc_now())
        url = None if expired else job.resume_url
        state = _TusState(
            url=url,
            offset=job.resume_offset if url else 0,
            checksummed=job.resume_checksummed if url else True,
            need_head=url is not None,
        )
        if expired:
            progress.forget()
        log_ = _log.bind(file_id=job.file_id, sha256=job.sha256)

        def short_retry(exc: BaseException) -> bool:
            if classify(exc) is not ErrorKind.RETRYABLE:
                return False
            if not getattr(exc, "short_retry", True):
                return False
            after = getattr(exc, "retry_after", None)
            return after is None or after <= SHORT_WAIT_MAX_S

        def wait(retry_state: tenacity.RetryCallState) -> float:
            # Exponential backoff with jitter (0.5 s, 1 s, 2 s, ... plus up to 0.5 s), but never
            # sooner than the server's Retry-After (RFC 9110 section 10.2.3).
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            after = getattr(exc, "retry_after", None) or 0.0
            step = 0.5 * 2.0 ** min(16, retry_state.attempt_number - 1)
            backoff = min(SHORT_WAIT_MAX_S, step) + self.rng.uniform(0, 0.5)
            return max(float(after), backoff)

        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            log_.warning(
                "upload.retried",
                attempt=retry_state.attempt_number,
                error_kind="retryable",
                reason=describe(exc) if exc else "",
                wait_s=round(retry_state.upcoming_sleep, 2),
            )

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(short_retry),
            # Bounded in count: consecutive failures without progress; each failure is itself
            # bounded by the connect and read timeouts.
            stop=lambda _rs: state.failures >= self.sync.retry_attempts,
            wait=wait,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(self._send_once, job, state, progress, log_)

    def _send_once(
        self, job: UploadJob, state: _TusState, progress: Progress, log_: Any
    ) -> Confirmation:
        fd = os.open(job.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return self._drive(job, state, progress, log_, fd)
        except UploadRetryable:
            state.failures += 1
            state.need_head = state.url is not None
            raise
        finally:
            os.close(fd)

    def _restart(self, state: _TusState, progress: Progress, log_: Any, why: str) -> None:
        if state.url:
            self.client.terminate(state.url)
        log_.warning("upload.restarted", reason=why)
        progress.forget()
        state.url, state.offset, state.checksummed = None, 0, True
        state.need_head, state.digest_seen, state.final_checked = False, {}, False

    def _catch_up_hash(self, state: _TusState, fd: int, upto: int) -> None:
        """Keep the whole-file hash of what the server holds in step with its offset."""
        if upto < state.hashed_upto:
            state.file_hash, state.hashed_upto = hashlib.sha256(), 0
        while state.hashed_upto < upto:
            piece = os.pread(fd, min(READ_PIECE, upto - state.hashed_upto), state.hashed_upto)
            if not piece:
                raise OSError(f"staged file ended at {state.hashed_upto}")
            state.file_hash.update(piece)
            state.hashed_upto += len(piece)

    def _drive(
        self, job: UploadJob, state: _TusState, progress: Progress, log_: Any, fd: int
    ) -> Confirmation:
        caps = self.client.capabilities()
        chunk = self.sync.chunk_bytes
        # Bounded in count: every chunk twice, plus room for re-syncs and restarts.
        for _step in range(2 * math.ceil(max(job.size, 1) / chunk) + 32):
            if state.url is None:
                url, expires = self.client.create(job.size, job.metadata)
                state.url, state.offset, state.checksummed = url, 0, True
                state.need_head, state.digest_seen, state.final_checked = False, {}, False
                progress.url(url, expires)
                log_.info("upload.created", upload_url=url)
            if state.need_head:
                try:
                    status = self.client.head(state.url)
                except UploadGone as exc:
                    self._restart(state, progress, log_, describe(exc))
                    continue
                # upload-protocol.md: continue from the server's offset only if 0 <= offset <=
                # length (and it is our length); otherwise start a new upload.
                if status.length not in (None, job.size) or not 0 <= status.offset <= job.size:
                    self._restart(
                        state,
                        progress,
                        log_,
                        f"server reports offset {status.offset} of length {status.length}",
                    )
                    continue
                if status.offset != state.offset:
                    log_.info("upload.resumed", offset=status.offset, stored_offset=state.offset)
                state.offset, state.need_head = status.offset, False
                state.digest_seen = status.repr_digest
                progress.offset(state.offset, state.checksummed)
            if state.offset == job.size:
                if not state.digest_seen and not state.final_checked:
                    # The final PATCH carried no Repr-Digest: a HEAD of the finished upload may.
                    state.final_checked, state.need_head = True, True
                    continue
                return self._confirm(job, state, progress, log_, fd, caps.sha256_checksums)
            length = min(chunk, job.size - state.offset)
            candidate = None
            if caps.sha256_checksums:
                # The chunk is read once more for its Upload-Checksum anyway: keep the whole
                # file's hash on the way. Without checksums it is computed only if needed.
                if state.hashed_upto != state.offset:
                    self._catch_up_hash(state, fd, state.offset)
                candidate = state.file_hash.copy()
            try:
                answer: UploadStatus = self.client.patch(
                    state.url, fd, state.offset, length, candidate
                )
            except UploadConflict as exc:
                log_.warning("upload.conflicted", reason=describe(exc), offset=state.offset)
                state.need_head = True
                continue
            except UploadGone as exc:
                self._restart(state, progress, log_, describe(exc))
                continue
            if answer.offset != state.offset + length:
                state.need_head = True  # the server took another amount: ask it where it is
                continue
            if candidate is not None:
                state.file_hash, state.hashed_upto = candidate, answer.offset
            state.offset, state.failures = answer.offset, 0
            state.checksummed = state.checksummed and caps.sha256_checksums
            state.digest_seen = answer.repr_digest
            progress.offset(state.offset, state.checksummed)
        raise UploadRetryable(server=self.client.server, problem="no progress after many steps")

    def _confirm(
        self,
        job: UploadJob,
        state: _TusState,
        progress: Progress,
        log_: Any,
        fd: int,
        checksums: bool,
    ) -> Confirmation:
        server = self.client.server
        digest = state.digest_seen.get("sha-256")
        if digest is None:
            # No end-to-end digest from the server: at least make sure that what was sent is
            # what was sealed (the staged copy may have changed since), reading what is left.
            self._catch_up_hash(state, fd, job.size)
            sent = state.file_hash.hexdigest()
            if sent != job.sha256:
                self._restart(state, progress, log_, "staged copy changed")
                raise StagedCopyChanged(path=str(job.path), actual=sent, expected=job.sha256)
        if digest is not None:
            if digest.hex() != job.sha256:
                url = state.url or ""
                self._restart(state, progress, log_, "Repr-Digest does not match")
                raise UploadMismatch(
                    server=server,
                    problem=f"Repr-Digest sha-256 {digest.hex()} of {url}, file has {job.sha256}",
                )
            level = "verified"
        elif state.checksummed and checksums:
            level = "checksummed"
        else:
            level = "complete"
        wanted = self.sync.confirm_level
        if level_rank(level) < level_rank(wanted):
            raise UploadUnconfirmable(
                server=server,
                wanted=wanted,
                problem=f"the upload is complete but only {level} "
                "(no Repr-Digest, or no sha256 checksum advertised)",
            )
        return Confirmation(level, state.url or "")


# ---- the queue -------------------------------------------------------------------------------


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
        }


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


def make_sink(config: Config, throttle: Throttle | None) -> Sink:
    if config.sync.kind == "tus":
        return TusSink(config.sync, throttle=throttle)
    return DirectorySink(config.archive_path, config.station_id, throttle)


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
    ) -> None:
        self.config = config
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

    # ---- one pass ----------------------------------------------------------------------------

    def run_once(self, store: Store, *, honour_backoff: bool = False) -> SyncReport:
        """Drain: every sealed file is tried at most once in this pass; then purge."""
        report = SyncReport()
        report.released_stale = store.release_stale_uploads(utc_now())
        if in_window(self.config.sync.windows, self.local_now()):
            self._drain(store, report, honour_backoff=honour_backoff)
        else:
            report.outside_window = True
            _log.info("upload.window_closed", windows=",".join(self.config.sync.windows))
        report.purged, report.purged_bytes = self._purge(store)
        return report

    def _purge(self, store: Store) -> tuple[int, int]:
        return purge_confirmed(
            store, self.config.staging_path, self.config.sync.purge_grace_s, self.wall_trust
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
                reason=f"test hook ${wallclock.ENV_TEST_OFFSET_FILE} shifts the wall clock; "
                "it must never be set in production",
            )
        store.release_stale_uploads(utc_now())
        jumps = wallclock.JumpWatch()
        while not stop.is_set():
            unscheduled = False
            try:
                if in_window(self.config.sync.windows, self.local_now()):
                    self._drain(store, SyncReport(), honour_backoff=True, stop=stop)
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
        tried: set[int] = set()
        if honour_backoff:
            self.schedule.adopt(store.waiting_uploads(), wallclock.now())
            tried |= self.schedule.not_due()
        threads = [
            threading.Thread(
                target=self._work,
                args=(report, tried, stop, f"{os.getpid()}-{n}"),
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
        tried: set[int],
        stop: threading.Event | None,
        worker: str,
    ) -> None:
        try:
            store = self.open_store()
        except Exception as exc:  # reported; the other workers go on
            with self.lock:
                report.crashed.append(describe(exc))
            return
        sink: Sink | None = None
        try:
            sink = self.sink_factory(self.throttle)
            while stop is None or not stop.is_set():
                with self.lock:
                    row = store.claim_upload(worker, utc_now(), exclude=tried)
                    if row is None:
                        return
                    tried.add(int(row["id"]))
                self._process(store, sink, row, report, stop)
        except Exception as exc:  # a worker must not die silently
            _log.exception("upload.worker_failed", worker=worker, reason=describe(exc))
            with self.lock:
                report.crashed.append(describe(exc))
        finally:
            if sink is not None:
                sink.close()
            store.close()

    def _process(
        self,
        store: Store,
        sink: Sink,
        row: dict[str, Any],
        report: SyncReport,
        stop: threading.Event | None = None,
    ) -> None:
        file_id = int(row["id"])
        attempt = int(row["upload_attempts"])
        log_ = _log.bind(file_id=file_id, sha256=row["sha256"], attempt=attempt)
        item = {"file_id": file_id, "sha256": row["sha256"], "name": row["camera_name"]}
        try:
            job = build_job(store, row, self.config, sink.name)
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
            self._failed(store, row, exc, report, item, log_)
            return
        at = wallclock.stamp()
        store.confirm_upload(
            file_id, confirmation.level, confirmation.ref, at.wall, at.epoch, at.boottime_s
        )
        self.schedule.forget(file_id)
        receipt.confirmed(sink.name, confirmation.level, confirmation.ref, utc_now())
        log_.info("upload.confirmed", level=confirmation.level, ref=confirmation.ref)
        with self.lock:
            report.confirmed.append({**item, "level": confirmation.level, "ref": confirmation.ref})

    def _failed(
        self,
        store: Store,
        row: dict[str, Any],
        exc: BaseException,
        report: SyncReport,
        item: dict[str, Any],
        log_: Any,
    ) -> None:
        file_id = int(row["id"])
        reason = describe(exc)
        kind = classify(exc)
        now = utc_now()
        if isinstance(exc, UploadMismatch):
            # The alarm: the destination holds something else than the sealed evidence.
            log_.error("upload.digest_mismatched", error_kind="permanent", reason=reason)
        if kind is ErrorKind.RETRYABLE:
            delay = self._backoff(int(row["upload_attempts"]), getattr(exc, "retry_after", None))
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
        store.hold_upload(file_id, reason, now)
        self.schedule.forget(file_id)
        log_.error("upload.held", error_kind="permanent", reason=reason)
        with self.lock:
            report.held.append({**item, "reason": reason})

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        cap = float(self.config.sync.retry_max_delay_s)
        delay = min(cap, BACKOFF_BASE_S * 2.0 ** min(30, max(0, attempts - 1)))
        delay *= 0.5 + self.rng.random() / 2  # full jitter would allow ~0: keep half
        return max(delay, min(cap, retry_after or 0.0))


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
