"""The station's wall clock stepped by two days, either way, under a running daemon.

The daemon runs as a process over the fake USB bus and uploads through the fault proxy to a real
@tus/server; its wall clock is stepped through the test hook $DOCKAGENT_TEST_WALL_OFFSET_FILE
(agent/core/wallclock.py). A step forward purges no staged copy before its grace, wipes nothing the
policy would not wipe anyway and neither fires retries early nor stops them; a step back does not
stall a retry for two days: it comes within its backoff, seconds later, and the files end
confirmed with the camera's hash. Checked from the logs' own (unstepped) timestamps, the
database read apart from the agent, the server's stored bytes and the cameras' files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera, wait_until
from tests.support.evidence import rows
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.nothing_lost import (
    Manifest,
    assert_nothing_lost,
    tus_file_store_objects,
)
from tests.support.sealed_mode import plain_sha256
from tests.support.tus_servers import TusServer, sync_config, tus_node_server

TWO_DAYS = 2 * 86400
# Logged wake-ups of the upload loop are at most 2 s apart; one failing attempt takes little.
LATE_SLACK_S = 3.5
EARLY_SLACK_S = 0.2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TusServer]:
    """A server of this test's own, so the checker can say nothing at it is unknown."""
    with tus_node_server(tmp_path / "tus-node") as srv:
        yield srv


def _nothing_lost(
    station: Station, server: TusServer, manifest: Manifest, cameras: dict[str, Path]
) -> None:
    """The independent checker over the cameras as `_camera` recorded them before any dock."""
    report = assert_nothing_lost(
        manifest,
        station.data_dir,
        cameras=cameras,
        sink=tus_file_store_objects(server.store_dir),
    )
    assert report.at_sink == len(manifest.files), report.summary()


def _spec(serial: str) -> CameraSpec:
    return CameraSpec(
        serial=serial,
        days=1,
        files_per_day=3,
        file_size=192 << 10,
        size_jitter=0,
        split_every=0,
        important_every=0,
        audio_every=0,
        photo_every=0,
        other_files=0,
    )


class WallOffset:
    """The daemon's wall-clock offset, written atomically (the daemon re-reads it on change)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set(0)

    def set(self, seconds: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{seconds}\n")
        os.replace(tmp, self.path)


def _start(
    station: Station, proxy: FaultProxy, tmp_path: Path, **sync: object
) -> tuple[DaemonProcess, WallOffset, Path]:
    spool = tmp_path / "spool"
    settings: dict[str, object] = {
        "confirm_level": "verified",
        "max_parallel_uploads": 1,
        "retry_attempts": 1,
        "connect_timeout_s": 2,
        "read_timeout_s": 2,
    }
    settings.update(sync)
    station.configure(
        sync_config(proxy.endpoint, wipe_policy="after_confirm", **settings)
        + f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
    )
    offset = WallOffset(tmp_path / "wall-offset")
    env = station.env(DOCKAGENT_TEST_WALL_OFFSET_FILE=str(offset.path))
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    daemon.wait_event("daemon.started")
    assert daemon.wait_event("clock.offset_injected")["path"] == str(offset.path)
    return daemon, offset, spool


def _camera(tmp_path: Path, serial: str, manifest: Manifest) -> tuple[Path, dict[bytes, str]]:
    """A camera, its files recorded into `manifest` (hashed here, before the agent sees them),
    and the SHA-256 of each by its raw relative name."""
    cam = tmp_path / serial
    write_camera(_spec(serial), cam)
    mine = Manifest.of_camera(serial, cam).files
    manifest.files += mine
    return cam, {f.name: f.sha256 for f in mine}


def _files(station: Station, serial: str) -> list[dict[str, Any]]:
    return rows(station.data_dir, "SELECT * FROM files WHERE device_serial=?", (serial,))


def _all_confirmed(station: Station, serial: str, expected: dict[bytes, str]) -> bool:
    held = _files(station, serial)
    return len(held) == len(expected) and all(r["state"] == "confirmed" for r in held)


def _when(event: dict[str, Any]) -> float:
    """The log line's own timestamp: structlog reads the host clock, which the hook leaves be."""
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def _events(daemon: DaemonProcess, name: str, since: float = 0.0) -> list[dict[str, Any]]:
    return [e for e in daemon.events() if e.get("event") == name and _when(e) >= since]


