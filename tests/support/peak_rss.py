"""Run a command and write its peak resident memory (KiB) to a file: `peak_rss OUT -- CMD...`.

The command's exit status is passed on. Measured by the kernel (wait4(2) ru_maxrss) for that
process alone, not for other children of the test. Nothing here imports the agent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    out, sep, *cmd = argv
    if sep != "--" or not cmd:
        raise SystemExit("usage: peak_rss OUT -- CMD...")
    proc = subprocess.Popen(cmd)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    Path(out).write_text(f"{usage.ru_maxrss}\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
