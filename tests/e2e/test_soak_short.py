"""The soak (scripts/soak) in its short form, so the script does not rot between full runs.

Twenty seconds and a few dozen dock sessions with a fault in every other one: the daemon killed
and restarted, the tus server restarted, cameras pulled out while copying, the wall clock
stepped, connections cut by the proxy. The script must pass: nothing lost by the independent
checker, `dockagent verify` clean, memory, open files and threads flat. The ten-minute soak
stays outside the test run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.mark.slow
def test_a_short_soak_passes(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [
            str(REPO / "scripts" / "soak"),
            "--duration",
            "20",
            "--sessions",
            "8",
            "--seed",
            "7",
            "--fault-rate",
            "0.5",
            "--out",
            str(tmp_path / "soak"),
            "--report",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["failures"] == []
    assert report["sessions"] >= 8 and report["files"] > 0
    assert report["faults_total"] > 0
    checker = report["checker"]
    assert checker["ok"] and checker["problems"] == []
    assert checker["at_sink"] == report["files"]  # drained: every recorded file reached the sink
    assert set(report["states"]) == {"confirmed"}
    assert report["verify_exit"] == 0 and report["daemon_stop_exit"] == 0
    assert report["resources"]["flat"], report["resources"]["violations"]
