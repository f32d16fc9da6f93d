"""Run a command and write its peak resident memory (KiB) to a file: `peak_rss OUT -- CMD...`.

The command's exit status is passed on. Measured by the kernel (wait4(2) ru_maxrss) for that
process alone, not for other children of the test. Nothing here imports the agent.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path


def _die_with_parent() -> None:
    # prctl(2) PR_SET_PDEATHSIG: a test's timeout kills this wrapper; the command goes with it.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def main(argv: list[str]) -> int:
    out, sep, *cmd = argv
    if sep != "--" or not cmd:
        raise SystemExit("usage: peak_rss OUT -- CMD...")
    proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent)  # noqa: PLW1509 - prctl only
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    Path(out).write_text(f"{usage.ru_maxrss}\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