def _failing(proxy: FaultProxy) -> None:
    """The server answers 503 to every upload attempt (each one starts with OPTIONS)."""
    proxy.arm(*[Fault("status", "OPTIONS", nth=1, status=503) for _ in range(500)])


def _check_retry_timing(daemon: DaemonProcess) -> int:
    """Each deferred file was tried again no sooner than its backoff and not much later."""
    events = daemon.events()
    checked = 0
    for index, event in enumerate(events):
        if event.get("event") != "upload.deferred":
            continue
        deferred_at, backoff = _when(event), float(event["retry_in_s"])
        after = next(
            (
                e
                for e in events[index + 1 :]
                if e.get("event") == "upload.started" and e.get("file_id") == event["file_id"]
            ),
            None,
        )
        if after is None:
            continue
        waited = _when(after) - deferred_at
        assert waited >= backoff - EARLY_SLACK_S, (event["file_id"], waited, backoff)
        assert waited <= backoff + LATE_SLACK_S, (event["file_id"], waited, backoff)
        checked += 1
    return checked


def _check_confirmed(
    station: Station, server: TusServer, serial: str, expected: dict[bytes, str]
) -> None:
    for row in _files(station, serial):
        assert row["state"] == "confirmed" and row["confirm_level"] == "verified", row["id"]
        camera_sha = expected[bytes(row["camera_path"])]
        assert row["sha256"] == camera_sha
        assert server.plain_sha256(str(row["sink_ref"]), station.identity) == camera_sha


def _check_wiped_only_confirmed(
    station: Station, server: TusServer, cam: Path, serial: str, expected: dict[bytes, str]
) -> None:
    """Every file gone from the camera is confirmed, held by the server with the camera hash."""
    by_path = {bytes(r["camera_path"]): r for r in _files(station, serial)}
    for rel, camera_sha in expected.items():
        if (cam / rel.decode()).exists():
            continue
        row = by_path[rel]
        assert rel.startswith(b"RECORD/"), rel
        assert row["state"] == "confirmed" and row["wiped_at"], rel
        assert server.plain_sha256(str(row["sink_ref"]), station.identity) == camera_sha


def _check_nothing_purged(station: Station) -> None:
    for row in rows(station.data_dir):
        staged = station.staging / str(row["staged_path"])
        assert row["purged_at"] is None, row["id"]
        assert plain_sha256(staged, station.identity) == row["sha256"], row["id"]


