"""Hostile tus servers: answers that would exhaust the station or fool it.

A gzip bomb, an endless body and an answer dripped a byte at a time (all from the loopback
fault proxy in front of the real @tus/server) each end within a bounded time and memory; hostile
header values (superscript digits, 4,300-digit numbers, year-9999 dates, a Location that does
not parse) are retried with a reason, never a crash; a server that stores nothing but echoes
the sha256 of the metadata is never confirmed `verified`; an upload URL of another origin in a
row never receives a request, let alone the bearer token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import socket
import sqlite3
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.core import config
from agent.runtime.liveness import Liveness
from agent.store import Store
from agent.sync.pool import Uploader
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.cli import run_cli
from tests.support.evidence import rows
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.lying_tus import lying_tus_server
from tests.support.tus_servers import LOOPBACK, TusServer, sync_config

MIB = 1 << 20
# The bound the station must stay under while a hostile server answers.
MEMORY_LIMIT_KIB = 256 << 10
TIME_LIMIT_S = 60.0
TOKEN = "station-token-not-for-strangers"
SPEC = CameraSpec(
    serial="HST01",
    days=1,
    files_per_day=2,
    file_size=3 * MIB // 2,
    size_jitter=0,
    split_every=0,
    important_every=0,
    audio_every=0,
    photo_every=0,
    other_files=0,
)
_TUS_HEAD = "HTTP/1.1 200 OK\r\nTus-Resumable: 1.0.0\r\nTus-Version: 1.0.0\r\n"


@functools.cache
def _gzip_bomb() -> bytes:
    """512 MiB of zeros in about 509 KiB of gzip."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    return b"".join([*(packer.compress(zeros) for _ in range(512)), packer.flush()])


def _hostile_answer(kind: str) -> Fault:
    if kind == "gzip-bomb":
        bomb = _gzip_bomb()
        head = f"{_TUS_HEAD}Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
        return Fault("raw", "OPTIONS", raw=head.encode() + bomb)
    if kind == "endless-body":
        head = f"{_TUS_HEAD}Content-Length: {512 * MIB}\r\n\r\n"
        return Fault("endless", "OPTIONS", raw=head.encode())
    # A header line that never ends, one byte every half second (the read timeout is 2 s).
    return Fault("drip", "OPTIONS", raw=f"{_TUS_HEAD}X-Drip: {'a' * 10_000}".encode(), stall_s=0.5)


def _configure(station: Station, endpoint: str, **extra: object) -> None:
    token = station.root / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    settings: dict[str, object] = {
        "confirm_level": "verified",
        "chunk_bytes": MIB,
        "max_parallel_uploads": 1,
        "read_timeout_s": 2,
        "connect_timeout_s": 2,
        "retry_attempts": 3,
        "bearer_token_file": str(token),
    }
    settings.update(extra)
    station.configure(sync_config(endpoint, **settings))


