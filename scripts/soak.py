"""`scripts/soak`: hundreds of dock sessions with random faults, then "nothing lost" and flatness.

The real daemon (`dockagent run`) over the fake USB bus, a pool of simulated directory cameras
(a few serials, new recordings before every dock), uploading through a fault proxy to a real
@tus/server that restarts now and then. About one session in four carries a fault: SIGKILL of
the daemon and a restart, a tus server restart, an undock while copying, the station's wall
clock stepped by two days, a connection cut or a 5xx from the proxy. Then faults stop, every
camera docks once more until it is confirmed and wiped, the daemon stops cleanly, and the
independent checker (tests/support/nothing_lost.py) and `dockagent verify` judge the result.
Exit 0 only if nothing is lost and the daemon's memory, open files and threads stayed flat
(FLAT_RULE); 1 otherwise; 2 for bad arguments. It never runs in the default test suite
(tests/e2e/test_soak_short.py runs a 20-second version of it).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agent.devices.fake import write_event  # noqa: E402
from scripts.simulator.cameras import KIB, MIB, CameraSpec, write_camera  # noqa: E402
from tests.support.daemon import DaemonProcess  # noqa: E402
from tests.support.fault_proxy import Fault, FaultProxy  # noqa: E402
from tests.support.nothing_lost import (  # noqa: E402
    Manifest,
    Recorded,
    check,
    tus_file_store_objects,
)
from tests.support.tus_servers import (  # noqa: E402
    TusServer,
    free_port,
    sync_config,
    tus_node_server,
)
from tests.support.volumes import sha256_file  # noqa: E402

# The wall-clock test hook of agent/core/wallclock.py: a file holding seconds added to the daemon's
# wall clock. Read here by name so the soak still runs (without clock jumps) where it is absent.
WALL_OFFSET_ENV = "DOCKAGENT_TEST_WALL_OFFSET_FILE"
CLOCK_JUMP_S = 2 * 86400

# "Flat": for the longest-lived daemon process, each figure at the end of its life is at most
# FLAT_FACTOR times the figure after its warm-up, plus FLAT_SLACK (figures are maxima over a
# window of samples, so a thread that happens to be copying at one instant does not decide).
FLAT_FACTOR = 1.25
FLAT_SLACK = {"peak_rss_kib": 16 * 1024, "rss_kib": 16 * 1024, "open_files": 8, "threads": 4}
FLAT_RULE = (
    f"end <= {FLAT_FACTOR} x start + slack (peak RSS and RSS +16 MiB, open files +8, "
    "threads +4 and one per camera, as each docked camera has its copy worker), each the "
    "maximum over a window of samples taken while the faults ran: "
    "start = the first window after warm-up (a fixed time after the process started, and the "
    "warm-up sessions docked since), end = its last window; judged on the longest-lived "
    "daemon process. Also: open files and threads of the idle daemon after the drain <= "
    f"{FLAT_FACTOR} x those of the idle daemon before the first dock + slack"
)

CUSTODY = ("sealed", "uploading", "confirmed", "held")
SESSION_TIMEOUT_S = 150.0  # a camera's files not held by then: the soak fails (a hang)
REDOCK_AFTER_S = 30.0  # no session opened for a dock by then: a failure; plugged in again
WIPE_WAIT_S = 30.0
DRAIN_TIMEOUT_S = 300.0
BIG_FILE = 64 * MIB  # the recording an undock-while-copying session is pulled out of


class SoakFailure(Exception):
    """Something the soak was waiting for did not happen: reported, and the run fails."""


def log(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---- the station, read from outside ------------------------------------------------------------


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


# ---- the simulated USB bus ---------------------------------------------------------------------


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


# ---- the tus server, restartable on its port and store ------------------------------------------


class TusControl:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
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


# ---- the daemon and its incarnations -------------------------------------------------------------


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


# ---- resource samples ----------------------------------------------------------------------------


@dataclass
class Sample:
    incarnation: int
    t: float  # seconds since that process started
    sessions: int  # soak docks since that process started
    phase: str  # "soak" while faults run, "end" once they stopped
    peak_rss_kib: int  # VmHWM
    rss_kib: int  # VmRSS
    open_files: int
    threads: int
    anon_kib: int  # RssAnon: the heaps; the rest of VmRSS is mapped files (the WAL index)


METRICS = ("peak_rss_kib", "rss_kib", "open_files", "threads")
_STATUS = ("VmHWM", "VmRSS", "RssAnon")


def read_process(pid: int) -> tuple[int, int, int, int, int] | None:
    """(VmHWM, VmRSS in KiB, open descriptors, threads, RssAnon in KiB) from /proc (proc(5)),
    None once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in _STATUS:
            values[key] = int(rest.split()[0])
    if len(values) != len(_STATUS):
        return None  # a zombie has no memory lines
    return values["VmHWM"], values["VmRSS"], fds, threads, values["RssAnon"]


