"""The tus sink: one file through the tus upload state machine of specs/upload-protocol.md.

Creates the upload (or resumes the stored one after a HEAD), PATCHes it chunk by chunk, and
confirms it at the strongest level the server proves: `verified` by a Repr-Digest the server
computed (sha-512: we never send one), `checksummed` when every chunk carried an
Upload-Checksum, else `complete` (confirmation_level says what each proves); a HEAD that fails
after the server acknowledged the last byte takes nothing away (acknowledged_head_failed); a
complete upload short of confirm_level is terminated and the file sent again, a bounded number
of times, by a server that has proven digests before (reupload_unprovable). The upload
carries the reference clients' metadata keys too (agent.sync.tus_metadata). Each turn of the
machine is one small step (create, sync with HEAD, PATCH, confirm); the state and its pure
transitions (TusState, next_move, resumable, confirmation_level) are kept apart from the
steps that talk to the server, so they can be checked without one. Failures that pass in
seconds are retried within the attempt (agent.sync.schedule, on classify's word). HTTP is
agent.sync.tus_client's; this module never imports requests, never touches a row (it reports
through Progress) and never confirms what the server did not prove.
"""

from __future__ import annotations

import enum
import hashlib
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import tenacity

from agent.core import log
from agent.core.config import SyncConfig
from agent.core.errors import (
    ErrorKind,
    StagedCopyChanged,
    UploadConflict,
    UploadGone,
    UploadMismatch,
    UploadRefused,
    UploadRetryable,
    UploadUnconfirmable,
    UploadUnprovable,
    classify,
    describe,
)
from agent.core.wallclock import utc_now
from agent.sync.jobs import TokenJob, UploadJob
from agent.sync.schedule import (
    SHORT_JITTER_S,
    SHORT_WAIT_MAX_S,
    short_wait_s,
    worth_a_short_retry,
)
from agent.sync.sink import Confirmation, Progress, level_rank
from agent.sync.throttle import Throttle
from agent.sync.tus_client import MIN_RATE, READ_PIECE, ServerCaps, TusClient, UploadStatus
from agent.sync.tus_metadata import upload_metadata

_log = log.get(__name__)

# Turns of the machine allowed per attempt beyond two per chunk: room for re-syncs and restarts.
SPARE_TURNS = 32
# The Repr-Digest algorithm that proves `verified` (confirmation_level); sha-256, which we
# send ourselves, is only checked for a mismatch.
PROOF_DIGEST = "sha-512"
# Fresh uploads of a file whose complete upload the server did not prove at confirm_level,
# before the file is held (reupload_unprovable). Two: a lost digest (the server stopped between
# storing an upload's last bytes and its finish hook) is a passing fault, so one fresh upload
# almost always suffices and a second covers a restart of the server during the first; three
# unprovable uploads of one file say the server no longer proves this file, and each fresh
# upload costs the whole file's bytes again, on the station's shared uplink.
FRESH_UPLOADS = 2


# ---- the state and its pure transitions --------------------------------------------------------


