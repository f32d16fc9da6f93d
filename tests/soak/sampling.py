"""The daemon's resources, sampled from /proc while the soak runs, and the rule that they stay flat.

A sampler thread reads the current daemon process's peak and current RSS, open descriptors and
threads; `judge_resources` compares windows of samples against FLAT_RULE. It reads /proc only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.soak.station import DaemonControl, Incarnation

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
