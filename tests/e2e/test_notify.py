"""The daemon as systemd sees it: sd_notify datagrams on a real socket of the test.

With NOTIFY_SOCKET and WATCHDOG_USEC set, `dockagent run` says READY=1 once recovery is done
and its sources listen, then STATUS= with docked cameras and the queue, WATCHDOG=1 at half the
watchdog interval while a camera is taken in, and STOPPING=1 on SIGTERM, in that order. A camera
worker stalled on purpose (DOCKAGENT_STALL_AT) stops the pings after the stall limit, which is
what makes systemd kill and restart it.
"""

from __future__ import annotations

import itertools
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera, sealed_count, wait_until

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s


@dataclass
class Listener:
    """A datagram socket standing in for systemd's notification socket (sd_notify(3))."""

    path: Path
    messages: list[tuple[float, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode().split("\n")))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()

    def fields(self) -> list[str]:
        return [f for _, fields in list(self.messages) for f in fields]

    def times(self, wanted: str) -> list[float]:
        return [at for at, fields in list(self.messages) if wanted in fields]


def _configure(station: Station, spool: Path, stall_limit_s: int = 30) -> None:
    station.configure(f"""station_id = "NOTIFY"
[storage]
reserve_bytes = 0
[ingest]
wipe_policy = "never"
[devices]
sources = ["fake"]
fake_spool = "{spool}"
require_enrollment = false
drain_deadline_s = 2
[service]
stall_limit_s = {stall_limit_s}
""")


def _dock(spool: Path, serial: str, mountpoint: Path) -> None:
    dock_camera(spool, serial, mountpoint)


def _start(station: Station, tmp_path: Path, **env: str) -> tuple[Listener, DaemonProcess]:
    listener = Listener(tmp_path / "notify.sock")
    daemon = DaemonProcess(
        station.env(NOTIFY_SOCKET=str(listener.path), WATCHDOG_USEC=str(WATCHDOG_USEC), **env),
        tmp_path / "daemon.log",
    )
    return listener, daemon