class FileHash:
    """The sha-256 (the seal's) and sha-512 (the proof's, see confirmation_level) of the bytes
    sent so far, updated together as each piece goes out: no second read to confirm."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512()

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.sha512.update(data)

    def copy(self) -> FileHash:
        twin = FileHash()
        twin.sha256, twin.sha512 = self.sha256.copy(), self.sha512.copy()
        return twin


@dataclass
class TusState:
    """Where one file's upload stands; survives short retries (and, via the row, restarts)."""

    url: str | None
    offset: int
    checksummed: bool
    need_head: bool
    failures: int = 0  # consecutive failures without progress
    digest_seen: dict[str, bytes] = field(default_factory=dict)
    final_checked: bool = False
    hashed_upto: int = 0
    file_hash: FileHash = field(default_factory=FileHash)
    # How far our PATCHes (with their checksums) can have reached: beyond it the server holds
    # bytes it never had from us, or says so.
    sent_upto: int = 0
    # The server said it holds every byte: a PATCH or HEAD answer of offset = length (for an
    # empty file its creation: tus 1.0 zero-length uploads are complete when created), in this
    # attempt or stored on the row by an earlier one. From then on a HEAD can only add proof
    # (acknowledged_head_failed): its failure takes nothing away.
    acknowledged: bool = False

    def begin(self, url: str | None) -> None:
        """A new upload at `url` (None: none yet, after a restart): the server holds nothing."""
        self.url, self.offset, self.checksummed = url, 0, True
        self.need_head, self.digest_seen, self.final_checked = False, {}, False
        self.sent_upto, self.acknowledged = 0, False

    def synced(self, status: UploadStatus) -> None:
        """A HEAD answered: continue from where the server is. An offset beyond what we can
        have sent was never checked under our checksums: the upload is no longer
        `checksummed` (a server may claim bytes it never received)."""
        if status.offset > self.sent_upto:
            self.checksummed = False
        self.offset, self.need_head = status.offset, False
        self.digest_seen = status.repr_digest

    def patched(
        self,
        answer: UploadStatus,
        length: int,
        hashed: FileHash | None,
        server_checksums: bool,
    ) -> bool:
        """A PATCH of `length` bytes answered; False when the server took another amount (and
        must be asked where it is). `hashed`: the whole-file hash up to the chunk's end."""
        if answer.offset != self.offset + length:
            self.need_head = True
            return False
        if hashed is not None:
            self.file_hash, self.hashed_upto = hashed, answer.offset
        self.offset, self.failures = answer.offset, 0
        self.checksummed = self.checksummed and server_checksums
        self.digest_seen = answer.repr_digest
        return True


def starting_state(job: UploadJob, now: str, in_flight: int = 0) -> tuple[TusState, bool]:
    """The state an attempt starts from, and whether the stored upload URL has expired.
    `in_flight`: how far past the stored offset a PATCH cut short may have reached (a chunk)."""
    expired = bool(job.resume_expires_at and job.resume_expires_at <= now)
    url = None if expired else job.resume_url
    state = TusState(
        url=url,
        offset=job.resume_offset if url else 0,
        checksummed=job.resume_checksummed if url else True,
        need_head=url is not None,
        sent_upto=job.resume_offset + in_flight if url else 0,
        # The row stores only offsets the server answered (and, for an empty file, its creation).
        acknowledged=bool(url) and job.resume_offset == job.size,
    )
    return state, expired


class Move(enum.Enum):
    """What to do once in step with the server."""

    FINAL_HEAD = "final_head"  # all sent, no digest seen yet: a HEAD of the finished upload may
    CONFIRM = "confirm"
    PATCH = "patch"


def next_move(state: TusState, size: int) -> Move:
    if state.offset != size:
        return Move.PATCH
    if PROOF_DIGEST not in state.digest_seen and not state.final_checked:
        return Move.FINAL_HEAD
    return Move.CONFIRM


def resumable(status: UploadStatus, size: int) -> bool:
    """upload-protocol.md: continue from the server's offset only if 0 <= offset <= length (and
    it is our length); otherwise start a new upload."""
    return status.length in (None, size) and 0 <= status.offset <= size


def confirmation_level(digest_matched: bool, checksummed: bool, server_checksums: bool) -> str:
    """What the server proved: a Repr-Digest it computed (sha-512, never sent by us) equal to
    ours, every chunk checksummed, or only that the upload is complete.

    - `complete`: the server said offset = length. It proves nothing about the bytes: a server
      may claim it without storing them.
    - `checksummed`: every chunk we sent was accepted under an advertised sha256
      Upload-Checksum, so the server saw each chunk whole; it does not prove it kept them.
    - `verified`: the server answered a sha-512 Repr-Digest equal to the sha-512 of the staged
      copy, whose sha-256 equals the seal. We never send a sha-512, so the server can only have
      computed it from the bytes it holds when it answered; a sha-256 Repr-Digest proves nothing
      (the metadata and the custody record carry it) and only raises the alarm on a mismatch.
      No level proves that the server keeps the bytes afterwards.
    """
    if digest_matched:
        return "verified"
    if checksummed and server_checksums:
        return "checksummed"
    return "complete"


