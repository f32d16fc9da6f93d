"""The soak's run loop: one thread per camera docking again and again, the last docks, the drain.

Each camera's thread records new files (into the checker's manifest first), docks the camera
on the fake bus, lets its fault land, and waits until the station holds everything it docked
with, then undocks it (sometimes after waiting for the wipe). A dock the daemon never opened a
session for is plugged in again and counted a failure. After the faults stop, every camera
docks once more until confirmed and wiped, and the upload queue must drain. The run never
judges the result itself: report.finish does.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from typing import Any

from tests.soak.cameras import Camera
from tests.soak.faults import Faults
from tests.soak.plan import (
    CUSTODY,
    DRAIN_TIMEOUT_S,
    GLOBAL_FAULTS,
    LAST_WIPE_WAIT_S,
    REDOCK_AFTER_S,
    SESSION_TIMEOUT_S,
    WALL_OFFSET_ENV,
    WIPE_WAIT_S,
    Dice,
    Settings,
    SoakFailure,
    Tally,
    log,
)
from tests.soak.sampling import Sample, Sampler
from tests.soak.station import Bus, DaemonControl, Station, TusControl
from tests.support.fault_proxy import FaultProxy
from tests.support.nothing_lost import Manifest, Recorded

Present = dict[bytes, tuple[int, str]]  # a camera's files now: name -> (size, sha256)


class Soak:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.dice = Dice(settings.seed)
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
        self.started = time.monotonic()
        self.phase = "fresh"
        self.fresh: Sample | None = None
        self.proxy_fired = 0
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

    # ---- set-up ----------------------------------------------------------------------------

    def start(self) -> None:
        """The tus server, the proxy before it, the station's config, the daemon, and the first
        sample of the fresh daemon before anything docks."""
        self.tus.start()
        self.proxy = FaultProxy(self.tus.port, timeout_s=120)
        self.proxy.__enter__()
        st = self.station
        st.wall_offset.write_text("0\n")
        st.configure(self.proxy.endpoint)
        env = st.env()
        self.cli_env = dict(env)
        self.daemon = DaemonControl(st, self.bus, env)
        self.faults = Faults(self.s, self.dice, self.tally, st, self.daemon, self.tus, self.proxy)
        if self.faults.clock_hook:
            env[WALL_OFFSET_ENV] = str(st.wall_offset)
            env["DOCKAGENT_TEST_HOOKS"] = "1"  # a hook works only armed (agent/core/testhooks.py)
        self.daemon.sessions = lambda: self.tally.sessions
        self.daemon.start()
        self.sampler = Sampler(self.daemon, self.s.sample_interval_s, lambda: self.phase)
        time.sleep(1.0)  # settled after start-up, before the first dock
        self.fresh = self.sampler.take()
        self.phase = "soak"
        self.sampler.start()

    # ---- one camera's life -----------------------------------------------------------------

    def record(self, cam: Camera) -> Present:
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

    def held(self, cam: Camera, present: Present, state: str = "") -> bool:
        rows = self.station.rows_of(cam.serial)
        return all(
            rows.get((name, sha)) in ((state,) if state else CUSTODY)
            for name, (_size, sha) in present.items()
        )

    def wait_held(self, cam: Camera, present: Present, before: int) -> None:
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

    def wait_wiped(self, cam: Camera, present: Present, limit: float) -> bool:
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
            if found and (found[-1]["ended_at"] or self.station.copying(int(found[-1]["id"]))):
                break
            time.sleep(0.01)
        self.bus.undock(cam.serial)
        self.tally.fault("undock_mid_copy")

    def dock(self, cam: Camera) -> tuple[Present, int]:
        """Dock the camera with what it holds now (in the manifest first); returns that and the
        camera's last session id before the dock."""
        present = self.record(cam)
        before = self.station.max_session_id(cam.serial)
        self.tally.session()
        self.bus.dock(cam.serial, cam.root)
        return present, before

    def session(self, cam: Camera, *, fault: str | None, wipe_wait: bool) -> None:
        self.wait_quiet(cam)
        cam.record_new(big=fault == "undock_mid_copy")
        present, before = self.dock(cam)
        if fault == "undock_mid_copy":
            self.undock_mid_copy(cam, before)
            return
        if fault == "daemon_kill":
            self.faults.kill_moment()
            self.faults.inject(fault)
        elif fault in GLOBAL_FAULTS:
            time.sleep(self.dice.uniform(0.0, 1.5))  # lands at a random point of the sessions
            self.faults.inject(fault)
        self.wait_held(cam, present, before)
        if wipe_wait:
            wiped = self.wait_wiped(cam, present, WIPE_WAIT_S)
            self.tally.event("wiped_while_docked" if wiped else "wipe_wait_timed_out")
        self.bus.undock(cam.serial)

    def wanted(self) -> bool:
        elapsed = time.monotonic() - self.started
        return elapsed < self.s.duration_s or self.tally.sessions < self.s.sessions

    def camera_loop(self, cam: Camera) -> None:
        try:
            while not self.abort.is_set() and self.wanted():
                fault = self.faults.pick()
                self.session(cam, fault=fault, wipe_wait=self.dice.chance(0.35))
                time.sleep(self.dice.uniform(0.5, 2.5))  # out on patrol
        except Exception as exc:
            self.fail(f"{cam.serial}: {exc}", exc)

    # ---- failures and progress --------------------------------------------------------------

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
        while not self.abort.wait(self.s.progress_every_s):
            if not self.faults.on.is_set():
                return
            last = self.sampler.samples[-1] if self.sampler.samples else None
            mem = f", daemon RSS {last.rss_kib // 1024} MiB, {last.open_files} fds" if last else ""
            log(
                f"{time.monotonic() - self.started:.0f} s: {self.tally.sessions} sessions, "
                f"{sum(self.tally.faults.values())} faults, "
                f"{len(self.daemon.incarnations) - 1} daemon restarts{mem}"
            )

    # ---- the run ---------------------------------------------------------------------------

    def _threads(self) -> list[threading.Thread]:
        """The tus server's own restarts and the progress line, then one thread per camera."""
        faults = self.faults
        helpers = [
            threading.Thread(
                target=faults.scheduled_restarts, args=(self.abort,), name="tus-restarts"
            ),
            threading.Thread(target=self.progress, name="progress"),
        ]
        cameras = [
            threading.Thread(target=self.camera_loop, args=(cam,), name=cam.serial)
            for cam in self.cameras
        ]
        for thread in [*helpers, *cameras]:
            thread.daemon = True
            thread.start()
        return cameras

    def soak(self) -> float:
        """The faulty part of the run; returns how long it took."""
        self.start()
        self.faults.on.set()
        workers = self._threads()
        hard_stop = time.monotonic() + max(3 * self.s.duration_s, self.s.duration_s + 600)
        for worker in workers:
            worker.join(max(1.0, hard_stop - time.monotonic()))
            if worker.is_alive():
                self.fail(f"{worker.name}: still in a session at the hard time limit")
        soak_s = time.monotonic() - self.started
        self.proxy_fired = self.faults.stop()
        self.phase = "end"
        log(f"faults stopped after {soak_s:.0f} s and {self.tally.sessions} sessions")
        return soak_s

    def run(self) -> dict[str, Any]:
        from tests.soak.report import finish  # the report reads the whole run

        soak_s = self.soak()
        if not self.abort.is_set():
            self.collect_all()
        if not self.abort.is_set():
            self.drain()
        return finish(self, soak_s)

    def collect_all(self) -> None:
        """Every camera docks once more, without faults, until confirmed and wiped."""
        try:
            if not self.daemon.alive():
                raise SoakFailure("the daemon died on its own")
            for cam in self.cameras:
                self.wait_quiet(cam)
                present, before = self.dock(cam)
                self.wait_held(cam, present, before)
                if not self.wait_wiped(cam, present, LAST_WIPE_WAIT_S):
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

    def shutdown(self) -> None:
        """Whatever is still running is stopped, whatever went wrong (a daemon killed)."""
        for step in (self._kill_daemon, self._stop_proxy, self.tus.stop):
            with contextlib.suppress(Exception):  # clean-up goes on past a step that fails
                step()

    def _kill_daemon(self) -> None:
        daemon = getattr(self, "daemon", None)
        if daemon is not None and daemon.alive() and daemon.proc is not None:
            daemon.proc.kill()

    def _stop_proxy(self) -> None:
        proxy = getattr(self, "proxy", None)
        if proxy is not None:
            proxy.stop()
