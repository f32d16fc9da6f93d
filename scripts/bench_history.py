"""`scripts/bench history`: what each command costs as a station's history grows.

A station is built through the product's own commands: simulated cameras (scripts/simulator,
many small files) are taken in with `dockagent import` one dock after another, and uploaded to
a directory sink with `dockagent sync --once`. At each checkpoint every reading command is run
once as its own process, timed wall-clock and reaped with wait4(2) for its peak RSS, and the
daemon is started with no cameras for a few seconds to measure its start-up and its idle CPU.
A command whose cost grows with the history shows it as the checkpoints go by.

  scripts/bench history --files 20000 --sessions 400 --checkpoints 2
  scripts/bench history --agent-root /path/to/another/checkout   (the same bench, other code)

Test and demo tooling only; it writes nothing outside its work directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scripts.bench_proc import cpu_s, status_mib

REPO = Path(__file__).resolve().parent.parent
IDLE_S = 10.0


@dataclass
class Measure:
    files: int
    sessions: int
    command: str
    seconds: float
    cpu_s: float
    peak_mib: float
    rc: int


def _env(agent_root: Path, work: Path) -> dict[str, str]:
    """The commands' environment. Their bytecode is kept (in the work directory, not the
    checkout), as an installed package's is: with PYTHONDONTWRITEBYTECODE set every run would
    compile every module it imports again, and the bench would time the compiler."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKAGENT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env["PYTHONPATH"] = str(agent_root)
    return env


def _config(work: Path) -> Path:
    cfg = work / "dockagent.toml"
    cfg.write_text(
        'station_id = "BENCH-HISTORY"\n'
        f'data_dir = "{work / "data"}"\n'
        "[storage]\nreserve_bytes = 0\n"
        '[ingest]\nwipe_policy = "never"\n'
        '[devices]\nrequire_enrollment = false\nsources = ["fake"]\n'
        f'fake_spool = "{work / "spool"}"\n'
        f'[sync]\nkind = "directory"\ndirectory_root = "{work / "archive"}"\n'
        "max_parallel_uploads = 2\npurge_grace_s = 0\n"
    )
    return cfg


class Station:
    def __init__(self, agent_root: Path, work: Path) -> None:
        self.root, self.work = agent_root, work
        self.cfg = _config(work)
        self.last_session = 0
        (work / "spool").mkdir(exist_ok=True)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "agent.cli.main", "--config", str(self.cfg), *args]

    def run(self, *args: str) -> tuple[int, float, float, float]:
        """(exit status, wall seconds, CPU seconds, peak RSS MiB) of one command."""
        start = time.monotonic()
        proc = subprocess.Popen(
            self.argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_env(self.root, self.work),
            cwd=self.root,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        return (
            os.waitstatus_to_exitcode(status),
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
        )

    def idle_daemon(self, seconds: float) -> tuple[float, float, float, float, float]:
        """(seconds until it logged daemon.started, seconds its whole-database check took
        after that, idle CPU % over `seconds` once that check is done, its resident and peak
        resident MiB at the end of that window); -1 for what it did not reach."""
        log = self.work / "daemon.log"
        start = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                self.argv("--log-level", "info", "run"),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(self.root, self.work),
                cwd=self.root,
            )
        try:
            deadline = start + 600
            while b"daemon.started" not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    return -1.0, -1.0, -1.0, -1.0, -1.0
                time.sleep(0.05)
            started = time.monotonic() - start
            # The daemon reads the whole database once it is ready (agent.runtime.store_check):
            # timed on its own, and the idle window starts after it.
            while b'"store.check' not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    return started, -1.0, -1.0, -1.0, -1.0
                time.sleep(0.05)
            checked = time.monotonic() - start - started
            time.sleep(1.0)  # the first drain and status line
            before = cpu_s(proc.pid)
            time.sleep(seconds)
            used = cpu_s(proc.pid) - before
            rss, hwm = status_mib(proc.pid, "VmRSS", "VmHWM")
            return started, checked, 100.0 * used / seconds, rss, hwm
        finally:
            proc.terminate()
            proc.wait(timeout=120)


