"""Worker threads for docked cameras: one per camera, at most N at once, drained on stop.

Workers never share a database connection (one Store each); the chain stays consistent because
every append happens inside BEGIN IMMEDIATE. A worker that raises is logged and its camera's
session closed by the importer; the supervisor itself never dies of a worker's error.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.core import log
from agent.runtime.liveness import Liveness

_log = log.get(__name__)


@dataclass
class Job:
    key: str
    run: Callable[[], None]
    thread: threading.Thread | None = None
    started: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


class Supervisor:
    def __init__(self, max_parallel: int, liveness: Liveness | None = None) -> None:
        self.max_parallel = max_parallel
        # Each running job must show progress (Liveness.beat) or the watchdog pings stop.
        self.liveness = liveness or Liveness(float("inf"))
        self.waiting: deque[Job] = deque()
        self.running: dict[str, Job] = {}
        self.lock = threading.Lock()

    def submit(self, job: Job) -> None:
        with self.lock:
            # A camera docked again while the worker of its previous dock is still finishing
            # (closing its session, unmounting) waits for that worker instead of being dropped:
            # dropped, it stayed docked and was never taken in (found by scripts/soak).
            if any(j.key == job.key for j in self.waiting):
                _log.info("device.already_handled", key=job.key)
                return
            self.waiting.append(job)
        self.pump()

    def cancel_waiting(self, key: str) -> bool:
        with self.lock:
            for job in list(self.waiting):
                if job.key == key:
                    self.waiting.remove(job)
                    return True
        return False

    def is_waiting(self, key: str) -> bool:
        with self.lock:
            return any(j.key == key for j in self.waiting)

    def pump(self) -> None:
        """Reap finished workers and start waiting ones while there is room."""
        with self.lock:
            for key, job in list(self.running.items()):
                if job.done.is_set():
                    del self.running[key]
            for job in list(self.waiting):
                if len(self.running) >= self.max_parallel:
                    break
                if job.key in self.running:
                    continue  # its camera's previous worker first
                self.waiting.remove(job)
                job.thread = threading.Thread(
                    target=self._run, args=(job,), daemon=True, name=f"camera-{job.key[-24:]}"
                )
                job.started = time.monotonic()
                self.running[job.key] = job
                job.thread.start()

    def _run(self, job: Job) -> None:
        try:
            with self.liveness.working(f"camera worker {job.key[-24:]}"):
                job.run()
        except BaseException as exc:
            _log.exception("worker.failed", key=job.key, error=str(exc))
        finally:
            job.done.set()

    def busy(self) -> bool:
        with self.lock:
            return bool(self.running) or bool(self.waiting)

    def drain(self, deadline_s: float) -> bool:
        """Let running workers finish until the deadline; returns True if all did."""
        with self.lock:
            self.waiting.clear()
            jobs = list(self.running.values())
        end = time.monotonic() + deadline_s
        for job in jobs:
            remaining = end - time.monotonic()
            if remaining <= 0 or not job.done.wait(remaining):
                return False
        return True
