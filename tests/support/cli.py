"""The one way the tests run the real CLI (`python -m agent.cli.main`), keeping what it printed.

Every run appends its command line and all it wrote (stdout and stderr) to a log file in the
test's temporary tree: a station's `cli.log`, or a daemon's own log. The leak check run after
the suite (tests/support/leak_check.py) reads every `*.log` and `*.jsonl` there: no recording
bytes and no key material may appear in any output. So nothing here discards output: a run
sent to DEVNULL would hide a leak from that check.

`run_cli` waits for the command and returns its output (text, or raw bytes for the tests that
look at bytes exactly); `start_cli` starts it as a process (daemons, runs killed midway), its
output written straight into the log as it comes, so a SIGKILL loses none of it, or piped and
kept when the caller reads it with `communicate`. This module imports nothing of the agent.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Literal, overload

CLI = (sys.executable, "-m", "agent.cli.main")


def _header(args: Sequence[str]) -> bytes:
    return f"$ dockagent {' '.join(args)}\n".encode(errors="surrogateescape")


def _as_bytes(data: str | bytes | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    return data.encode(errors="surrogateescape")


def keep(log: Path, args: Sequence[str], *outputs: str | bytes | None) -> None:
    """Append one run's command line and output to the log."""
    with open(log, "ab") as fh:
        fh.write(_header(args))
        for data in outputs:
            fh.write(_as_bytes(data))


@overload
def run_cli(
    args: Sequence[str],
    *,
    env: dict[str, str],
    log: Path,
    timeout: float = ...,
    prefix: Sequence[str] = ...,
    text: Literal[True] = ...,
) -> subprocess.CompletedProcess[str]: ...


@overload
def run_cli(
    args: Sequence[str],
    *,
    env: dict[str, str],
    log: Path,
    timeout: float = ...,
    prefix: Sequence[str] = ...,
    text: Literal[False],
) -> subprocess.CompletedProcess[bytes]: ...


def run_cli(
    args: Sequence[str],
    *,
    env: dict[str, str],
    log: Path,
    timeout: float = 300,
    prefix: Sequence[str] = (),
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run `dockagent ARGS` (behind PREFIX, e.g. strace) to the end; its output is kept in
    LOG, also when it runs over TIMEOUT (then it is killed and TimeoutExpired raised)."""
    try:
        proc = subprocess.run(
            [*prefix, *CLI, *args],
            env=env,
            capture_output=True,
            text=text,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        keep(log, args, exc.stdout, exc.stderr, b"\n(timed out)\n")
        raise
    keep(log, args, proc.stdout, proc.stderr)
    return proc


class KeptPopen(subprocess.Popen[Any]):
    """A CLI process with piped output, appended to its log once `communicate` has read it."""

    kept_log: Path
    kept_args: Sequence[str]

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[Any, Any]:
        out, err = super().communicate(input, timeout)
        keep(self.kept_log, self.kept_args, out, err)
        return out, err


def start_cli(
    args: Sequence[str],
    *,
    env: dict[str, str],
    log: Path,
    stderr_log: Path | None = None,
    pipe: bool = False,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """Start `dockagent ARGS` as a process, standard input closed.

    Without PIPE its stdout, and its stderr unless STDERR_LOG names a file of its own (a JSON
    log the test reads), are appended to LOG as it writes them. With PIPE both are pipes the
    caller reads with `communicate`, which appends them to LOG.
    """
    if pipe:
        proc = KeptPopen(
            [*CLI, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=text,
        )
        proc.kept_log, proc.kept_args = log, list(args)
        return proc
    keep(log, args)
    with open(log, "ab") as out:
        err: IO[bytes] = open(stderr_log, "ab") if stderr_log is not None else out  # noqa: SIM115 - closed below
        try:
            # The child holds its own copies of the descriptors; the parent's close at once.
            return subprocess.Popen(
                [*CLI, *args], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=text
            )
        finally:
            if err is not out:
                err.close()
