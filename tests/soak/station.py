"""The world the soak drives: the station seen from outside, the fake USB bus, the tus server,
the daemon and its incarnations.

The station is read as the checker reads it (read-only SQLite, never the agent's code); the
daemon is only started, killed and stopped as a process. Nothing here decides when to do it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.devices.fake import write_event
from scripts.simulator.cameras import MIB
from tests.soak.plan import SoakFailure
from tests.support.daemon import DaemonProcess
from tests.support.tus_servers import (
    SOAK_BLOCK,
    TusServer,
    free_port,
    sync_config,
    tus_node_server,
)

REPO = Path(__file__).resolve().parent.parent.parent


class Station:
    """The data directory as the checker sees it: read-only SQLite, never the agent's code."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.config = root / "dockagent.toml"
        self.spool = root / "usb-bus"
        self.wall_offset = root / "wall-offset"

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        db = self.data_dir / "dockagent.db"
        if not db.exists():
            return []
        for attempt in itertools.count():
            try:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            except sqlite3.OperationalError:
                if attempt > 20:
                    raise
                time.sleep(0.1)
                continue
            conn.row_factory = sqlite3.Row
            try:
                return list(conn.execute(sql, args))
            except sqlite3.OperationalError as exc:
                # No table yet (the daemon is creating the store) or busy: ask again.
                if attempt > 50:
                    raise SoakFailure(f"station database unreadable: {exc}") from exc
                time.sleep(0.1)
            finally:
                conn.close()
        raise AssertionError("unreachable")

    def count(self, sql: str) -> int:
        rows = self.query(sql)
        return int(rows[0][0]) if rows else 0

    def max_session_id(self, serial: str | None = None) -> int:
        if serial is None:
            rows = self.query("SELECT MAX(id) FROM sessions")
        else:
            rows = self.query("SELECT MAX(id) FROM sessions WHERE device_serial=?", (serial,))
        return int(rows[0][0] or 0) if rows else 0

    def sessions_after(self, serial: str, after: int) -> list[sqlite3.Row]:
        return self.query(
            "SELECT id, ended_at, outcome FROM sessions WHERE device_serial=? AND id>? ORDER BY id",
            (serial, after),
        )

    def rows_of(self, serial: str) -> dict[tuple[bytes, str], str]:
        """(camera path, sha256) -> state, for every hashed row of the camera."""
        out: dict[tuple[bytes, str], str] = {}
        for row in self.query(
            "SELECT camera_path, sha256, state FROM files WHERE device_serial=? "
            "AND sha256 IS NOT NULL",
            (serial,),
        ):
            key = (bytes(row["camera_path"]), str(row["sha256"]))
            if out.get(key) != "confirmed":
                out[key] = str(row["state"])
        return out

    def state_counts(self) -> dict[str, int]:
        return {
            str(r[0]): int(r[1])
            for r in self.query("SELECT state, COUNT(*) FROM files GROUP BY state")
        }

    def copying(self, session_id: int | None = None) -> bool:
        """Whether the station is copying a file (of that session) right now."""
        sql = "SELECT 1 FROM files WHERE state='copying'"
        args: tuple[Any, ...] = ()
        if session_id is not None:
            sql, args = sql + " AND last_session_id=?", (session_id,)
        return bool(self.query(sql + " LIMIT 1", args))

    def configure(self, endpoint: str) -> None:
        """The station's config: uploads to ENDPOINT (the fault proxy), wipes after a verified
        confirmation, the fake USB bus as its only device source."""
        config = sync_config(
            endpoint,
            wipe_policy="after_confirm",
            confirm_level="verified",
            chunk_bytes=MIB,
            max_parallel_uploads=2,
            connect_timeout_s=2,
            read_timeout_s=5,
            retry_attempts=3,
            retry_max_delay_s=4,
            purge_grace_s=10,
        ).replace('station_id = "TEST-STATION"', 'station_id = "SOAK-01"')
        config += (
            f'[devices]\nsources = ["fake"]\nfake_spool = "{self.spool}"\n'
            "require_enrollment = false\ndrain_deadline_s = 30\n"
            f'[service]\nmetrics_path = "{self.root / "dockagent.prom"}"\nmetrics_interval_s = 5\n'
        )
        self.config.write_text(config)

    def env(self) -> dict[str, str]:
        """The environment of the agent's processes: this station, this checkout's code."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKAGENT_")}
        env.update(
            DOCKAGENT_DATA_DIR=str(self.data_dir),
            DOCKAGENT_CONFIG=str(self.config),
            PYTHONPATH=str(REPO),
            # As systemd/dockagent.service runs the daemon (its memory is what the soak judges).
            MALLOC_ARENA_MAX="2",
        )
        return env


class Bus:
    """Plug and unplug cameras on the fake bus; events are named in order, because the fake
    source takes waiting events in name order (after a restart there may be several)."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self.lock = threading.Lock()
        self.seq = 0
        self.docked: dict[str, Path] = {}

    def _write(self, what: str, device: str, **fields: str) -> None:
        self.seq += 1
        write_event(self.spool, f"{self.seq:07d}-{what}-{device}", key=f"usb-{device}", **fields)

    def _insert(self, what: str, serial: str, root: Path) -> None:
        # The fields tests.support.daemon.dock_camera writes: a generic-profile camera.
        self._write(
            what,
            serial,
            action="inserted",
            vendor_id="2b0e",
            model_id="0a01",
            serial=serial,
            fs_type="vfat",
            usb_interfaces=":080650:",
            mountpoint=str(root),
        )

    def dock(self, serial: str, root: Path) -> None:
        with self.lock:
            self.docked[serial] = root
            self._insert("dock", serial, root)

    def undock(self, serial: str) -> None:
        with self.lock:
            root = self.docked.pop(serial, None)
            self._write("undock", serial, action="removed", mountpoint=str(root or ""))

    def reannounce(self) -> None:
        """A restarted daemon hears of the cameras still plugged in, as udev's enumeration
        tells a real one (the fake source only reads new event files)."""
        with self.lock:
            for serial, root in self.docked.items():
                self._insert("present", serial, root)


