"""The pieces of running as a service, alone: sd_notify datagrams (path and abstract sockets),
the watchdog's liveness verdict, the [service] configuration and the metrics text format."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.core import config
from agent.core.errors import ConfigError
from agent.health.installation import unit_seconds
from agent.reporting.metrics import MetricsWriter, Snapshot, render
from agent.runtime.liveness import Liveness
from agent.runtime.notify import Notifier, watchdog_interval_s


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_notify_sends_one_datagram_per_call_to_a_path_socket(tmp_path: Path) -> None:
    with _receiver(str(tmp_path / "notify")) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert notifier.send("READY=1", "STATUS=two\nlines")
        assert sock.recv(4096) == b"READY=1\nSTATUS=two lines"


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"dockagent-test-{os.getpid()}-{threading.get_ident()}"
    with _receiver("\0" + name) as sock:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_without_a_manager_or_with_a_gone_one_never_fails(tmp_path: Path) -> None:
    assert not Notifier({}).enabled
    assert Notifier({}).send("READY=1") is False
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert gone.send("READY=1") is False
    assert gone.send("READY=1") is False  # logged once, never raised
    assert Notifier({"NOTIFY_SOCKET": "vsock:2:1"}).send("READY=1") is False


def test_watchdog_interval_honours_watchdog_pid() -> None:
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "90000000"}) == 90.0
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval_s(mine) == 2.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_worker_silent_past_the_limit_is_stalled_and_beating_revives_it() -> None:
    clock = _Clock()
    live = Liveness(stall_limit_s=10, monotonic=clock)
    assert live.check().healthy
    with live.working("camera worker CAM1"):
        clock.now += 9
        assert live.check().healthy
        clock.now += 2
        verdict = live.check()
        assert not verdict.healthy
        assert verdict.problems == ["camera worker CAM1: no progress for 11 s"]
        live.beat()
        assert live.check().healthy
    clock.now += 100
    assert live.check().healthy  # a finished job is no longer watched


def test_a_beat_from_another_thread_does_not_count_for_a_stalled_worker() -> None:
    clock = _Clock()
    live = Liveness(stall_limit_s=5, monotonic=clock)
    inside = threading.Event()
    release = threading.Event()

    def worker() -> None:
        with live.working("camera worker X"):
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert inside.wait(5)
        clock.now += 6
        live.beat()  # the main thread's beat is not the worker's progress
        assert not live.check().healthy
    finally:
        release.set()
        thread.join()


def test_a_watched_thread_that_dies_fails_the_check() -> None:
    live = Liveness(stall_limit_s=60)
    stop = threading.Event()
    with live.watching_new_threads("source"):
        thread = threading.Thread(target=stop.wait, name="fake-source")
        thread.start()
    assert live.check().healthy
    stop.set()
    thread.join()
    verdict = live.check()
    assert verdict.problems == ["source thread fake-source has died"]


def test_service_section_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    env = {"DOCKAGENT_DATA_DIR": str(tmp_path / "d")}
    path.write_text('[service]\nmetrics_path = "relative.prom"\n')
    with pytest.raises(ConfigError, match=r"service.metrics_path: must be an absolute path"):
        config.load(path, env)
    path.write_text("[service]\nunconfirmed_warn_h = 100\nunconfirmed_bad_h = 10\n")
    with pytest.raises(ConfigError, match="unconfirmed_warn_h: must not be above"):
        config.load(path, env)
    path.write_text("[service]\nstall_limit_s = 0\n")
    with pytest.raises(ConfigError, match="stall_limit_s: must be at least 1"):
        config.load(path, env)
    path.write_text(f'[service]\nmetrics_path = "{tmp_path}/m.prom"\nstall_limit_s = 30\n')
    assert config.load(path, env).service.stall_limit_s == 30


def test_the_metrics_text_parses_with_prometheus_client() -> None:
    snap = Snapshot(
        taken_at=1_700_000_100.5,
        states={"sealed": 3, "held": 1},
        bytes_awaiting_upload=12345,
        oldest_unconfirmed_at=1_700_000_000.0,
        last_confirmed_at=0.0,
        cameras_docked=2,
        refusals=4,
        custody_records=9,
        clock_synchronised=True,
        readiness={"not ready": 1, "ready": 1},
        alarms={"battery": 0, "drift": 1},
    )
    families = {f.name: f for f in text_string_to_metric_families(render(snap))}
    value = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert value[("dockagent_files", (("state", "held"),))] == 1
    assert value[("dockagent_oldest_unconfirmed_age_seconds", ())] == 100.5
    assert value[("dockagent_refused_devices_total", ())] == 4
    assert families["dockagent_refused_devices"].type == "counter"
    assert value[("dockagent_cameras_by_readiness", (("readiness", "not ready"),))] == 1
    assert value[("dockagent_camera_alarms", (("kind", "drift"),))] == 1
    assert snap.status_line() == (
        "2 camera(s) docked; queue: 0 copying, 3 sealed, 0 uploading, 1 held, 0 confirmed; "
        "oldest unconfirmed 0.0 h"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("TimeoutStopSec=60\n", 60), ("TimeoutStopSec = 2min 30s\n", 150), ("Other=1\n", None)],
)
def test_unit_time_spans(text: str, seconds: float | None) -> None:
    assert unit_seconds(text, "TimeoutStopSec") == seconds


def test_metrics_file_is_replaced_whole_and_a_failure_never_raises(tmp_path: Path) -> None:
    snap = Snapshot(1.0, {}, 0, 0.0, 0.0, 0, 0, 0, False)
    target = tmp_path / "textfile" / "dockagent.prom"
    writer = MetricsWriter(str(target))
    writer.write(snap)  # the collector's directory is missing: logged, not raised
    assert not target.exists()
    target.parent.mkdir()
    writer.write(snap)
    assert target.read_text() == render(snap)
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["dockagent.prom"]  # no temp left


def test_an_idle_main_loop_waits_no_longer_than_the_next_watchdog_ping_or_status(
    tmp_path: Path,
) -> None:
    """The daemon's main loop, idle, sleeps until the service has something to do (agent.runtime
    .daemon): never past the next WATCHDOG=1 (sd_watchdog_enabled(3): systemd restarts a
    service whose pings stop) nor the next STATUS= line."""
    from agent.runtime.service import STATUS_EVERY_S, ServiceReporter
    from agent.store import Store

    path = tmp_path / "c.toml"
    path.write_text("[service]\nmetrics_interval_s = 60\n")
    cfg = config.load(path, {"DOCKAGENT_DATA_DIR": str(tmp_path / "d")})
    now = [100.0]
    reporter = ServiceReporter(
        cfg, Liveness(cfg.service.stall_limit_s), {"WATCHDOG_USEC": "3000000"}, lambda: now[0]
    )
    store = Store.open(tmp_path, create=True)
    try:
        reporter.ready(store)
        assert reporter.seconds_to_next() == 0.0  # the first ping is due at once
        reporter.tick(store)
        assert reporter.seconds_to_next() == 1.5  # half the 3 s watchdog
        now[0] += 1.5
        assert reporter.seconds_to_next() == 0.0
        reporter.tick(store)
        assert reporter.seconds_to_next() == STATUS_EVERY_S - 1.5  # the status line first
        now[0] += 60.0
        assert reporter.seconds_to_next() == 0.0  # overdue is now, never negative
    finally:
        store.close()
