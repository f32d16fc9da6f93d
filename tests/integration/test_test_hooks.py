"""Test hooks change nothing in production: unarmed they are ignored, under systemd and the
technician's wrapper they are refused, and armed every log line says so.

The hooks ($DOCKAGENT_TEST_WALL_OFFSET_FILE, $DOCKAGENT_CRASH_AT, $DOCKAGENT_STALL_AT,
$DOCKAGENT_TEST_STATION_CLOCK) take effect only with $DOCKAGENT_TEST_HOOKS=1 (agent/core/testhooks.py).
A technician's shell that still has one set from a test run imports a real camera through the real
CLI: the signed custody records keep today's time, the process neither crashes nor stalls, and a
`hooks.ignored` warning names the variables. Armed with a systemd marker ($INVOCATION_ID,
$JOURNAL_STREAM) or the wrapper's, the agent refuses to start (exit 78) before it touches anything.
The installed wrapper (systemd/dockagent-wrapper) hands the agent an environment without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import REPO, Station
from tests.support.cli import run_cli
from tests.support.evidence import assert_all_sealed, rows

THREE_YEARS_S = 3 * 365 * 86400
SPEC = CameraSpec(serial="HOOKS001", days=1, files_per_day=3, file_size=256 << 10, large_files=0)
EX_CONFIG = 78
SERVICE = 61903  # a numeric user for the wrapper's non-root path (setpriv(1), no passwd entry)


@pytest.fixture
def camera(tmp_path: Path) -> tuple[Path, dict[bytes, str]]:
    cam = tmp_path / "cam"
    manifest = write_camera(SPEC, cam)
    return cam, {e[0]: e[2] for e in manifest.entries}


@pytest.fixture
def offset_file(tmp_path: Path) -> Path:
    path = tmp_path / "wall-offset"
    path.write_text(f"{THREE_YEARS_S}\n")
    return path


def _technician(station: Station, *args: str, **hooks: str) -> subprocess.CompletedProcess[str]:
    """`dockagent ARGS` from a shell where the hooks are left set, and nothing arms them."""
    env = {k: v for k, v in station.env().items() if k != "DOCKAGENT_TEST_HOOKS"}
    env.update(hooks)
    return run_cli(args, env=env, log=station.cli_log)


def _events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _signed_times(station: Station) -> list[datetime]:
    """Every time a signed record of the chain carries: files' ingest times, audits' moments."""
    times = []
    for record in rows(station.data_dir, "SELECT kind, body FROM records"):
        body = json.loads(record["body"])
        for key in ("ingested_at", "at"):
            if body.get(key):
                times.append(datetime.fromisoformat(body[key]))
    return times


def test_hooks_set_for_the_technicians_command_do_not_move_any_signed_time(
    station: Station, camera: tuple[Path, dict[bytes, str]], offset_file: Path
) -> None:
    cam, expected = camera
    before = datetime.now(UTC)
    proc = _technician(
        station, "import", str(cam), DOCKAGENT_TEST_WALL_OFFSET_FILE=str(offset_file)
    )
    after = datetime.now(UTC)
    assert proc.returncode == 0, proc.stderr
    assert_all_sealed(station.data_dir, SPEC.serial, expected)
    times = _signed_times(station)
    assert len(times) >= len(expected)
    slack = timedelta(minutes=2)
    assert all(before - slack <= t <= after + slack for t in times), (before, times)
    for row in rows(station.data_dir, "SELECT staged_at, sealed_at FROM files"):
        assert before - slack <= datetime.fromisoformat(row["staged_at"]) <= after + slack
    ignored = [e for e in _events(proc.stderr) if e["event"] == "hooks.ignored"]
    assert len(ignored) == 1 and ignored[0]["level"] == "warning"
    assert ignored[0]["variables"] == ["DOCKAGENT_TEST_WALL_OFFSET_FILE"]
    assert str(offset_file) not in proc.stderr  # names, never values
    assert not any("test_hooks" in e for e in _events(proc.stderr))
    assert station.run("verify").returncode == 0


def test_a_crash_point_set_for_the_technicians_command_crashes_and_stalls_nothing(
    station: Station, camera: tuple[Path, dict[bytes, str]]
) -> None:
    cam, expected = camera
    proc = _technician(
        station,
        "import",
        str(cam),
        DOCKAGENT_CRASH_AT="copy.staged",
        DOCKAGENT_STALL_AT="copy.first_chunk",
        DOCKAGENT_TEST_STATION_CLOCK="synced",
    )
    assert proc.returncode == 0, proc.stderr  # not -SIGKILL, and no hang until the timeout
    assert_all_sealed(station.data_dir, SPEC.serial, expected)
    ignored = [e for e in _events(proc.stderr) if e["event"] == "hooks.ignored"]
    assert ignored and set(ignored[0]["variables"]) == {
        "DOCKAGENT_CRASH_AT",
        "DOCKAGENT_STALL_AT",
        "DOCKAGENT_TEST_STATION_CLOCK",
    }
    # The station clock's state is the kernel's (adjtimex(2)), not the one the variable named.
    health = rows(station.data_dir, "SELECT station_clock FROM session_health")
    assert health and all("adjtimex" in h["station_clock"] for h in health), health


@pytest.mark.parametrize(
    "marker",
    [
        {"INVOCATION_ID": "0123456789abcdef0123456789abcdef"},
        {"JOURNAL_STREAM": "8:12345"},
        {"DOCKAGENT_WRAPPED": "1"},
    ],
    ids=["systemd-invocation", "systemd-journal", "wrapper"],
)
def test_armed_hooks_are_refused_under_systemd_and_the_wrapper(
    station: Station,
    camera: tuple[Path, dict[bytes, str]],
    offset_file: Path,
    marker: dict[str, str],
) -> None:
    cam, _ = camera
    proc = station.run(
        "import", str(cam), DOCKAGENT_TEST_WALL_OFFSET_FILE=str(offset_file), **marker
    )
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert "test hooks are armed but" in proc.stderr
    assert "DOCKAGENT_TEST_HOOKS" in proc.stderr and next(iter(marker)) in proc.stderr
    assert not station.data_dir.exists()  # refused before the first step: nothing made


def test_an_armed_hook_with_a_malformed_value_refuses_rather_than_runs_unhooked(
    station: Station, camera: tuple[Path, dict[bytes, str]]
) -> None:
    cam, _ = camera
    proc = station.run("import", str(cam), DOCKAGENT_CRASH_AT="copy.stagd")
    assert proc.returncode == EX_CONFIG and "names no crash point" in proc.stderr
    proc = station.run("import", str(cam), DOCKAGENT_TEST_STATION_CLOCK="sync" * 5000)
    assert proc.returncode == EX_CONFIG and "'synced' or 'unsynced'" in proc.stderr
    assert "sync" * 10 not in proc.stderr  # the value is not echoed back


def test_armed_hooks_are_announced_on_every_log_line(
    station: Station, camera: tuple[Path, dict[bytes, str]]
) -> None:
    cam, expected = camera
    proc = station.run("import", str(cam), DOCKAGENT_TEST_STATION_CLOCK="synced")
    assert proc.returncode == 0, proc.stderr
    assert_all_sealed(station.data_dir, SPEC.serial, expected)
    events = _events(proc.stderr)
    assert len(events) >= len(expected)
    announced = ["DOCKAGENT_TEST_HOOKS", "DOCKAGENT_TEST_STATION_CLOCK"]
    assert all(e.get("test_hooks") == announced for e in events), events
    assert [e["event"] for e in events].count("hooks.armed") == 1


def test_the_wrapper_hands_the_agent_no_test_hook(tmp_path: Path) -> None:
    """The installed wrapper, its agent replaced by `env -0` (env(1)): what the agent is given."""
    text = (REPO / "systemd/dockagent-wrapper").read_text()
    assert "program=/opt/dockagent/bin/dockagent\n" in text
    base = Path(tempfile.mkdtemp(prefix="dockagent-hooks-", dir="/var/tmp"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 - the wrapper's user must reach it
        program = base / "agent"
        program.write_text("#!/bin/sh\nexec /usr/bin/env -0\n")
        program.chmod(0o755)
        wrapper = base / "wrapper"
        wrapper.write_text(text.replace("/opt/dockagent/bin/dockagent", str(program)))
        env = {
            "PATH": os.environ["PATH"],
            "DOCKAGENT_DATA_DIR": str(base / "nowhere"),
            "DOCKAGENT_TEST_HOOKS": "1",
            "DOCKAGENT_CRASH_AT": "copy.staged",
            "DOCKAGENT_STALL_AT": "copy.first_chunk",
            "DOCKAGENT_TEST_WALL_OFFSET_FILE": "/tmp/offset",
            "DOCKAGENT_TEST_STATION_CLOCK": "synced",
            "DOCKAGENT_TEST_SOMETHING_NEW": "x",
            # A value that looks like another variable's line: only names are acted on.
            "NOTE": "a\nDOCKAGENT_TEST_FAKE=1\n",
            "DOCKAGENT_LOG_KEPT": "kept",
        }
        user = [f"--reuid={SERVICE}", f"--regid={SERVICE}", "--clear-groups"]
        proc = subprocess.run(
            ["setpriv", *user, "sh", str(wrapper)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        subprocess.run(["rm", "-rf", "--", str(base)], check=True)
    assert proc.returncode == 0, proc.stderr
    given = proc.stdout.split("\0")
    names = {line.partition("=")[0] for line in given}
    assert not {n for n in names if n.startswith("DOCKAGENT_TEST_")}, names
    assert not names & {"DOCKAGENT_CRASH_AT", "DOCKAGENT_STALL_AT"}
    assert "DOCKAGENT_WRAPPED=1" in given
    assert (
        "DOCKAGENT_LOG_KEPT=kept" in given and "NOTE=a\nDOCKAGENT_TEST_FAKE=1\n" in given
    )  # the rest passes
