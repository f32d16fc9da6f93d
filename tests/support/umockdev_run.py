"""Run the udev source inside a umockdev testbed and collect what it reported.

The driver (tests/support/umockdev/testbed.py) runs on the system interpreter under
umockdev-wrapper, because umockdev's binding (python3-gi) is a Debian package for that
interpreter and not in the project's virtual environment; it starts the agent's side with this
interpreter. $DOCKAGENT_GI_PYTHON names another interpreter that can import gi.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "umockdev" / "testbed.py"
GI_PYTHON = os.environ.get("DOCKAGENT_GI_PYTHON", "/usr/bin/python3")
_PROBE = "import gi; gi.require_version('UMockdev', '1.0'); from gi.repository import UMockdev"


def umockdev_missing() -> list[str]:
    """Why umockdev tests cannot run here (empty when they can)."""
    problems = []
    if shutil.which("umockdev-wrapper") is None:
        problems.append("umockdev-wrapper is not on PATH (Debian package umockdev)")
    try:
        probe = subprocess.run(
            [GI_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        problems.append(f"{GI_PYTHON} does not exist (set DOCKAGENT_GI_PYTHON)")
    else:
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["?"])[-1]
            problems.append(
                f"{GI_PYTHON} cannot load UMockdev through gi ({last}); "
                "install the Debian packages python3-gi and gir1.2-umockdev-1.0"
            )
    return problems


@dataclass
class UdevRun:
    events: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)  # the agent's JSON log lines
    devices: dict[str, list[str]] = field(default_factory=dict)  # description -> sysfs paths
    stop_seconds: float = -1.0

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.log if line.get("event") == event]


def run_udev_source(plan: dict[str, Any], workdir: Path, timeout: float = 60) -> UdevRun:
    """Run one plan (see testbed.py) and return what the udev source reported."""
    plan = dict(plan, listener_python=sys.executable, pythonpath=str(REPO))
    plan_file = workdir / "plan.json"
    plan_file.write_text(json.dumps(plan))
    # The system interpreter must not see the virtual environment's settings.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        ["umockdev-wrapper", GI_PYTHON, "-W", "error", str(DRIVER), str(plan_file)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, (
        f"the umockdev driver failed (exit {proc.returncode}):\n{proc.stderr}"
    )
    result = UdevRun()
    for text in proc.stdout.splitlines():
        line = json.loads(text)
        kind = line["kind"]
        if kind == "event":
            result.events.append(line)
        elif kind == "log":
            try:
                result.log.append(json.loads(line["line"]))
            except json.JSONDecodeError:
                result.log.append({"event": None, "unparsed": line["line"]})
        elif kind == "devices":
            result.devices = line["devices"]
        elif kind == "stopped":
            result.stop_seconds = line["stop_seconds"]
    return result