def acknowledged_head_failed(
    state: TusState, server_checksums: bool, wanted: str
) -> tuple[str, bool]:
    """A HEAD failed (refused, gone, 5xx, lost) after the server acknowledged every byte: the
    level the acknowledgement proves, and whether it reaches `wanted`.

    What each answer proves (upload-protocol.md "Confirmation levels"): a PATCH answered 204
    with Upload-Offset = length proves `complete` (the server's word that it holds every byte),
    `checksummed` when every chunk went under an advertised sha256 Upload-Checksum; only a
    Repr-Digest sha-512 proves `verified`, and the HEAD of a finished upload is asked for
    nothing else. So a refused HEAD says nothing against the acknowledgement: servers answer it
    with 404 once the finished upload has moved to its final place, 500 when the move took their
    bookkeeping along, 400 when the metadata lacks a key they want. It is no refusal of the
    upload: confirmed at the acknowledged level when that is enough, else asked again after
    the pool's backoff (bounded by retry_max_delay_s), never held for it.
    """
    # A sha-512 the final PATCH answered already is proof (checked against ours on confirming).
    proof = PROOF_DIGEST in state.digest_seen
    level = confirmation_level(proof, state.checksummed, server_checksums)
    return level, level_rank(level) >= level_rank(wanted)


def reupload_unprovable(unprovable_before: int, digest_proven: bool) -> bool:
    """Whether a complete upload the server did not prove at confirm_level is terminated and
    the file sent again (a new upload, at its next attempt after the pool's backoff), rather
    than the file held.

    Only while the server has proven a Repr-Digest sha-512 to this station before
    (`digest_proven`: it confirmed a file `verified`), and at most FRESH_UPLOADS times per file
    (`unprovable_before`: the row's count, which survives restarts). A server that proves
    others lost this upload's digest; a new upload is likely proven. A server that has never
    proven one to this station cannot compute digests or does not hand them out: a
    configuration problem, the same for every upload, so its first unprovable upload already
    holds the file, at once and visibly (UploadUnconfirmable names it), without sending every
    file again; that upload is kept, so a technician who lowers confirm_level has it confirmed
    without its bytes being sent again.
    """
    return digest_proven and unprovable_before < FRESH_UPLOADS


def _catch_up_hash(state: TusState, fd: int, upto: int) -> None:
    """Keep the whole-file hash of what the server holds in step with its offset."""
    if upto < state.hashed_upto:
        state.file_hash, state.hashed_upto = FileHash(), 0
    while state.hashed_upto < upto:
        piece = os.pread(fd, min(READ_PIECE, upto - state.hashed_upto), state.hashed_upto)
        if not piece:
            raise OSError(f"staged file ended at {state.hashed_upto}")
        state.file_hash.update(piece)
        state.hashed_upto += len(piece)


def _slowest_fair_rate(sync: SyncConfig) -> float:
    """The slowest PATCH rate a request's deadline allows: MIN_RATE, or less under a bandwidth
    cap shared by all workers (half of a fair share, so a throttled upload is never cut)."""
    if not sync.bandwidth_bytes_per_s:
        return float(MIN_RATE)
    return min(float(MIN_RATE), sync.bandwidth_bytes_per_s / sync.max_parallel_uploads / 2)


# ---- the steps ---------------------------------------------------------------------------------


