"""The soak's plan: its settings, the fault mix, its time limits, and the state its threads share
(the dice and the tally).

It decides nothing at run time and touches no process or file.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.fault_proxy import Fault

# The wall-clock test hook of agent/core/wallclock.py: a file holding seconds added to the daemon's
# wall clock. Read here by name so the soak still runs (without clock jumps) where it is absent.
WALL_OFFSET_ENV = "DOCKAGENT_TEST_WALL_OFFSET_FILE"
CLOCK_JUMP_S = 2 * 86400

CUSTODY = ("sealed", "uploading", "confirmed", "held")
SESSION_TIMEOUT_S = 150.0  # a camera's files not held by then: the soak fails (a hang)
REDOCK_AFTER_S = 30.0  # no session opened for a dock by then: a failure; plugged in again
WIPE_WAIT_S = 30.0
LAST_WIPE_WAIT_S = 180.0  # the last dock of each camera, without faults
DRAIN_TIMEOUT_S = 300.0

# Faults that act on the whole station, not on the camera docking.
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


class SoakFailure(Exception):
    """Something the soak was waiting for did not happen: reported, and the run fails."""


def log(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", flush=True)


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

    @property
    def sample_interval_s(self) -> float:
        return 1.0 if self.duration_s >= 120 else 0.5

    @property
    def progress_every_s(self) -> float:
        return 30 if self.duration_s >= 120 else 5

    def kill_spacing_s(self, incarnation: int) -> float:
        # At least this long between a daemon's start and its SIGKILL. The first process lives
        # through half of the run, so that one process is judged for memory, open files and
        # threads over hundreds of docks and faults; later ones a tenth of it.
        return max(5.0, self.duration_s / (2 if incarnation == 1 else 10))


class Dice:
    """The run's one random source, seeded, shared by the camera threads."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def choice(self, population: list[str], weights: list[int]) -> str:
        with self.lock:
            return self.rng.choices(population, weights)[0]

    def uniform(self, low: float, high: float) -> float:
        with self.lock:
            return self.rng.uniform(low, high)

    def chance(self, p: float) -> bool:
        with self.lock:
            return self.rng.random() < p


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

    def session(self) -> None:
        with self.lock:
            self.sessions += 1