class Sampler(threading.Thread):
    def __init__(self, daemon: DaemonControl, interval_s: float, phase: Callable[[], str]) -> None:
        super().__init__(name="sampler", daemon=True)
        self.daemon_control = daemon
        self.phase = phase
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def take(self) -> Sample | None:
        with self.daemon_control.lock:
            if not self.daemon_control.incarnations or not self.daemon_control.alive():
                return None
            inc = self.daemon_control.current
            got = read_process(inc.pid)
            if got is None:
                return None
            sample = Sample(
                inc.index,
                time.monotonic() - inc.started,
                self.daemon_control.sessions() - inc.sessions_at_start,
                self.phase(),
                *got,
            )
        with self.lock:
            self.samples.append(sample)
        return sample

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.take()


def _window_max(samples: list[Sample]) -> dict[str, int]:
    return {m: max(getattr(s, m) for s in samples) for m in METRICS}


def judge_resources(
    samples: list[Sample],
    incarnations: list[Incarnation],
    warm_s: float,
    warm_sessions: int,
    window_s: float,
    quiet: tuple[Sample | None, Sample | None],
    cameras: int = 0,
) -> dict[str, Any]:
    """Start and end windows (while the faults ran) per daemon process; the rule on the
    longest-lived one, and on open files and threads of the quiet daemon after the drain
    against a fresh one before the first dock."""
    # A window may fall while every camera is docked and another while none is: each docked
    # camera has a copy worker thread, so that many threads more is no leak.
    slack = {**FLAT_SLACK, "threads": FLAT_SLACK["threads"] + cameras}
    judged: list[dict[str, Any]] = []
    for inc in incarnations:
        mine = [s for s in samples if s.incarnation == inc.index and s.phase == "soak"]
        if not mine:
            continue
        warm = next((s.t for s in mine if s.t >= warm_s and s.sessions >= warm_sessions), None)
        if warm is None:
            continue
        start = [s for s in mine if warm <= s.t < warm + window_s]
        last = mine[-1].t
        end = [s for s in mine if s.t > last - window_s]
        if not start or not end or end[0].t <= start[-1].t:
            continue
        judged.append(
            {
                "process": inc.index,
                "pid": inc.pid,
                "lifetime_s": round(last, 1),
                "ended_by": inc.how,
                "start_at_s": round(start[0].t, 1),
                "end_at_s": round(end[-1].t, 1),
                "start": _window_max(start),
                "end": _window_max(end),
            }
        )
    result: dict[str, Any] = {
        "rule": FLAT_RULE,
        "samples": len(samples),
        "processes": len(incarnations),
        "max_over_all": _window_max(samples) if samples else {},
    }
    fresh, drained = quiet
    violations = []
    if fresh is not None and drained is not None:
        result["quiet_fresh"] = {m: getattr(fresh, m) for m in METRICS}
        result["quiet_after_drain"] = {m: getattr(drained, m) for m in METRICS}
        violations += [
            f"{m} after the drain: {getattr(drained, m)} > {FLAT_FACTOR} x "
            f"{getattr(fresh, m)} (fresh) + {slack[m]}"
            for m in ("open_files", "threads")
            if getattr(drained, m) > FLAT_FACTOR * getattr(fresh, m) + slack[m]
        ]
    if not judged:
        violations.append("no daemon process lived long enough to judge")
        result.update(flat=False, violations=violations)
        return result
    longest = max(judged, key=lambda j: j["lifetime_s"])
    violations += [
        f"{m}: {longest['end'][m]} at the end > {FLAT_FACTOR} x {longest['start'][m]} + {slack[m]}"
        for m in METRICS
        if longest["end"][m] > FLAT_FACTOR * longest["start"][m] + slack[m]
    ]
    result.update(
        flat=not violations, violations=violations, longest=longest, judged_processes=judged
    )
    return result


# ---- cameras ------------------------------------------------------------------------------------


def _names(root: Path) -> list[bytes]:
    """Every file below root, as raw '/'-separated relative names."""
    base = os.fsencode(root)
    return sorted(
        os.path.relpath(os.path.join(dirpath, name), base)
        for dirpath, _dirs, names in os.walk(base)
        for name in names
    )