def test_a_step_forward_purges_nothing_early_and_keeps_the_retry_schedule(
    station: Station, server: TusServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    daemon, offset, spool = _start(
        station, proxy, tmp_path, purge_grace_s=3600, retry_max_delay_s=5
    )
    manifest = Manifest()  # what the cameras held before any dock
    try:
        # Camera A: every file confirmed (grace one hour); the policy may wipe it.
        cam_a, expected_a = _camera(tmp_path, "JMPA01", manifest)
        dock_camera(spool, "JMPA01", cam_a)
        wait_until(lambda: _all_confirmed(station, "JMPA01", expected_a), 20, "A confirmed")
        # Camera B: the server fails every attempt; its files wait 2.5-5 s between tries.
        _failing(proxy)
        cam_b, expected_b = _camera(tmp_path, "JMPB01", manifest)
        dock_camera(spool, "JMPB01", cam_b, name="b")
        b_ids: set[int] = set()

        def b_deferred() -> bool:
            b_ids.update(int(r["id"]) for r in _files(station, "JMPB01"))
            done = {e["file_id"] for e in _events(daemon, "upload.deferred")}
            return len(b_ids) == len(expected_b) and b_ids <= done

        wait_until(b_deferred, 20, "every file of B deferred once")
        # Right after a deferral, so some backoff is still running when the clock steps.
        seen = len(_events(daemon, "upload.deferred"))
        wait_until(lambda: len(_events(daemon, "upload.deferred")) > seen, 10, "a deferral")
        offset.set(TWO_DAYS)
        stepped_at = time.time()
        jumped = daemon.wait_event("clock.jumped", timeout=10)
        assert abs(float(jumped["step_s"]) - TWO_DAYS) < 5

        # Retries go on, each after its backoff: every file of B is tried again after the step.
        def b_retried() -> bool:
            again = {e["file_id"] for e in _events(daemon, "upload.started", stepped_at)}
            return b_ids <= again

        wait_until(b_retried, 5 + LATE_SLACK_S + 2, "every file of B tried after the step")
        time.sleep(2)  # more passes of the loop on the stepped clock
        assert _check_retry_timing(daemon) >= len(b_ids)  # each pair across the step, at least
        _check_nothing_purged(station)
        assert not _events(daemon, "staging.purged")
        _check_wiped_only_confirmed(station, server, cam_a, "JMPA01", expected_a)
        _check_wiped_only_confirmed(station, server, cam_b, "JMPB01", expected_b)
        assert all((cam_b / rel.decode()).exists() for rel in expected_b)
        # The server comes back: B drains on its schedule; still nothing purged.
        proxy.clear()
        wait_until(lambda: _all_confirmed(station, "JMPB01", expected_b), 5 + LATE_SLACK_S + 2, "B")
    finally:
        assert daemon.stop() == 0
    _check_retry_timing(daemon)
    _check_confirmed(station, server, "JMPA01", expected_a)
    _check_confirmed(station, server, "JMPB01", expected_b)
    _check_nothing_purged(station)
    _check_wiped_only_confirmed(station, server, cam_a, "JMPA01", expected_a)
    _check_wiped_only_confirmed(station, server, cam_b, "JMPB01", expected_b)
    _nothing_lost(station, server, manifest, {"JMPA01": cam_a, "JMPB01": cam_b})


def test_a_step_back_does_not_stall_retries(
    station: Station, server: TusServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    _failing(proxy)
    daemon, offset, spool = _start(
        station, proxy, tmp_path, purge_grace_s=3600, retry_max_delay_s=3
    )
    manifest = Manifest()  # what the cameras held before any dock
    try:
        cam, expected = _camera(tmp_path, "JMPC01", manifest)
        dock_camera(spool, "JMPC01", cam)
        ids: set[int] = set()

        def deferred() -> bool:
            ids.update(int(r["id"]) for r in _files(station, "JMPC01"))
            done = {e["file_id"] for e in _events(daemon, "upload.deferred")}
            return len(ids) == len(expected) and ids <= done

        wait_until(deferred, 20, "every file deferred once")
        # Every file now waits with a due time on the old clock, two days ahead of the new one.
        offset.set(-TWO_DAYS)
        jumped = daemon.wait_event("clock.jumped", timeout=10)
        assert abs(float(jumped["step_s"]) + TWO_DAYS) < 5
        proxy.clear()
        healed_at = time.time()
        wait_until(lambda: _all_confirmed(station, "JMPC01", expected), 3 + LATE_SLACK_S + 2, "C")
        # The pool writes (and fsyncs) a file's receipt before it logs upload.confirmed, so the
        # rows can say confirmed a moment before the last line is in the log.
        wait_until(
            lambda: {e["file_id"] for e in _events(daemon, "upload.confirmed", healed_at)} >= ids,
            5,
            "every confirmation logged",
        )
        confirmed = _events(daemon, "upload.confirmed", healed_at)
        assert {e["file_id"] for e in confirmed} == ids
        assert max(_when(e) for e in confirmed) - healed_at < 3 + LATE_SLACK_S
        assert _check_retry_timing(daemon) >= len(ids)
        for row in _files(station, "JMPC01"):
            assert row["next_attempt_at"] is None
    finally:
        assert daemon.stop() == 0
    _check_confirmed(station, server, "JMPC01", expected)
    _check_nothing_purged(station)
    _check_wiped_only_confirmed(station, server, cam, "JMPC01", expected)
    _nothing_lost(station, server, manifest, {"JMPC01": cam})