class TusControl:
    """The tus server, restartable on its port and its store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port(SOAK_BLOCK)  # never a test run's port (tus_servers)
        self.lock = threading.Lock()
        self.stack: contextlib.ExitStack | None = None
        self.server: TusServer | None = None

    @property
    def store_dir(self) -> Path:
        return self.root / "uploads"

    def start(self) -> None:
        for attempt in range(10):
            stack = contextlib.ExitStack()
            try:
                self.server = stack.enter_context(tus_node_server(self.root, self.port))
            except RuntimeError:
                stack.close()
                if attempt == 9:
                    raise
                time.sleep(0.5)  # the port may still be held by the process just stopped
                continue
            self.stack = stack
            return

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.close()
            self.stack = None

    def restart(self, down_s: float) -> None:
        with self.lock:
            self.stop()
            time.sleep(down_s)
            self.start()


@dataclass
class Incarnation:
    index: int
    pid: int
    started: float  # monotonic
    base_session_id: int  # sessions above this id were opened by this process
    sessions_at_start: int  # soak docks before it started
    ended: float | None = None
    how: str = "running"


class DaemonControl:
    def __init__(self, station: Station, bus: Bus, env: dict[str, str]) -> None:
        self.station = station
        self.bus = bus
        self.env = env
        self.lock = threading.RLock()
        self.proc: DaemonProcess | None = None
        self.incarnations: list[Incarnation] = []
        self.sessions = lambda: 0  # soak docks so far (set by the soak)

    @property
    def current(self) -> Incarnation:
        return self.incarnations[-1]

    def start(self) -> None:
        with self.lock:
            base = self.station.max_session_id()
            index = len(self.incarnations) + 1
            proc = DaemonProcess(self.env, self.station.root / f"daemon-{index:03d}.log")
            self.proc = proc
            self.incarnations.append(
                Incarnation(index, proc.proc.pid, time.monotonic(), base, self.sessions())
            )
            proc.wait_event("daemon.started", timeout=120)

    def kill_and_restart(self) -> None:
        with self.lock:
            if self.proc is None:
                raise SoakFailure("no daemon to kill")
            self.proc.kill()
            self.current.ended, self.current.how = time.monotonic(), "SIGKILL"
            self.start()
            self.bus.reannounce()

    def stop(self) -> int:
        with self.lock:
            if self.proc is None:
                raise SoakFailure("no daemon to stop")
            code = self.proc.stop(timeout=120)
            self.current.ended, self.current.how = time.monotonic(), f"SIGTERM, exit {code}"
            return code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.proc.poll() is None

    def check_alive(self) -> None:
        """Raise if the daemon exited without being told to (not during a kill and restart:
        that holds the lock)."""
        with self.lock:
            if self.proc is not None and self.proc.proc.poll() is not None:
                code = self.proc.proc.returncode
                raise SoakFailure(f"the daemon exited on its own (exit {code})")