class Camera:
    """One simulated camera (a directory): the same serial docks again and again, and records
    new files between docks; the station wipes what it has confirmed."""

    def __init__(
        self, serial: str, officer: str, root: Path, seed: int, rotate_logs: bool = False
    ) -> None:
        self.serial = serial
        # False (the default, and the harder case): SYSTEM.LOG and BATTERY.CSV grow at every
        # dock for the whole run. True: like a real camera, each round starts new logs.
        self.rotate_logs = rotate_logs
        self.officer = officer
        self.root = root
        self.rng = random.Random(f"{seed}:{serial}")
        self.rounds = 0
        self.used: set[bytes] = set()  # every recording name it ever held
        self.hashes: dict[tuple[bytes, int, int], str] = {}
        self.skipped = 0

    def record_new(self, big: bool) -> None:
        """Write this round's recordings (yesterday's shift) and append to its logs."""
        self.rounds += 1
        spec = CameraSpec(
            serial=self.serial,
            officer_id=self.officer,
            days=1,
            files_per_day=self.rng.randint(2, 6),
            file_size=96 * KIB,
            other_files=0,
            large_files=1 if big else 0,
            large_size=BIG_FILE,
            audio_every=4,
            photo_every=5,
            first_day=date.today() - timedelta(days=1),
            docked_at=datetime.now().replace(microsecond=0),
            seed=self.rng.randrange(1 << 30),
        )
        fresh = self.root.parent / f".new-{self.serial}-{self.rounds}"
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            write_camera(spec, fresh)
        except ValueError:  # no video to make large in this plan: a round without one
            shutil.rmtree(fresh, ignore_errors=True)
            write_camera(CameraSpec(**{**asdict(spec), "large_files": 0}), fresh)
        if not self.root.exists():
            os.rename(fresh, self.root)
            self.used.update(n for n in _names(self.root) if n.startswith(b"RECORD/"))
            return
        for name in _names(fresh):
            src, dst = fresh / os.fsdecode(name), self.root / os.fsdecode(name)
            if name.startswith(b"RECORD/"):
                if name in self.used or dst.exists():
                    self.skipped += 1
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.rename(src, dst)  # keeps the camera's mtime
                self.used.add(name)
            elif name in (b"LOG/SYSTEM.LOG", b"LOG/BATTERY.CSV") and self.rotate_logs:
                os.replace(src, dst)
            elif name in (b"LOG/SYSTEM.LOG", b"LOG/BATTERY.CSV"):
                lines = src.read_bytes().splitlines(keepends=True)
                if name.endswith(b".CSV"):
                    lines = lines[1:]  # the header is there already
                with open(dst, "ab") as fh:
                    fh.write(b"".join(lines))
        shutil.rmtree(fresh)

    def scan(self) -> dict[bytes, tuple[int, str]]:
        """Like Manifest.scan (regular files, raw names), hashing only what changed."""
        found: dict[bytes, tuple[int, str]] = {}
        base = os.fsencode(self.root)
        for dirpath, _dirs, names in os.walk(base):
            for name in names:
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    rel = os.path.relpath(full, base)
                    key = (rel, st.st_size, st.st_mtime_ns)
                    if key not in self.hashes:
                        self.hashes[key] = sha256_file(full)
                except FileNotFoundError:
                    continue  # wiped by the station while we looked
                found[rel] = (st.st_size, self.hashes[key])
        return found

    def recordings_left(self) -> int:
        return sum(1 for name in self.scan() if name.startswith(b"RECORD/"))


# ---- the soak -----------------------------------------------------------------------------------


GLOBAL_FAULTS = ("daemon_kill", "tus_restart", "clock_jump", "proxy")
FAULT_WEIGHTS = {
    "daemon_kill": 2,
    "tus_restart": 2,
    "undock_mid_copy": 2,
    "clock_jump": 1,
    "proxy": 3,
}
PROXY_FAULTS: dict[str, Callable[[], Fault]] = {
    "proxy_reset_mid_patch": lambda: Fault("reset_mid_body", "PATCH"),
    "proxy_truncated_patch_answer": lambda: Fault("truncate_response", "PATCH"),
    "proxy_503_patch": lambda: Fault("status", "PATCH", status=503),
    "proxy_503_post": lambda: Fault("status", "POST", status=503),
    "proxy_500_head": lambda: Fault("status", "HEAD", status=500),
    "proxy_stalled_patch": lambda: Fault("stall", "PATCH", stall_s=7.0),
}


@dataclass
class Settings:
    duration_s: float
    sessions: int
    seed: int
    out: Path
    report: Path
    cameras: int
    fault_rate: float
    warmup_sessions: int
    rotate_logs: bool = False

    @property
    def warm_s(self) -> float:
        return min(15.0, max(1.0, self.duration_s / 40))

    @property
    def window_s(self) -> float:
        return min(10.0, max(1.0, self.duration_s / 60))

    def kill_spacing_s(self, incarnation: int) -> float:
        # At least this long between a daemon's start and its SIGKILL. The first process lives
        # through half of the run, so that one process is judged for memory, open files and
        # threads over hundreds of docks and faults; later ones a tenth of it.
        return max(5.0, self.duration_s / (2 if incarnation == 1 else 10))


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    sessions: int = 0

    def fault(self, kind: str) -> None:
        with self.lock:
            self.faults[kind] += 1

    def event(self, kind: str) -> None:
        with self.lock:
            self.events[kind] += 1


