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
    args = ["--duration", "20", "--sessions", "8", "--seed", "7", "--fault-rate", "0.5"]
    args += ["--out", str(tmp_path / "soak"), "--report", str(report_path)]
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "soak"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the soak then stops its daemon and tus server itself.
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"the short soak ran over 300 s:\n{out[-4000:]}{err[-4000:]}")
    assert proc.returncode == 0, out[-4000:] + err[-4000:]
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
