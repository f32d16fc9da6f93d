"""What the benchmarks read of a running process from proc(5): its CPU time and its memory.

Shared by `scripts/bench devices` and `scripts/bench history`, which time the daemon they
started. Test and demo tooling only; it reads /proc and writes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of a process (and its threads), /proc/PID/stat fields 14 and 15."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def status_mib(pid: int, *names: str) -> tuple[float, ...]:
    """The named kB fields of /proc/PID/status (VmRSS, VmHWM...) in MiB, in the order asked;
    -1 for one the kernel does not show."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return tuple(int(fields[name].split()[0]) / 1024 if name in fields else -1.0 for name in names)