class Soak:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.rng = random.Random(settings.seed)
        self.rng_lock = threading.Lock()
        out = settings.out
        self.station = Station(out / "station")
        self.station.root.mkdir(parents=True)
        self.camera_dir = out / "cameras"
        self.camera_dir.mkdir()
        self.bus = Bus(self.station.spool)
        self.tus = TusControl(out / "tus")
        self.tally = Tally()
        self.manifest = Manifest()
        self.manifest_lock = threading.Lock()
        self.recorded: dict[str, set[tuple[bytes, str]]] = {}
        self.failures: list[str] = []
        self.abort = threading.Event()
        self.faults_on = threading.Event()
        self.fault_lock = threading.Lock()
        self.clock_jumped = False
        self.proxy_fired = 0
        self.clock_hook = self._clock_hook_available()
        self.started = time.monotonic()
        self.cameras = [
            Camera(
                f"SOAK{i:03d}",
                f"{100100 + i}",
                self.camera_dir / f"SOAK{i:03d}",
                settings.seed,
                settings.rotate_logs,
            )
            for i in range(settings.cameras)
        ]

    @staticmethod
    def _clock_hook_available() -> bool:
        try:
            from agent.core import wallclock  # noqa: PLC0415 - only to learn whether the hook exists
        except ImportError:
            return False
        return getattr(wallclock, "ENV_TEST_OFFSET_FILE", "") == WALL_OFFSET_ENV

    def choice(self, population: list[str], weights: list[int]) -> str:
        with self.rng_lock:
            return self.rng.choices(population, weights)[0]

    def uniform(self, low: float, high: float) -> float:
        with self.rng_lock:
            return self.rng.uniform(low, high)

    def chance(self, p: float) -> bool:
        with self.rng_lock:
            return self.rng.random() < p

    # ---- set-up --------------------------------------------------------------------------------

    def start(self) -> None:
        self.tus.start()
        self.proxy = FaultProxy(self.tus.port, timeout_s=120)
        self.proxy.__enter__()
        st = self.station
        st.wall_offset.write_text("0\n")
        config = sync_config(
            self.proxy.endpoint,
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
            f'[devices]\nsources = ["fake"]\nfake_spool = "{st.spool}"\n'
            "require_enrollment = false\ndrain_deadline_s = 30\n"
            f'[service]\nmetrics_path = "{st.root / "dockagent.prom"}"\nmetrics_interval_s = 5\n'
        )
        st.config.write_text(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKAGENT_")}
        env.update(
            DOCKAGENT_DATA_DIR=str(st.data_dir),
            DOCKAGENT_CONFIG=str(st.config),
            PYTHONPATH=str(REPO),
        )
        self.cli_env = dict(env)
        if self.clock_hook:
            env[WALL_OFFSET_ENV] = str(st.wall_offset)
        self.daemon = DaemonControl(st, self.bus, env)
        self.daemon.sessions = lambda: self.tally.sessions
        self.daemon.start()
        self.phase = "fresh"
        self.sampler = Sampler(
            self.daemon, 1.0 if self.s.duration_s >= 120 else 0.5, lambda: self.phase
        )
        time.sleep(1.0)  # settled after start-up, before the first dock
        self.fresh = self.sampler.take()
        self.phase = "soak"
        self.sampler.start()

    # ---- faults ----------------------------------------------------------------------------------

    def pick_fault(self) -> str | None:
        if not self.faults_on.is_set() or not self.chance(self.s.fault_rate):
            return None
        kinds = dict(FAULT_WEIGHTS)
        if not self.clock_hook or self.clock_jumped:
            kinds.pop("clock_jump")
        if time.monotonic() - self.daemon.current.started < self.s.kill_spacing_s(
            self.daemon.current.index
        ):
            kinds.pop("daemon_kill")
        return self.choice(list(kinds), list(kinds.values()))

    def inject(self, kind: str) -> None:
        with self.fault_lock:
            if not self.faults_on.is_set():
                return
            if kind == "daemon_kill":
                if time.monotonic() - self.daemon.current.started < self.s.kill_spacing_s(
                    self.daemon.current.index
                ):
                    return
                self.tally.fault(kind)
                self.daemon.kill_and_restart()
            elif kind == "tus_restart":
                self.tally.fault(kind)
                self.tus.restart(self.uniform(0.2, 2.0))
            elif kind == "clock_jump":
                if self.clock_jumped:
                    return
                step = CLOCK_JUMP_S if self.chance(0.5) else -CLOCK_JUMP_S
                self.tally.fault("clock_jump_forward" if step > 0 else "clock_jump_back")
                self.set_wall_offset(step)
                self.clock_jumped = True
                # The clock stays wrong for a while, then is stepped back (NTP catching up).
                threading.Timer(self.uniform(5.0, 20.0), self.clock_back).start()
            elif kind == "proxy":
                name = self.choice(list(PROXY_FAULTS), [1] * len(PROXY_FAULTS))
                self.tally.fault(name)
                self.proxy.arm(PROXY_FAULTS[name]())

    def set_wall_offset(self, seconds: float) -> None:
        tmp = self.station.wall_offset.with_suffix(".tmp")
        tmp.write_text(f"{seconds}\n")
        os.replace(tmp, self.station.wall_offset)

    def clock_back(self) -> None:
        with self.fault_lock:
            if self.clock_jumped:
                self.set_wall_offset(0)
                self.clock_jumped = False

    def scheduled_restarts(self) -> None:
        """The tus server also restarts now and then on its own, fault or no fault."""
        low, high = self.s.duration_s / 8, self.s.duration_s / 4
        while not self.abort.wait(self.uniform(low, high)):
            with self.fault_lock:
                if not self.faults_on.is_set():
                    return
                self.tally.fault("tus_restart_scheduled")
                self.tus.restart(self.uniform(0.2, 2.0))

    # ---- one camera's life ----------------------------------------------------------------------

    def record(self, cam: Camera) -> dict[bytes, tuple[int, str]]:
        """Add what the camera holds now and the manifest has not seen (this round's files)."""
        present = cam.scan()
        with self.manifest_lock:
            seen = self.recorded.setdefault(cam.serial, set())
            for name, (size, sha) in sorted(present.items()):
                if (name, sha) not in seen:
                    seen.add((name, sha))
                    self.manifest.files.append(Recorded(cam.serial, name, size, sha))
        return present

    def wait_quiet(self, cam: Camera) -> None:
        """Until the running daemon has no open session of this camera (an undocked camera
        is not written to while the station still reads it)."""
        deadline = time.monotonic() + SESSION_TIMEOUT_S
        while True:
            base = self.daemon.current.base_session_id
            open_ = [r for r in self.station.sessions_after(cam.serial, base) if not r["ended_at"]]
            if not open_:
                return
            self.daemon.check_alive()
            if time.monotonic() > deadline:
                raise SoakFailure(f"{cam.serial}: session {open_[0]['id']} still open (a hang?)")
            time.sleep(0.2)

    def held(self, cam: Camera, present: dict[bytes, tuple[int, str]], state: str = "") -> bool:
        rows = self.station.rows_of(cam.serial)
        return all(
            rows.get((name, sha)) in ((state,) if state else CUSTODY)
            for name, (_size, sha) in present.items()
        )

    def wait_held(self, cam: Camera, present: dict[bytes, tuple[int, str]], before: int) -> None:
        """Until every file the camera held at docking is in custody and the session is over;
        a dock the daemon never opened a session for (lost in a kill) is plugged in again."""
        start = time.monotonic()
        redock_at = start + REDOCK_AFTER_S
        while True:
            now = time.monotonic()
            floor = max(before, self.daemon.current.base_session_id)
            mine = self.station.sessions_after(cam.serial, floor)
            if mine and mine[-1]["ended_at"] and self.held(cam, present):
                return
            if mine and mine[-1]["ended_at"] and now > redock_at:
                # The session ended without taking everything in: unplug and plug in again.
                self.tally.event("redock_incomplete_session")
                self.redock(cam)
                before, redock_at = int(mine[-1]["id"]), now + REDOCK_AFTER_S
            elif not mine and now > redock_at:
                # The station ignored the dock (a restarted daemon hears of it again: the bus
                # announces the docked cameras). A failure; docked again, the run goes on.
                self.tally.event("redock_no_session")
                self.problem(f"{cam.serial}: no session {now - start:.0f} s after docking")
                self.redock(cam)
                redock_at = now + REDOCK_AFTER_S
            self.daemon.check_alive()
            if now - start > SESSION_TIMEOUT_S:
                raise SoakFailure(
                    f"{cam.serial}: files not in custody {SESSION_TIMEOUT_S:.0f} s after docking"
                )
            time.sleep(0.2)

    def redock(self, cam: Camera) -> None:
        self.bus.undock(cam.serial)
        time.sleep(0.5)
        self.wait_quiet(cam)
        self.bus.dock(cam.serial, cam.root)

    def wait_wiped(self, cam: Camera, present: dict[bytes, tuple[int, str]], limit: float) -> bool:
        """Until every file is confirmed and the recordings are gone from the camera."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.held(cam, present, "confirmed") and cam.recordings_left() == 0:
                return True
            time.sleep(0.3)
        return False

    def undock_mid_copy(self, cam: Camera, before: int) -> None:
        """Pull the camera out as soon as its session started copying (its large recording
        takes a few tenths of a second; the fake source sees the event within 0.1 s)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            floor = max(before, self.daemon.current.base_session_id)
            found = self.station.sessions_after(cam.serial, floor)
            if found and (found[-1]["ended_at"] or self.copying(int(found[-1]["id"]))):
                break
            time.sleep(0.01)
        self.bus.undock(cam.serial)
        self.tally.fault("undock_mid_copy")

    def copying(self, session_id: int | None = None) -> bool:
        """Whether the station is copying a file (of that session) right now."""
        sql = "SELECT 1 FROM files WHERE state='copying'"
        args: tuple[Any, ...] = ()
        if session_id is not None:
            sql, args = sql + " AND last_session_id=?", (session_id,)
        return bool(self.station.query(sql + " LIMIT 1", args))

    def kill_moment(self) -> None:
        """Half the kills land while some camera is being copied, half at a random moment
        (mostly amid uploads and purges)."""
        if self.chance(0.5):
            time.sleep(self.uniform(0.0, 1.5))
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.copying():
                self.tally.event("daemon_kill_while_copying")
                return
            time.sleep(0.01)

    def session(self, cam: Camera, *, fault: str | None, wipe_wait: bool) -> None:
        self.wait_quiet(cam)
        cam.record_new(big=fault == "undock_mid_copy")
        present = self.record(cam)
        before = self.station.max_session_id(cam.serial)
        with self.tally.lock:
            self.tally.sessions += 1
        self.bus.dock(cam.serial, cam.root)
        if fault == "undock_mid_copy":
            self.undock_mid_copy(cam, before)
            return
        if fault == "daemon_kill":
            self.kill_moment()
            self.inject(fault)
        elif fault in GLOBAL_FAULTS:
            time.sleep(self.uniform(0.0, 1.5))  # lands at a random point of the sessions
            self.inject(fault)
        self.wait_held(cam, present, before)
        if wipe_wait:
            if self.wait_wiped(cam, present, WIPE_WAIT_S):
                self.tally.event("wiped_while_docked")
            else:
                self.tally.event("wipe_wait_timed_out")
        self.bus.undock(cam.serial)

    def wanted(self) -> bool:
        elapsed = time.monotonic() - self.started
        return elapsed < self.s.duration_s or self.tally.sessions < self.s.sessions

    def camera_loop(self, cam: Camera) -> None:
        try:
            while not self.abort.is_set() and self.wanted():
                fault = self.pick_fault()
                self.session(cam, fault=fault, wipe_wait=self.chance(0.35))
                time.sleep(self.uniform(0.5, 2.5))  # out on patrol
        except Exception as exc:
            self.fail(f"{cam.serial}: {exc}", exc)

    def problem(self, text: str) -> None:
        """A failure of the run that does not stop it (the checker still gets its say)."""
        log(f"FAILURE {text}")
        self.failures.append(text)

    def fail(self, text: str, exc: BaseException | None = None) -> None:
        log(f"FAILURE {text}")
        if exc is not None and not isinstance(exc, SoakFailure | AssertionError):
            traceback.print_exception(exc)
        self.failures.append(text)
        self.abort.set()

    def progress(self) -> None:
        while not self.abort.wait(30 if self.s.duration_s >= 120 else 5):
            if not self.faults_on.is_set():
                return
            last = self.sampler.samples[-1] if self.sampler.samples else None
            mem = f", daemon RSS {last.rss_kib // 1024} MiB, {last.open_files} fds" if last else ""
            log(
                f"{time.monotonic() - self.started:.0f} s: {self.tally.sessions} sessions, "
                f"{sum(self.tally.faults.values())} faults, "
                f"{len(self.daemon.incarnations) - 1} daemon restarts{mem}"
            )

    # ---- the run --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.start()
        self.faults_on.set()
        helpers = [
            threading.Thread(target=self.scheduled_restarts, name="tus-restarts", daemon=True),
            threading.Thread(target=self.progress, name="progress", daemon=True),
        ]
        for helper in helpers:
            helper.start()
        workers = [
            threading.Thread(target=self.camera_loop, args=(cam,), name=cam.serial, daemon=True)
            for cam in self.cameras
        ]
        for worker in workers:
            worker.start()
        hard_stop = time.monotonic() + max(3 * self.s.duration_s, self.s.duration_s + 600)
        for worker in workers:
            worker.join(max(1.0, hard_stop - time.monotonic()))
            if worker.is_alive():
                self.fail(f"{worker.name}: still in a session at the hard time limit")
        soak_s = time.monotonic() - self.started
        with self.fault_lock:
            self.faults_on.clear()
            self.phase = "end"
            armed = list(self.proxy.faults)
            self.proxy.clear()
            self.set_wall_offset(0)
            self.clock_jumped = False
        self.proxy_fired = sum(1 for f in armed if f.fired)
        log(f"faults stopped after {soak_s:.0f} s and {self.tally.sessions} sessions")
        if not self.abort.is_set():
            self.collect_all()
        if not self.abort.is_set():
            self.drain()
        return self.finish(soak_s)

    def collect_all(self) -> None:
        """Every camera docks once more, without faults, until confirmed and wiped."""
        try:
            if not self.daemon.alive():
                raise SoakFailure("the daemon died on its own")
            for cam in self.cameras:
                self.wait_quiet(cam)
                present = self.record(cam)
                before = self.station.max_session_id(cam.serial)
                with self.tally.lock:
                    self.tally.sessions += 1
                self.bus.dock(cam.serial, cam.root)
                self.wait_held(cam, present, before)
                if not self.wait_wiped(cam, present, 180):
                    raise SoakFailure(f"{cam.serial}: not confirmed and wiped at the last dock")
                self.bus.undock(cam.serial)
                self.wait_quiet(cam)
        except Exception as exc:
            self.fail(f"last docks: {exc}", exc)

    def drain(self) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            counts = self.station.state_counts()
            if set(counts) <= {"confirmed"}:
                return
            time.sleep(0.5)
        self.fail(f"queue not drained in {DRAIN_TIMEOUT_S:.0f} s: {self.station.state_counts()}")

    def finish(self, soak_s: float) -> dict[str, Any]:
        time.sleep(2.0)  # idle: nothing docked, nothing to upload
        quiet = self.sampler.take()
        self.sampler.stopping.set()
        self.sampler.join()
        stop_code = None
        if self.daemon.alive():
            stop_code = self.daemon.stop()
            if stop_code != 0:
                self.fail(f"the daemon exited {stop_code} on SIGTERM")
        else:
            self.fail("the daemon was not running at the end")
        self.proxy.stop()
        self.tus.stop()
        verify = subprocess.run(
            [sys.executable, "-m", "agent.cli.main", "verify"],
            env=self.cli_env,
            capture_output=True,
            text=True,
            check=False,
        )
        (self.station.root / "verify.log").write_text(verify.stdout + verify.stderr)
        if verify.returncode != 0:
            self.fail(f"dockagent verify exited {verify.returncode}")
        for cam in self.cameras:  # anything the station wrote to a camera itself (TIME.TXT)
            if cam.root.exists():
                self.record(cam)
        sink = tus_file_store_objects(self.tus.store_dir)
        report = check(
            self.manifest,
            self.station.data_dir,
            cameras={c.serial: c.root for c in self.cameras},
            sink=sink,
        )
        unsent = len(self.manifest.files) - report.at_sink
        if report.problems:
            self.fail(f"nothing-lost checker: {len(report.problems)} problems")
        if unsent and not self.failures:
            self.fail(f"{unsent} recorded files never reached the sink")
        resources = judge_resources(
            self.sampler.samples,
            self.daemon.incarnations,
            self.s.warm_s,
            self.s.warmup_sessions,
            self.s.window_s,
            (self.fresh, quiet),
            self.s.cameras,
        )
        if not resources["flat"]:
            self.fail("not flat: " + "; ".join(resources["violations"]))
        with open(self.s.out / "samples.csv", "w") as fh:
            fh.write("process,t_s,sessions,phase," + ",".join(METRICS) + ",anon_kib\n")
            for x in self.sampler.samples:
                fh.write(
                    f"{x.incarnation},{x.t:.1f},{x.sessions},{x.phase},"
                    + ",".join(str(getattr(x, m)) for m in (*METRICS, "anon_kib"))
                    + "\n"
                )
        daemon_sessions = self.station.query("SELECT COUNT(*) FROM sessions")
        # Undocks the station heard of while it was still in the session (same clock).
        landed = self.station.query(
            "SELECT COUNT(*) FROM sessions WHERE undocked_at IS NOT NULL AND ended_at IS NOT NULL "
            "AND undocked_at < ended_at"
        )
        return {
            "ok": not self.failures,
            "failures": self.failures,
            "seed": self.s.seed,
            "duration_s": round(time.monotonic() - self.started, 1),
            "soak_s": round(soak_s, 1),
            "sessions": self.tally.sessions,
            "station_sessions": int(daemon_sessions[0][0]) if daemon_sessions else 0,
            "cameras": len(self.cameras),
            "files": len(self.manifest.files),
            "bytes": sum(f.size for f in self.manifest.files),
            "faults": dict(sorted(self.tally.faults.items())),
            "faults_total": sum(self.tally.faults.values()),
            # An armed proxy fault fires on the next matching request (none may come).
            "proxy_faults_fired": self.proxy_fired,
            "clock_jumps_available": self.clock_hook,
            "events": dict(sorted(self.tally.events.items())),
            "undocks_landed_in_session": int(landed[0][0]) if landed else 0,
            "recordings_skipped_as_name_clash": sum(c.skipped for c in self.cameras),
            "daemon_restarts": len(self.daemon.incarnations) - 1,
            "daemon_stop_exit": stop_code,
            "states": self.station.state_counts(),
            "resources": resources,
            "checker": {
                "ok": not report.problems,
                "summary": report.summary(),
                "at_sink": report.at_sink,
                "held": report.held,
                "on_camera": report.on_camera,
                "records": report.records,
                "sink_objects": len(sink[0]),
                "sink_partial": len(sink[1]),
                "problems": report.problems[:40],
            },
            "verify_exit": verify.returncode,
            "out": str(self.s.out),
        }


def print_report(report: dict[str, Any]) -> None:
    res = report["resources"]
    print()
    print(f"soak {'PASSED' if report['ok'] else 'FAILED'} (seed {report['seed']})")
    print(
        f"  sessions {report['sessions']} ({report['station_sessions']} at the station), "
        f"{report['cameras']} cameras, {report['files']} files, "
        f"{report['bytes'] / MIB:.1f} MiB, {report['duration_s']:.0f} s"
    )
    faults = ", ".join(f"{k} {v}" for k, v in report["faults"].items()) or "none"
    print(f"  faults {report['faults_total']}: {faults}")
    print(f"  daemon restarts {report['daemon_restarts']}; events: {report['events']}")
    longest = res.get("longest")
    if longest:
        start, end = longest["start"], longest["end"]
        print(
            f"  longest-lived daemon (process {longest['process']}, {longest['lifetime_s']:.0f} s):"
            f" peak RSS {start['peak_rss_kib'] / 1024:.1f} -> {end['peak_rss_kib'] / 1024:.1f} MiB,"
            f" RSS {start['rss_kib'] / 1024:.1f} -> {end['rss_kib'] / 1024:.1f} MiB,"
            f" open files {start['open_files']} -> {end['open_files']},"
            f" threads {start['threads']} -> {end['threads']}"
        )
    judged = res.get("judged_processes") or []
    if len(judged) > 1:
        # Each process's start window: a later process starts over a longer history.
        starts = ", ".join(
            f"{j['process']}: {j['start']['peak_rss_kib'] / 1024:.1f}" for j in judged
        )
        print(f"  peak RSS (MiB) after warm-up, per daemon process: {starts}")
    top = res.get("max_over_all") or {}
    if top:
        print(
            f"  max over all daemons: peak RSS {top['peak_rss_kib'] / 1024:.1f} MiB, "
            f"open files {top['open_files']}, threads {top['threads']}"
        )
    print(f"  flat: {res['flat']} ({'; '.join(res['violations']) or 'within the rule'})")
    print(f"  checker: {report['checker']['summary']}; verify exit {report['verify_exit']}")
    for failure in report["failures"]:
        print(f"  FAILURE: {failure}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (minimum)")
    parser.add_argument("--sessions", type=int, default=300, help="dock sessions (minimum)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "soak-out",
        help="output directory, made anew (default: soak-out)",
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="JSON report (default: OUT/report.json)"
    )
    parser.add_argument("--cameras", type=int, default=4, help="cameras docking at once")
    parser.add_argument("--fault-rate", type=float, default=0.25, help="share of faulty docks")
    parser.add_argument(
        "--rotate-logs",
        action="store_true",
        help="cameras start new SYSTEM.LOG and BATTERY.CSV at every dock, as real ones rotate "
        "(default: the logs grow for the whole run)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration <= 0 or args.sessions < 1 or not 1 <= args.cameras <= 32:
        print("soak: --duration > 0, --sessions >= 1, 1 <= --cameras <= 32", file=sys.stderr)
        return 2
    if not 0 <= args.fault_rate <= 1:
        print("soak: --fault-rate must be between 0 and 1", file=sys.stderr)
        return 2
    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    settings = Settings(
        duration_s=args.duration,
        sessions=args.sessions,
        seed=seed,
        out=out,
        report=(args.report or out / "report.json").resolve(),
        cameras=args.cameras,
        fault_rate=args.fault_rate,
        rotate_logs=args.rotate_logs,
        warmup_sessions=min(20, args.sessions // 4),
    )
    log(
        f"{settings.duration_s:.0f} s and {settings.sessions} sessions at least, "
        f"{settings.cameras} cameras, seed {seed}, output in {out}"
    )
    soak = Soak(settings)
    # SIGTERM (e.g. a test's timeout) ends the run through the same clean-up as an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        report = soak.run()
    finally:
        with contextlib.suppress(Exception):
            if soak.daemon.alive() and soak.daemon.proc is not None:
                soak.daemon.proc.kill()
        with contextlib.suppress(Exception):
            soak.proxy.stop()
        with contextlib.suppress(Exception):
            soak.tus.stop()
    settings.report.parent.mkdir(parents=True, exist_ok=True)
    settings.report.write_text(json.dumps(report, indent=1) + "\n")
    print_report(report)
    print(f"  report: {settings.report}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
