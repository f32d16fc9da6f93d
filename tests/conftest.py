"""Shared fixtures: a station (data directory + the real CLI run as a process), FUSE checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import sealed_mode
from tests.support.central_key import central_identity, recipient_of
from tests.support.cli import run_cli, start_cli
from tests.support.volumes import fuse_missing

REPO = Path(__file__).resolve().parent.parent
HOOKS_SWITCH = "DOCKAGENT_TEST_HOOKS"
HOOKS = (
    "DOCKAGENT_CRASH_AT",
    "DOCKAGENT_STALL_AT",
    "DOCKAGENT_TEST_WALL_OFFSET_FILE",
    "DOCKAGENT_TEST_STATION_CLOCK",
)
SYSTEMD_MARKERS = ("INVOCATION_ID", "JOURNAL_STREAM")


def arm_hooks(env: dict[str, str]) -> dict[str, str]:
    """env with the test hooks armed when it sets one and does not set the switch itself."""
    if HOOKS_SWITCH not in env and any(env.get(name) for name in HOOKS):
        env[HOOKS_SWITCH] = "1"
    return env


@dataclass
class Station:
    """A collection station for one test: its own data directory and configuration."""

    root: Path
    config_text: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    # Copies sealed to a central key of the station's own (tests/support/sealed_mode.py): by
    # default as DOCKAGENT_TEST_SEAL says; a sweep that alternates the modes says per station.
    sealed: bool = field(default_factory=sealed_mode.default)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def staging(self) -> Path:
        return self.data_dir / "staging"

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def identity(self) -> Path | None:
        """The central key's identity file, where the station seals its copies to it."""
        return sealed_mode.station_identity(self.data_dir)

    def _sealing(self, text: str) -> str:
        """The config text with [custody] encrypt_to naming this station's central key (made
        at the first use), unless the text names keys of its own."""
        if "encrypt_to" in text:
            return text
        path = self.root / sealed_mode.IDENTITY_NAME
        if not path.exists():
            central_identity(path)
        line = f'encrypt_to = ["{recipient_of(path)}"]\n'
        if "\n[custody]\n" in text:
            return text.replace("\n[custody]\n", f"\n[custody]\n{line}", 1)
        return text + f"\n[custody]\n{line}"

    def configure(self, text: str) -> None:
        """Write the station's config. Unless the text has its own [devices] table, test
        stations admit any camera serial (enrolment has tests of its own). A sealed station's
        config also seals its copies to its central key."""
        if "[devices]" not in text:
            text += "\n[devices]\nrequire_enrollment = false\n"
        if self.sealed:
            text = self._sealing(text)
        self.config_text = text
        self.config_path.write_text(text)

    def env(self, **extra: str) -> dict[str, str]:
        """The agent's environment for this station. A test that sets a test hook arms the hooks
        with it (agent/core/testhooks.py), unless it says otherwise with DOCKAGENT_TEST_HOOKS."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKAGENT_")}
        for marker in SYSTEMD_MARKERS:  # a test run started by systemd is not the service
            env.pop(marker, None)
        env.update({"DOCKAGENT_DATA_DIR": str(self.data_dir), "PYTHONPATH": str(REPO)})
        if self.config_text:
            env["DOCKAGENT_CONFIG"] = str(self.config_path)
        env.update(self.extra_env)
        env.update(extra)
        return arm_hooks(env)

    @property
    def cli_log(self) -> Path:
        """Everything the agent printed in this station's runs, kept for the leak check after
        the suite (tests/support/leak_check.py): no evidence bytes or key material in any."""
        return self.root / "cli.log"

    def run(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(args, env=self.env(**env), log=self.cli_log, timeout=timeout)

    def run_bytes(
        self, *args: str, timeout: float = 300, **env: str
    ) -> subprocess.CompletedProcess[bytes]:
        """As run, the output left as raw bytes (nothing decoded away before a test looks)."""
        return run_cli(args, env=self.env(**env), log=self.cli_log, timeout=timeout, text=False)

    def start(
        self, *args: str, pipe: bool = False, text: bool = False, **env: str
    ) -> subprocess.Popen[Any]:
        """The CLI as a process (see tests.support.cli.start_cli), its output in cli_log."""
        return start_cli(args, env=self.env(**env), log=self.cli_log, pipe=pipe, text=text)

    def json(self, *args: str, **env: str) -> Any:
        proc = self.run(*args, "--json", **env)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture
def station(tmp_path: Path) -> Station:
    st = Station(tmp_path / "station")
    st.root.mkdir()
    st.configure(
        'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
    )
    return st


@pytest.fixture
def fuse() -> None:
    """Use in tests marked `fuse`: fails (never skips) when FUSE camera mounts cannot work here."""
    missing = fuse_missing()
    if missing:
        pytest.fail(
            "this test mounts camera images with FUSE but: "
            + "; ".join(missing)
            + ". Run as root with fuse3, fusefat, exfat-fuse, exfatprogs, dosfstools and mtools "
            "installed (CI does).",
            pytrace=False,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under scripts/test (and so in CI) a skipped test is a failure: nothing may go untested.

    Under pytest-xdist every worker's reports reach the controller's terminal reporter, so the
    controller counts the skips of all workers and sets the exit status; a worker says nothing.
    """
    if not os.environ.get("DOCKAGENT_FORBID_SKIPS") or hasattr(session.config, "workerinput"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        names = ", ".join(getattr(r, "nodeid", "?") for r in skipped[:10])
        sys.stderr.write(f"\n{len(skipped)} tests were skipped, which this run forbids: {names}\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# The test files that take longest (`scripts/test` prints the slowest tests), longest first.
# In a parallel run they start first, and the many short files fill the workers' time around
# them; left to itself pytest-xdist would start the files with the most tests first, and the
# longest ones, each a handful of tests, would run last, one worker busy while the others wait.
# A file not named here runs all the same: it only starts later, in collection order.
LONGEST_FILES_FIRST = (
    "tests/faults/test_syscall_crashes.py",
    "tests/faults/test_crash_points.py",
    "tests/faults/test_power_loss.py",
    "tests/faults/test_corrupt_state.py",
    "tests/faults/test_hostile_servers.py",
    "tests/faults/test_hostile_volume.py",
    "tests/e2e/test_daemon_one_dock.py",
    "tests/e2e/test_installed_station.py",
    "tests/faults/test_hostile_camera_input.py",
    "tests/faults/test_nothing_lost_checker.py",
    "tests/e2e/test_soak_short.py",
)


# Files whose tests share no module fixture and are each long: every test is a unit of work of
# its own, so that the workers share them instead of one worker running the file to its end
# (the system-call crash sweep alone was a third of the suite's time).
SPLIT_FILES = (
    "tests/faults/test_syscall_crashes.py",
    "tests/faults/test_crash_points.py",
)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `--dist loadfile` (scripts/test): whole files to the workers, longest first;
    the tests of SPLIT_FILES one by one."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}

    def file_rank(scope: str) -> int:
        return rank.get(scope.split("::", 1)[0], len(rank))

    class LongestFilesFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.split("::", 1)[0] in SPLIT_FILES:
                return nodeid
            return str(super()._split_scope(nodeid))

        def _assign_work_unit(self, node: Any) -> None:
            # The queue holds the files in collection order; the next one handed out is the
            # longest left. (Only the queue's order changes: each worker still gets the indexes
            # of its own collection, which xdist checks is the same on every worker.)
            scope = min(self.workqueue, key=file_rank)
            self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    # This order, not xdist's (files with the most tests first).
    config.option.loadscopereorder = False
    return LongestFilesFirst(config, log)
