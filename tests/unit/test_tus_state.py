"""The tus upload state machine's pure transitions: where to resume, what to do next, what the
server proved. No server: the steps that talk to one are covered by the sync and fault tests."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.config import SyncConfig
from agent.sync.jobs import UploadJob
from agent.sync.tus_client import ServerCaps, UploadStatus
from agent.sync.tus_sink import (
    Move,
    TusSink,
    TusState,
    acknowledged_head_failed,
    confirmation_level,
    next_move,
    resumable,
    reupload_unprovable,
    starting_state,
)

SIZE = 10_000
ROOT = Path(__file__).resolve().parents[2]


def _job(**resume: object) -> UploadJob:
    return UploadJob(
        file_id=7,
        sha256="0" * 64,
        size=SIZE,
        path=Path("/nonexistent"),
        ext="mp4",
        ingested_at="2026-03-01T12:00:00+00:00",
        metadata={},
        custody={},
        **resume,  # type: ignore[arg-type]
    )


def _status(offset: int, length: int | None = SIZE, digest: bytes | None = None) -> UploadStatus:
    return UploadStatus(
        offset=offset,
        length=length,
        repr_digest={"sha-256": digest} if digest else {},
        expires_at=None,
    )


def test_a_stored_upload_is_resumed_after_a_head_and_an_expired_one_is_not() -> None:
    now = "2026-03-02T00:00:00+00:00"
    fresh, expired = starting_state(_job(), now)
    assert (fresh.url, fresh.offset, fresh.need_head, expired) == (None, 0, False, False)

    stored = _job(
        resume_url="http://tus/files/a",
        resume_offset=4096,
        resume_checksummed=False,
        resume_expires_at="2026-03-03T00:00:00+00:00",
    )
    state, expired = starting_state(stored, now)
    assert (state.url, state.offset, state.checksummed, state.need_head) == (
        "http://tus/files/a",
        4096,
        False,
        True,
    )
    assert not expired

    state, expired = starting_state(stored, "2026-03-03T00:00:00+00:00")
    assert expired
    assert (state.url, state.offset, state.checksummed, state.need_head) == (None, 0, True, False)


@pytest.mark.parametrize(
    ("status", "ok"),
    [
        (_status(0), True),
        (_status(SIZE), True),
        (_status(4096, length=None), True),  # deferred length: ours is taken
        (_status(SIZE + 1), False),  # beyond the file
        (_status(-1), False),
        (_status(10, length=SIZE - 1), False),  # another file's upload
    ],
)
def test_a_head_answer_is_resumed_only_within_our_length(status: UploadStatus, ok: bool) -> None:
    assert resumable(status, SIZE) is ok


def test_the_next_move_sends_until_complete_then_asks_once_for_a_digest() -> None:
    state = TusState(url="u", offset=0, checksummed=True, need_head=False)
    assert next_move(state, SIZE) is Move.PATCH
    state.offset = SIZE
    assert next_move(state, SIZE) is Move.FINAL_HEAD
    state.final_checked = True  # asked once: confirm with what is known
    assert next_move(state, SIZE) is Move.CONFIRM
    # A sha-256 proves nothing (we sent it in the metadata): the HEAD is still asked for.
    state.final_checked, state.digest_seen = False, {"sha-256": b"x"}
    assert next_move(state, SIZE) is Move.FINAL_HEAD
    state.digest_seen = {"sha-512": b"x"}
    assert next_move(state, SIZE) is Move.CONFIRM


def test_a_patch_that_took_another_amount_sends_us_to_head() -> None:
    state = TusState(url="u", offset=1000, checksummed=True, need_head=False, failures=2)
    assert not state.patched(_status(1500), 1000, None, server_checksums=True)
    assert (state.offset, state.need_head, state.failures) == (1000, True, 2)


def test_a_patch_that_took_the_chunk_advances_and_clears_the_failures() -> None:
    state = TusState(url="u", offset=1000, checksummed=True, need_head=False, failures=2)
    hashed = hashlib.sha256(b"first 2000")
    assert state.patched(_status(2000, digest=b"d"), 1000, hashed, server_checksums=True)
    assert (state.offset, state.failures, state.checksummed) == (2000, 0, True)
    assert state.file_hash is hashed and state.hashed_upto == 2000
    assert state.digest_seen == {"sha-256": b"d"}
    # One chunk sent without Upload-Checksum: the upload is no longer "checksummed".
    assert state.patched(_status(3000), 1000, None, server_checksums=False)
    assert not state.checksummed
    assert state.hashed_upto == 2000  # no hash carried: it is caught up later, if needed


def test_begin_forgets_what_the_server_held() -> None:
    state = TusState(url="old", offset=5000, checksummed=False, need_head=True)
    state.digest_seen, state.final_checked = {"sha-256": b"x"}, True
    state.begin("new")
    assert (state.url, state.offset, state.checksummed, state.need_head) == ("new", 0, True, False)
    assert (state.digest_seen, state.final_checked) == ({}, False)
    state.begin(None)
    assert state.url is None
    assert next_move(state, SIZE) is Move.PATCH


def test_synced_takes_the_servers_offset_and_digest() -> None:
    state = TusState(url="u", offset=100, checksummed=True, need_head=True)
    state.synced(_status(4096, digest=b"d"))
    assert (state.offset, state.need_head, state.digest_seen) == (4096, False, {"sha-256": b"d"})


def test_an_offset_beyond_what_we_can_have_sent_is_not_checksummed() -> None:
    state = TusState(url="u", offset=0, checksummed=True, need_head=True, sent_upto=4096)
    state.synced(_status(4096))  # an answer lost on the way: the bytes went under checksums
    assert state.checksummed
    state.synced(_status(SIZE))  # bytes we never sent, or a claim without them
    assert not state.checksummed
    stored = _job(resume_url="http://tus/files/a", resume_offset=4096, resume_checksummed=True)
    resumed, _expired = starting_state(stored, "2026-03-02T00:00:00+00:00", in_flight=1024)
    assert resumed.sent_upto == 4096 + 1024  # one PATCH may have been cut short by a crash
    resumed.begin("http://tus/files/b")
    assert resumed.sent_upto == 0


@pytest.mark.parametrize(
    ("digest", "checksummed", "server_checksums", "level"),
    [
        (True, False, False, "verified"),
        (False, True, True, "checksummed"),
        (False, True, False, "complete"),  # the server never checked a chunk
        (False, False, True, "complete"),  # one chunk went without a checksum
    ],
)
def test_the_level_is_what_the_server_proved(
    digest: bool, checksummed: bool, server_checksums: bool, level: str
) -> None:
    assert confirmation_level(digest, checksummed, server_checksums) == level


def test_only_an_answered_offset_of_the_whole_length_counts_as_acknowledged() -> None:
    now = "2026-03-02T00:00:00+00:00"
    done = _job(resume_url="http://tus/files/a", resume_offset=SIZE)
    part = _job(resume_url="http://tus/files/a", resume_offset=4096)
    assert starting_state(done, now)[0].acknowledged
    assert not starting_state(part, now)[0].acknowledged
    assert not starting_state(_job(resume_offset=SIZE), now)[0].acknowledged  # no upload
    state = starting_state(done, now)[0]
    state.begin("http://tus/files/b")  # a new upload holds nothing yet
    assert not state.acknowledged


@pytest.mark.parametrize(
    ("checksummed", "server_checksums", "wanted", "level", "enough"),
    [
        (True, True, "checksummed", "checksummed", True),
        (True, True, "complete", "checksummed", True),
        (False, False, "complete", "complete", True),
        (True, True, "verified", "checksummed", False),  # only a Repr-Digest proves that
        (False, True, "checksummed", "complete", False),  # a chunk went without a checksum
    ],
)
def test_a_failed_head_after_the_acknowledgement_leaves_its_level(
    checksummed: bool, server_checksums: bool, wanted: str, level: str, enough: bool
) -> None:
    state = TusState(url="u", offset=SIZE, checksummed=checksummed, need_head=True)
    state.acknowledged = True
    assert acknowledged_head_failed(state, server_checksums, wanted) == (level, enough)
    # The final PATCH answered the server's own sha-512: that proof stands without the HEAD.
    state.digest_seen = {"sha-512": b"d"}
    assert acknowledged_head_failed(state, server_checksums, wanted) == ("verified", True)


def test_the_directory_sink_does_not_load_the_http_client() -> None:
    code = "import sys, agent.sync.directory; print('requests' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


class _NoProgress:
    def url(self, url: str, expires_at: str | None) -> None:
        raise AssertionError("nothing was created")

    def offset(self, offset: int, checksummed: bool) -> None:
        raise AssertionError("nothing was sent")

    def forget(self) -> None:
        pass


def test_a_passing_os_error_is_retried_in_seconds_only_retry_attempts_times(
    tmp_path: Path,
) -> None:
    """A retryable failure that is no HTTP error (an I/O error, classify says it may pass)
    counts towards the bound of short retries like any other, so the attempt ends."""
    staged = tmp_path / "clip.mp4"
    staged.write_bytes(b"x" * 100)
    sink = TusSink(SyncConfig(kind="tus", endpoint="http://127.0.0.1:9/files", retry_attempts=3))
    sink.sleep = lambda _s: None
    calls = []

    def capabilities() -> ServerCaps:
        calls.append(1)
        if len(calls) > 50:  # unbounded: stop the test instead of hanging it
            raise ValueError("still retrying")
        raise OSError(errno.EIO, "Input/output error")

    sink.client.capabilities = capabilities  # type: ignore[method-assign]
    job = _job(resume_url="http://127.0.0.1:9/files/a")
    job = dataclasses.replace(job, path=staged, size=100)
    try:
        with pytest.raises(OSError) as raised:
            sink.send(job, _NoProgress())
    finally:
        sink.close()
    assert raised.value.errno == errno.EIO
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("before", "proven", "again"),
    [(0, True, True), (1, True, True), (2, True, False), (9, True, False), (0, False, False)],
)
def test_an_unprovable_upload_is_sent_again_twice_and_only_by_a_server_that_proved_others(
    before: int, proven: bool, again: bool
) -> None:
    """FRESH_UPLOADS (2) new uploads after the first unprovable one, then held; a server that
    never proved a digest to the station holds the file at its first unprovable upload."""
    assert reupload_unprovable(before, proven) is again