def test_ready_status_watchdog_and_stopping_in_order(station: Station, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    _configure(station, spool)
    camera = tmp_path / "cam"
    write_camera(CameraSpec(serial="NTF001", days=1, files_per_day=6, file_size=256 << 10), camera)
    listener, daemon = _start(station, tmp_path)
    try:
        wait_until(lambda: "READY=1" in listener.fields(), 30, "READY=1")
        wait_until(lambda: len(listener.times("WATCHDOG=1")) >= 2, 10, "watchdog pings")
        _dock(spool, "NTF001", camera)
        daemon.wait_event("device.taken_in", timeout=60)
        sealed = sealed_count(station.data_dir, "NTF001")
        assert sealed > 0
        # The daemon uploads what it sealed (embedded default sink): all end up confirmed.
        wanted = (
            "STATUS=1 camera(s) docked; queue: 0 copying, 0 sealed, 0 uploading, 0 held, "
            f"{sealed} confirmed"
        )
        wait_until(
            lambda: any(f.startswith(wanted) for f in listener.fields()),
            30,
            "a STATUS= naming the docked camera and its confirmed files",
        )
        pings_before = len(listener.times("WATCHDOG=1"))
        wait_until(lambda: len(listener.times("WATCHDOG=1")) >= pings_before + 2, 5, "pings go on")
        assert daemon.stop(timeout=30) == 0
        wait_until(lambda: "STOPPING=1" in listener.fields(), 5, "STOPPING=1")
    finally:
        daemon.kill()
        listener.close()
    fields = listener.fields()
    ready = fields.index("READY=1")
    status = next(i for i, f in enumerate(fields) if f.startswith("STATUS=") and i > ready)
    watchdog = fields.index("WATCHDOG=1")
    stopping = fields.index("STOPPING=1")
    assert ready < status < watchdog < stopping, fields
    assert (
        fields[status]
        == "STATUS=0 camera(s) docked; queue: 0 copying, 0 sealed, 0 uploading, 0 held, 0 confirmed"
    )
    # Nothing but status after STOPPING=1: no ping claims a stopping daemon is healthy.
    assert all(not f.startswith(("WATCHDOG", "READY")) for f in fields[stopping:])
    # Pings come at about half the watchdog interval (sd_watchdog_enabled(3)).
    pings = listener.times("WATCHDOG=1")
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < WATCHDOG_USEC / 1e6, gaps


def test_a_stalled_worker_stops_the_watchdog_pings(station: Station, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    _configure(station, spool, stall_limit_s=2)
    camera = tmp_path / "cam"
    write_camera(CameraSpec(serial="STALL01", days=1, files_per_day=4), camera)
    listener, daemon = _start(station, tmp_path, DOCKAGENT_STALL_AT="copy.first_chunk")
    try:
        wait_until(lambda: len(listener.times("WATCHDOG=1")) >= 2, 30, "watchdog pings")
        _dock(spool, "STALL01", camera)
        stalled = daemon.wait_event("watchdog.stalled", timeout=30)
        assert "camera worker usb-STALL01: no progress for" in stalled["problems"][0]
        wait_until(
            lambda: any(f.startswith("STATUS=stalled") for f in listener.fields()),
            5,
            "a STATUS= saying the pings stopped",
        )
        stopped_at = listener.times(next(f for f in listener.fields() if "stalled" in f))[0]
        time.sleep(3 * WATCHDOG_USEC / 1e6)  # six ping intervals
        assert [t for t in listener.times("WATCHDOG=1") if t > stopped_at] == []
        # The worker is stuck for good: the daemon does not pretend otherwise on SIGTERM.
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 70  # EX_SOFTWARE: the drain timed out
        wait_until(lambda: "STOPPING=1" in listener.fields(), 5, "STOPPING=1")
    finally:
        daemon.kill()
        listener.close()


def test_a_megabyte_log_line_does_not_stop_the_pings(station: Station, tmp_path: Path) -> None:
    """A SYSTEM.LOG line of 1 MiB of letters without `=` held the GIL in a quadratic regex for
    hours: no pings (systemd would kill the daemon) and no other camera taken in. Now the line is
    one malformed line: pings keep their interval, both cameras are taken in and sealed."""
    spool = tmp_path / "spool"
    _configure(station, spool)
    hostile, plain = tmp_path / "hostile", tmp_path / "plain"
    spec = CameraSpec(serial="LONGLOG1", days=1, files_per_day=4, file_size=64 << 10)
    hostile_files = write_camera(spec, hostile)
    plain_files = write_camera(CameraSpec(serial="PLAIN01", days=1, files_per_day=3), plain)
    log = hostile / "LOG" / "SYSTEM.LOG"
    log.write_bytes(b"2026-11-27 08:00:00 FAULT " + b"a" * (1 << 20) + b"\n" + log.read_bytes())
    listener, daemon = _start(station, tmp_path)
    try:
        wait_until(lambda: len(listener.times("WATCHDOG=1")) >= 2, 30, "watchdog pings")
        docked_at = time.monotonic()
        _dock(spool, "LONGLOG1", hostile)
        _dock(spool, "PLAIN01", plain)
        for serial, files in (("LONGLOG1", hostile_files), ("PLAIN01", plain_files)):
            wait_until(
                lambda s=serial, f=files: sealed_count(station.data_dir, s) == len(f.entries),
                60,
                f"every file of {serial} sealed",
            )
        taken_in_s = time.monotonic() - docked_at
        assert taken_in_s < 60
        before = len([t for t in listener.times("WATCHDOG=1") if t < docked_at])
        wait_until(lambda: len(listener.times("WATCHDOG=1")) >= before + 3, 5, "pings go on")
        pings = [t for t in listener.times("WATCHDOG=1") if t >= docked_at]
        gaps = [b - a for a, b in itertools.pairwise([docked_at, *pings])]
        assert max(gaps) < WATCHDOG_USEC / 1e6, gaps
        assert daemon.stop(timeout=30) == 0
    finally:
        daemon.kill()
        listener.close()