@dataclass
class _Attempt:
    """One pass over the open staged file; the state outlives it across short retries."""

    job: UploadJob
    state: TusState
    progress: Progress
    log: Any
    fd: int
    caps: ServerCaps


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
            min_rate=_slowest_fair_rate(sync),
        )
        self.sync = sync
        self.name = sync.endpoint
        self.longest_step_s = (
            self.client.deadline_s(sync.chunk_bytes) + SHORT_WAIT_MAX_S + SHORT_JITTER_S
        )
        self.sleep = sleep
        self.rng = random.Random()  # noqa: S311 - jitter, not secrets

    def close(self) -> None:
        self.client.close()

    def send(self, job: UploadJob, progress: Progress) -> Confirmation:
        state, expired = starting_state(job, utc_now(), self.sync.chunk_bytes)
        if expired:
            progress.forget()
        log_ = _log.bind(file_id=job.file_id, sha256=job.sha256)
        return self._retrying(state, log_)(self._send_once, job, state, progress, log_)

    def send_token(self, job: TokenJob) -> str:
        """One kept RFC 3161 token as an upload of its own (a few KiB: one PATCH), with
        metadata naming it a token and what it covers, so a stock tus server keeps it beside
        the files; the upload URL once the server acknowledged every byte. A failure is
        raised as it is classified: the caller asks again later (a new upload: the token is
        small, and a stale one left unfinished holds nothing)."""
        fd = os.memfd_create("tsa-token", os.MFD_CLOEXEC)
        try:
            os.write(fd, job.token)
            url, _expires = self.client.create(len(job.token), job.metadata())
            answer = self.client.patch(url, fd, 0, len(job.token))
        finally:
            os.close(fd)
        if answer.offset != len(job.token):
            raise UploadRetryable(
                server=self.client.server,
                problem=f"token upload {url} at offset {answer.offset} of {len(job.token)}",
            )
        proof = answer.repr_digest.get(PROOF_DIGEST)
        if proof is not None and proof != hashlib.sha512(job.token).digest():
            raise UploadMismatch(
                server=self.client.server,
                problem=f"Repr-Digest {PROOF_DIGEST} {proof.hex()} of token upload {url}",
            )
        return url

    def _retrying(self, state: TusState, log_: Any) -> tenacity.Retrying:
        def wait(retry_state: tenacity.RetryCallState) -> float:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            jitter = self.rng.uniform(0, SHORT_JITTER_S)
            return short_wait_s(
                retry_state.attempt_number, getattr(exc, "retry_after", None), jitter
            )

        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            log_.warning(
                "upload.retried",
                attempt=retry_state.attempt_number,
                error_kind="retryable",
                reason=describe(exc) if exc else "",
                wait_s=round(retry_state.upcoming_sleep, 2),
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(worth_a_short_retry),
            # Bounded in count: consecutive failures without progress; each failure is itself
            # bounded by the connect and read timeouts.
            stop=lambda _rs: state.failures >= self.sync.retry_attempts,
            wait=wait,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _send_once(
        self, job: UploadJob, state: TusState, progress: Progress, log_: Any
    ) -> Confirmation:
        try:
            return self._send_open(job, state, progress, log_)
        except Exception as exc:
            # The same word as the retry predicate's (classify): every failure that may be
            # retried counts towards the bound, a passing read error of the staged copy too,
            # and after one the server is asked where the upload stands.
            if classify(exc) is ErrorKind.RETRYABLE:
                state.failures += 1
                state.need_head = state.url is not None
            raise

    def _send_open(
        self, job: UploadJob, state: TusState, progress: Progress, log_: Any
    ) -> Confirmation:
        fd = os.open(job.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return self._drive(_Attempt(job, state, progress, log_, fd, self.client.capabilities()))
        finally:
            os.close(fd)

    def _drive(self, run: _Attempt) -> Confirmation:
        # Bounded in count: every chunk twice, plus room for re-syncs and restarts.
        turns = 2 * math.ceil(max(run.job.size, 1) / self.sync.chunk_bytes) + SPARE_TURNS
        for _turn in range(turns):
            confirmation = self._turn(run)
            if confirmation is not None:
                return confirmation
        raise UploadRetryable(server=self.client.server, problem="no progress after many steps")

    def _turn(self, run: _Attempt) -> Confirmation | None:
        """One turn: get in step with the server, then one move; None: take another turn."""
        state = run.state
        url = state.url if state.url is not None else self._create(run)
        if state.need_head and not self._head(run, url):
            return None
        move = next_move(state, run.job.size)
        if move is not Move.PATCH:
            self._check_named_digest(run)
        if move is Move.FINAL_HEAD:
            # The final PATCH carried no Repr-Digest: a HEAD of the finished upload may.
            state.final_checked, state.need_head = True, True
            return None
        if move is Move.CONFIRM:
            return self._confirm(run)
        self._patch(run, url)
        return None

    def _create(self, run: _Attempt) -> str:
        url, expires = self.client.create(run.job.size, upload_metadata(run.job.metadata))
        run.state.begin(url)
        run.state.acknowledged = run.job.size == 0
        run.progress.url(url, expires)
        return url

    def _head(self, run: _Attempt, url: str) -> bool:
        """Ask the server where the upload is; False when it had to be started anew."""
        state, size = run.state, run.job.size
        # A URL of another origin is refused before anything else, acknowledged or not.
        self.client.check_origin(url)
        try:
            status = self.client.head(url)
        except (UploadRetryable, UploadRefused) as exc:
            if state.acknowledged:
                self._head_failed_after_ack(run, exc)
                return True
            if not isinstance(exc, UploadGone):
                raise
            self._restart(run, describe(exc))
            return False
        if not resumable(status, size):
            self._restart(run, f"server reports offset {status.offset} of length {status.length}")
            return False
        if status.offset != state.offset:
            run.log.info("upload.resumed", offset=status.offset, stored_offset=state.offset)
        state.synced(status)
        state.acknowledged = state.offset == size
        run.progress.offset(state.offset, state.checksummed)
        return True

    def _head_failed_after_ack(self, run: _Attempt, exc: UploadRetryable | UploadRefused) -> None:
        """After the server acknowledged every byte a failed HEAD only withholds more proof
        (acknowledged_head_failed): confirm with what the acknowledgement proves, or, when the
        configured level needs more, let the file wait for the pool's backoff."""
        state, wanted = run.state, self.sync.confirm_level
        level, enough = acknowledged_head_failed(state, run.caps.sha256_checksums, wanted)
        run.log.warning(
            "upload.head_failed", reason=describe(exc), acknowledged_level=level, wanted=wanted
        )
        if enough:
            state.need_head, state.final_checked = False, True
            return
        if isinstance(exc, UploadRetryable) and not isinstance(exc, (UploadGone, UploadConflict)):
            raise exc  # passing (5xx, lost, garbled): short retries, then the pool's backoff
        later = UploadRetryable(
            server=self.client.server,
            problem=f"{exc.fields.get('problem', describe(exc))} after the server acknowledged "
            f"every byte (only {level}; confirm_level {wanted} needs its Repr-Digest "
            f"{PROOF_DIGEST}), asked again later",
        )
        later.short_retry = False  # the same answer within seconds; the pool's backoff instead
        raise later

    def _patch(self, run: _Attempt, url: str) -> None:
        state = run.state
        length = min(self.sync.chunk_bytes, run.job.size - state.offset)
        hashed = self._hash_through_chunk(run)
        state.sent_upto = max(state.sent_upto, state.offset + length)
        try:
            answer = self.client.patch(url, run.fd, state.offset, length, hashed)
        except UploadConflict as exc:
            run.log.warning("upload.conflicted", reason=describe(exc), offset=state.offset)
            state.need_head = True
            return
        except UploadGone as exc:
            self._restart(run, describe(exc))
            return
        if state.patched(answer, length, hashed, run.caps.sha256_checksums):
            state.acknowledged = state.offset == run.job.size
            run.progress.offset(state.offset, state.checksummed)

    @staticmethod
    def _hash_through_chunk(run: _Attempt) -> FileHash:
        """The whole-file hashes to carry through the next chunk: updated with its bytes as
        they are read to send (or to checksum), so confirming needs no second read."""
        state = run.state
        if state.hashed_upto != state.offset:
            _catch_up_hash(state, run.fd, state.offset)
        return state.file_hash.copy()

    def _restart(self, run: _Attempt, why: str) -> None:
        if run.state.url:
            self.client.terminate(run.state.url)
        run.log.warning("upload.restarted", reason=why)
        run.progress.forget()
        run.state.begin(None)

    def _confirm(self, run: _Attempt) -> Confirmation:
        state = run.state
        proof = state.digest_seen.get(PROOF_DIGEST)
        self._check_sent(run)
        if proof is not None and proof != state.file_hash.sha512.digest():
            self._mismatch(run, PROOF_DIGEST, proof.hex(), state.file_hash.sha512.hexdigest())
        level = confirmation_level(proof is not None, state.checksummed, run.caps.sha256_checksums)
        wanted = self.sync.confirm_level
        if level_rank(level) < level_rank(wanted):
            self._unprovable(run, level, wanted)
        computed = f"{PROOF_DIGEST}={proof.hex()}" if proof is not None else ""
        return Confirmation(level, state.url or "", digest=computed)

    def _unprovable(self, run: _Attempt, level: str, wanted: str) -> NoReturn:
        """The upload is complete but proves only `level`: terminated and sent again
        (UploadUnprovable), or the file held (UploadUnconfirmable), as reupload_unprovable
        decides; the reason says how many of the file's uploads were complete and unprovable."""
        job, url = run.job, run.state.url or ""
        count = job.unprovable_uploads + 1
        what = (
            f"the upload is complete but only {level} (no Repr-Digest {PROOF_DIGEST} computed "
            "by the server, or no sha256 checksum advertised)"
        )
        if reupload_unprovable(job.unprovable_uploads, job.digest_proven):
            # tus "termination": the server drops the upload the station will never name, so
            # it keeps one complete copy of the file (best effort: a server without the
            # extension keeps it until it expires).
            terminated = self.client.terminate(url) if url else False
            run.log.warning(
                "upload.reuploaded",
                reason=what,
                wanted=wanted,
                unprovable_uploads=count,
                fresh_uploads_left=FRESH_UPLOADS - count,
                terminated=terminated,
            )
            run.progress.forget()
            run.state.begin(None)
            raise UploadUnprovable(
                server=self.client.server,
                problem=f"{what}; {count} of its uploads complete and unprovable ({url})",
            )
        never = (
            ""
            if job.digest_proven
            else f"; the server has never given this station a Repr-Digest {PROOF_DIGEST} "
            "(its configuration?)"
        )
        uploads = "upload" if count == 1 else "uploads"
        raise UploadUnconfirmable(
            server=self.client.server,
            wanted=wanted,
            problem=f"{what}; {count} {uploads} of the file complete and unprovable{never}",
        )

    def _check_named_digest(self, run: _Attempt) -> None:
        """A sha-256 Repr-Digest proves nothing (we named it ourselves), but one that differs
        says the server holds something else: the alarm, at once."""
        named = run.state.digest_seen.get("sha-256")
        if named is not None and named.hex() != run.job.sha256:
            self._mismatch(run, "sha-256", named.hex(), run.job.sha256)

    def _mismatch(self, run: _Attempt, algorithm: str, theirs: str, ours: str) -> None:
        url = run.state.url or ""
        self._restart(run, "Repr-Digest does not match")
        raise UploadMismatch(
            server=self.client.server,
            problem=f"Repr-Digest {algorithm} {theirs} of {url}, file has {ours}",
        )

    def _check_sent(self, run: _Attempt) -> None:
        """Make sure that what was sent is what was sealed (the staged copy may have changed
        since), reading only what was not hashed on the way (after a resume)."""
        job, state = run.job, run.state
        _catch_up_hash(state, run.fd, job.size)
        sent = state.file_hash.sha256.hexdigest()
        if sent != job.sha256:
            self._restart(run, "staged copy changed")
            raise StagedCopyChanged(path=str(job.path), actual=sent, expected=job.sha256)
