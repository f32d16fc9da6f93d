"""Is the daemon alive and getting work done? The one answer the systemd watchdog acts on.

Device-source threads must stay alive; a worker with a job beats whenever it copies a chunk or
finishes a file (an upload worker: whenever it starts a request or sends a piece), and one
silent past its limit (the stall limit, or longer for a worker whose single step may take
longer, e.g. one PATCH under its deadline) is stalled. The daemon pings WATCHDOG=1
only while check() finds nothing wrong (systemd.service(5), WatchdogSec=). This module only
observes: it never stops, restarts or signals a thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class _Worker:
    name: str
    thread: threading.Thread
    last_beat: float
    limit_s: float


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "; ".join(self.problems) if self.problems else "every worker is alive and working"


class Liveness:
    def __init__(
        self, stall_limit_s: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.stall_limit_s = stall_limit_s
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._workers: dict[int, _Worker] = {}
        self._watched: list[tuple[str, threading.Thread]] = []

    # ---- long-lived threads ----------------------------------------------------------------

    def watch(self, name: str, thread: threading.Thread) -> None:
        """A thread that must stay alive for as long as the daemon runs."""
        with self._lock:
            self._watched.append((name, thread))

    @contextmanager
    def watching_new_threads(self, what: str) -> Iterator[None]:
        """Watch every thread started inside the block (device sources start their own)."""
        before = set(threading.enumerate())
        yield
        for thread in threading.enumerate():
            if thread not in before and thread.is_alive():
                self.watch(f"{what} thread {thread.name}", thread)

    # ---- workers with a job ----------------------------------------------------------------

    @contextmanager
    def working(self, name: str, longest_step_s: float = 0.0) -> Iterator[None]:
        """The calling thread has work to do until the block ends: it must keep beating, at
        least every stall limit, or every `longest_step_s` if that is longer."""
        thread = threading.current_thread()
        limit = max(self.stall_limit_s, longest_step_s)
        with self._lock:
            self._workers[thread.ident or 0] = _Worker(name, thread, self.monotonic(), limit)
        try:
            yield
        finally:
            with self._lock:
                self._workers.pop(thread.ident or 0, None)

    def beat(self) -> None:
        """Progress by the calling thread (a chunk copied, a file finished). Cheap: per chunk."""
        worker = self._workers.get(threading.get_ident())
        if worker is not None:
            worker.last_beat = self.monotonic()

    # ---- the verdict -----------------------------------------------------------------------

    def check(self) -> Verdict:
        now = self.monotonic()
        problems: list[str] = []
        with self._lock:
            for name, thread in self._watched:
                if not thread.is_alive():
                    problems.append(f"{name} has died")
            for worker in self._workers.values():
                if not worker.thread.is_alive():
                    problems.append(f"{worker.name}: its thread has died")
                    continue
                silent = now - worker.last_beat
                if silent > worker.limit_s:
                    problems.append(f"{worker.name}: no progress for {silent:.0f} s")
        return Verdict(not problems, problems)