def _import(station: Station, tmp_path: Path) -> Path:
    write_camera(SPEC, tmp_path / "cam")
    proc = station.run("import", str(tmp_path / "cam"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp_path / "cam"


def _sync_measured(station: Station, tmp_path: Path) -> tuple[int, str, float, int]:
    """`sync --once`: exit code, stderr, seconds and peak memory (KiB) of the agent's process."""
    peak = tmp_path / "peak-rss"
    start = time.monotonic()
    proc = run_cli(
        ("sync", "--once"),
        env=station.env(),
        log=station.cli_log,
        timeout=3 * TIME_LIMIT_S,
        prefix=(sys.executable, "-m", "tests.support.peak_rss", str(peak), "--"),
    )
    seconds = time.monotonic() - start
    return proc.returncode, proc.stderr, seconds, int(peak.read_text())


def _all_confirmed_and_stored(station: Station, server: TusServer) -> None:
    for row in rows(station.data_dir):
        assert row["state"] == "confirmed", (row["id"], row["state"], row["reason"])
        assert row["confirm_level"] == "verified"
        assert server.plain_sha256(str(row["sink_ref"]), station.identity) == row["sha256"]


@pytest.mark.parametrize("kind", ["gzip-bomb", "endless-body", "drip"])
def test_a_hostile_answer_ends_in_bounded_time_and_memory(
    station: Station, server: TusServer, proxy: FaultProxy, tmp_path: Path, kind: str
) -> None:
    _configure(station, proxy.endpoint)
    _import(station, tmp_path)
    proxy.arm(_hostile_answer(kind))
    code, err, seconds, peak_kib = _sync_measured(station, tmp_path)
    assert not proxy.unfired()
    assert seconds < TIME_LIMIT_S, seconds
    assert peak_kib <= MEMORY_LIMIT_KIB, f"peak {peak_kib} KiB"
    # The answer was a protocol error, retried with its reason; the next answer was sound.
    assert code == 0, err
    reason = {
        "gzip-bomb": "Content-Encoding 'gzip', not identity",
        "endless-body": "answer is longer than 65536 bytes",
        "drip": "OPTIONS took longer than 4 s",
    }[kind]
    assert '"upload.retried"' in err and reason in err, err
    _all_confirmed_and_stored(station, server)


# Hostile header values on answers of the real server: each is a protocol error, retried with
# its reason (a HEAD, a new POST), never an uncaught ValueError or OverflowError.
HOSTILE_HEADERS = {
    "superscript-offset": (
        Fault("headers", "PATCH", nth=2, headers={"Upload-Offset": "\u00b2"}),
        "Upload-Offset is not a number of at most 19 ASCII digits",
    ),
    "4300-digit-offset": (
        Fault("headers", "PATCH", nth=2, headers={"Upload-Offset": "9" * 4300}),
        "Upload-Offset is not a number of at most 19 ASCII digits",
    ),
    "30-digit-length": (
        Fault("headers", "PATCH", nth=2, headers={"Upload-Length": "1" * 30}),
        "Upload-Length is not a number of at most 19 ASCII digits",
    ),
    "superscript-max-size": (
        Fault("headers", "OPTIONS", nth=1, headers={"Tus-Max-Size": "\u00b3"}),
        "Tus-Max-Size is not a number",
    ),
    "location-that-does-not-parse": (
        Fault("headers", "POST", nth=1, headers={"Location": "http://[::1/files/x"}),
        "does not parse",
    ),
    "year-9999-retry-after": (
        Fault(
            "status",
            "PATCH",
            nth=2,
            status=503,
            headers={
                "Retry-After": "Fri, 31 Dec 9999 23:59:59 -0100",
                "Date": "Fri, 31 Dec 9999 23:00:00 -0100",
            },
        ),
        "PATCH answered 503",
    ),
    "superscript-retry-after": (
        Fault("status", "PATCH", nth=2, status=503, headers={"Retry-After": "\u00b9"}),
        "PATCH answered 503",
    ),
    "overlong-repr-digest": (
        Fault("headers", "PATCH", nth=2, headers={"Repr-Digest": "sha-256=:" + "A" * 5000 + ":"}),
        "Repr-Digest is longer than 4096 characters",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_hostile_header_values_are_retried_with_a_reason(
    station: Station, server: TusServer, proxy: FaultProxy, tmp_path: Path, case: str
) -> None:
    fault, reason = HOSTILE_HEADERS[case]
    _configure(station, proxy.endpoint)
    _import(station, tmp_path)
    proxy.arm(fault)
    proc = station.run("sync", "--once", timeout=3 * TIME_LIMIT_S)
    assert not proxy.unfired()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"upload.retried"' in proc.stderr and reason in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "worker_failed" not in proc.stderr
    _all_confirmed_and_stored(station, server)


@pytest.mark.parametrize("level", ["verified", "checksummed"])
def test_a_server_that_stores_nothing_is_never_confirmed_beyond_complete(
    station: Station, tmp_path: Path, level: str
) -> None:
    with lying_tus_server() as (endpoint, lies):
        _configure(station, endpoint, purge_grace_s=0, confirm_level=level)
        _import(station, tmp_path)
        proc = station.run("sync", "--once")
    assert lies.patch_bytes > 0  # it was sent the bytes, and dropped them
    # It answered the full offset and the metadata's sha256 as Repr-Digest: no sha-512, so
    # never `verified`; where it claimed bytes it was never sent, not even `checksummed`.
    assert proc.returncode == 3, proc.stdout + proc.stderr
    held = 0
    for row in rows(station.data_dir):
        if level == "checksummed" and row["size"] <= MIB:
            # One PATCH carried every byte under its checksum: that is all `checksummed`
            # proves (README: no level proves the server keeps the bytes).
            assert (row["state"], row["confirm_level"]) == ("confirmed", "checksummed")
            continue
        held += 1
        assert row["state"] == "held", (row["id"], row["state"])
        assert f"cannot confirm at level {level}" in row["reason"]
        if row["size"] > MIB:
            assert "only complete" in row["reason"]
        assert row["confirmed_at"] is None and row["purged_at"] is None
        assert (station.staging / str(row["staged_path"])).exists()
    assert held >= 2  # the two recordings of 1.5 MiB at least


@pytest.fixture
def foreign_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback listener of another origin: (port, what each connection sent first)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    listener.settimeout(0.1)
    seen: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    seen.append(conn.recv(65536))
                except OSError:
                    seen.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), seen
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_stored_url_of_another_origin_never_receives_the_token(
    station: Station,
    server: TusServer,
    proxy: FaultProxy,
    tmp_path: Path,
    foreign_listener: tuple[int, list[bytes]],
) -> None:
    port, seen = foreign_listener
    _configure(station, proxy.endpoint)
    _import(station, tmp_path)
    target = rows(station.data_dir)[0]["id"]
    # As if a row (or a receipt a rebuild took it from) held an upload URL of another host.
    with sqlite3.connect(station.data_dir / "dockagent.db") as db:
        db.execute(
            "UPDATE files SET upload_sink=?, upload_url=?, upload_offset=0 WHERE id=?",
            (proxy.endpoint, f"http://{LOOPBACK}:{port}/files/stolen", target),
        )
    proc = station.run("sync", "--once")
    assert seen == [], seen  # not one connection, so no token and no evidence
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout
    for row in rows(station.data_dir):
        if row["id"] == target:
            assert row["state"] == "held"
            assert f"another origin (127.0.0.1:{port}); nothing was sent there" in row["reason"]
        else:
            assert row["state"] == "confirmed"
    assert set(proxy.tokens_seen) == {f"Bearer {TOKEN}"}


def test_upload_workers_are_watched_and_a_dripping_upload_holds_no_other(
    station: Station, server: TusServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Under the daemon's liveness (stall limit 1 s): a worker whose request drips stays within
    its own limit (one request's deadline), the other worker uploads meanwhile, and a worker
    silent past its limit is declared."""
    _configure(station, proxy.endpoint, max_parallel_uploads=2)
    _import(station, tmp_path)
    cfg = config.load(station.config_path, station.env())
    shift = [0.0]
    liveness = Liveness(1.0, monotonic=lambda: time.monotonic() + shift[0])
    uploader = Uploader(cfg, working=liveness.working, beat=liveness.beat)
    # The first POST drips its answer; its request's deadline is 4 s.
    proxy.arm(Fault("drip", "POST", raw=f"{_TUS_HEAD}X-Drip: {'a' * 10_000}".encode(), stall_s=0.5))

    def sync_once() -> None:
        store = Store.open(cfg.data_path, create=False)  # a store is used on its own thread
        try:
            uploader.run_once(store)
        finally:
            store.close()

    run = threading.Thread(target=sync_once, daemon=True)
    run.start()
    deadline = time.monotonic() + TIME_LIMIT_S
    while not any(e.fault == "drip" for e in proxy.exchanges):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(2.5)  # the dripping worker has been silent longer than the stall limit
    during = liveness.check()
    confirmed_during = {r["id"] for r in rows(station.data_dir) if r["state"] == "confirmed"}
    shift[0] = 10_000.0  # as if nothing had moved for hours
    stalled = liveness.check()
    shift[0] = 0.0
    run.join(TIME_LIMIT_S)
    assert not run.is_alive()
    assert during.healthy, during.describe()
    assert confirmed_during, "the other worker uploaded nothing while one request dripped"
    assert not stalled.healthy and "upload worker" in stalled.describe()
    assert not proxy.unfired()
    _all_confirmed_and_stored(station, server)


def test_a_sha512_that_does_not_match_holds_the_file_with_an_alarm(
    station: Station, server: TusServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    _configure(station, proxy.endpoint)
    _import(station, tmp_path)
    wrong = base64.b64encode(hashlib.sha512(b"not the evidence").digest()).decode()
    # The final PATCH of the first recording answers a sha-512 of other bytes.
    proxy.arm(Fault("headers", "PATCH", nth=2, headers={"Repr-Digest": f"sha-512=:{wrong}:"}))
    proc = station.run("sync", "--once")
    assert not proxy.unfired()
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "upload.digest_mismatched" in proc.stderr
    held = [r for r in rows(station.data_dir) if r["state"] == "held"]
    assert len(held) == 1 and "Repr-Digest sha-512" in held[0]["reason"]
    assert held[0]["purged_at"] is None