def build(station: Station, sessions: range, per_session: int, sync_every: int) -> int:
    """Take in one simulated dock per session number, syncing every `sync_every`: each dock a
    `dockagent import` and a `dockagent sync --once` of the agent in --agent-root, run by one
    long-lived builder process (scripts/history_builder.py) so that the interpreter's start-up
    is not paid 20,000 times. Returns 1 when any command failed."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "history_builder.py"),
            "--config",
            str(station.cfg),
            "--work",
            str(station.work),
            "--first",
            str(sessions.start),
            "--stop",
            str(sessions.stop),
            "--per-session",
            str(per_session),
            "--sync-every",
            str(sync_every),
            "--last",
            str(station.last_session),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        env=_env(station.root, station.work),
        cwd=station.root,
        check=False,
    )
    return proc.returncode


def _commands() -> list[list[str]]:
    today = datetime.now(UTC).date().isoformat()
    return [
        # First a command that writes: it migrates a database built by an older agent.
        ["sync", "--once"],
        ["status"],
        ["status", "--json"],
        ["queue"],
        ["ledger"],
        ["ledger", "--since", today],
        ["report", "compliance", "--since", today],
        ["verify"],
        # What the last clean verify did not check: flat, whatever the history.
        ["verify", "--incremental"],
        ["doctor"],
    ]


def measure(station: Station, files: int, sessions: int) -> list[Measure]:
    # Byte-compiled first, as pip does at install (see _env).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(station.root / "agent")],
        env=_env(station.root, station.work),
        stdout=subprocess.DEVNULL,
        check=False,
    )
    out: list[Measure] = []
    for argv in _commands():
        rc, wall, cpu, peak = station.run(*argv)
        out.append(Measure(files, sessions, " ".join(argv), wall, cpu, peak, rc))
        print(
            f"  {out[-1].command:<36} {wall:8.2f} s  CPU {cpu:6.2f} s  {peak:7.1f} MiB  rc={rc}",
            flush=True,
        )
    out.append(fresh_import(station, files, sessions))
    started, checked, idle, rss, hwm = station.idle_daemon(IDLE_S)
    out.append(Measure(files, sessions, "run: start-up", started, 0.0, hwm, 0))
    out.append(Measure(files, sessions, "run: whole-database check", checked, 0.0, 0.0, 0))
    out.append(Measure(files, sessions, "run: idle CPU %", idle, 0.0, rss, 0))
    print(
        f"  daemon start-up {started:.2f} s, its whole-database check {checked:.2f} s after, "
        f"idle CPU {idle:.1f} %, resident {rss:.1f} MiB (peak {hwm:.1f})",
        flush=True,
    )
    return out


def fresh_import(station: Station, files: int, sessions: int) -> Measure:
    """`dockagent import` of a camera the station has not seen, of 50 files, as its own
    process: what one more dock costs this station with this history."""
    sys.path.insert(0, str(REPO))
    from scripts.history_builder import camera  # noqa: PLC0415

    cam = station.work / "fresh-cam"
    shutil.rmtree(cam, ignore_errors=True)
    camera(f"FRESH{sessions:06d}", 7, 50, datetime.now(UTC), cam)
    rc, wall, cpu, peak = station.run("import", str(cam))
    shutil.rmtree(cam, ignore_errors=True)
    print(
        f"  {'import (fresh 50-file camera)':<36} {wall:8.2f} s  CPU {cpu:6.2f} s  {peak:7.1f} MiB"
        f"  rc={rc}",
        flush=True,
    )
    return Measure(files, sessions, "import (fresh 50-file camera)", wall, cpu, peak, rc)


def _size(work: Path) -> tuple[int, int]:
    """(files, sessions) of a station built before, read with SQLite directly."""
    import sqlite3  # noqa: PLC0415 - only for --station

    conn = sqlite3.connect(f"file:{work / 'data' / 'dockagent.db'}?mode=ro", uri=True)
    try:
        files = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        sessions = conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
    finally:
        conn.close()
    return int(files), int(sessions)


def _report(results: list[Measure]) -> None:
    print("\nfiles    sessions  command                               wall s    CPU s   peak MiB")
    for m in results:
        print(
            f"{m.files:<8} {m.sessions:<9} {m.command:<36} {m.seconds:8.2f} {m.cpu_s:8.2f}"
            f" {m.peak_mib:9.1f}"
        )


def _checkpoints(args: argparse.Namespace, per_session: int) -> list[int]:
    """Session counts to measure at: after the sessions that hold each of --at's file counts
    (e.g. 1000,100000), else --checkpoints even steps; always the final size."""
    if args.at:
        marks = [max(1, int(f) // per_session) for f in args.at.split(",") if f.strip()]
    else:
        step = max(1, args.sessions // args.checkpoints)
        marks = list(range(step, args.sessions, step))
    return sorted({m for m in marks if m < args.sessions} | {args.sessions})


def run(args: argparse.Namespace) -> int:
    agent_root = Path(args.agent_root).resolve()
    if args.station:
        # A station built before (--keep): measured as it is, by the agent in --agent-root.
        work = Path(args.station)
        station = Station(agent_root, work)
        if args.grow:
            _files, done = _size(work)
            per_session = max(1, args.files // args.sessions)
            station.last_session = done + args.grow
            build(station, range(done, done + args.grow), per_session, args.sync_every)
        files, sessions = _size(work)
        if not args.no_measure:
            _report(measure(station, files, sessions))
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-history-", dir=args.workdir))
    per_session = max(1, args.files // args.sessions)
    station = Station(agent_root, work)
    station.last_session = args.sessions
    results: list[Measure] = []
    done = 0
    try:
        for upto in _checkpoints(args, per_session):
            t0 = time.monotonic()
            failed = build(station, range(done, upto), per_session, args.sync_every)
            done = upto
            files, sessions = _size(work)
            print(
                f"{sessions} sessions / {files} files built "
                f"({time.monotonic() - t0:.0f} s, builder exit {failed})",
                flush=True,
            )
            results += measure(station, files, sessions)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    _report(results)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="each command's cost as the station's history grows")
    p.add_argument("--files", type=int, default=20000, help="files in all (default 20000)")
    p.add_argument("--sessions", type=int, default=400, help="docks in all (default 400)")
    p.add_argument("--checkpoints", type=int, default=2, help="measure this often (default 2)")
    p.add_argument("--at", help="measure after these many files, e.g. 1000,100000 (and at the end)")
    p.add_argument("--sync-every", type=int, default=10, help="sync after this many docks")
    p.add_argument("--agent-root", default=str(REPO), help="the checkout whose agent is run")
    p.add_argument("--workdir", default="/var/tmp")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--station", help="measure this work directory (built with --keep) as it is")
    p.add_argument("--grow", type=int, default=0, help="with --station: this many docks more first")
    p.add_argument("--no-measure", action="store_true", help="with --grow: build only")
    p.set_defaults(func=run)
