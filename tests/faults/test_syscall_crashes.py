"""Crashes at every system call of an import and a sync, and EIO and ENOSPC where the station
reads and writes: nothing is lost, nothing half-done is trusted, a plain re-run finishes.

strace kills the real CLI (SIGKILL, injected at the entry of the call, so the call never runs)
at the N-th call of each of write, fsync, fdatasync, rename*, link*, unlink*, ftruncate and
fallocate, for every N a dry run of the same command made, and at a sample of the pwrite64
(SQLite) and openat calls. Three starting points: a fresh station importing a camera; a sync
uploading what that import sealed; a sync purging staged copies already confirmed (there the
upload thread has nothing to do, so the main thread's calls are not shadowed by the upload
thread's: strace counts `when=N` per thread). After each kill, `import` (after a kill in an
import) and then `sync --once` must finish the job, the independent checker
(tests/support/nothing_lost.py) must pass with every file at the sink, no temp file may be left
in staging, and `verify` must pass (run after one kill in four).

Then injected errors: EIO on one camera file's reads (a per-file problem, exit 3, nothing of it
wiped); EIO on every fsync, fdatasync and syncfs of staging and of the database (a clean
failure, and no row says staged or sealed unless its copy and its name were synced first);
ENOSPC on every staging write and fallocate (exit 75, a no-space message). A retry without the
fault completes each time. Two lanes (each its own station, camera and sink) run concurrently.

Sealed and plain (tests/support/sealed_mode.py): each sweep is split in two halves, every
other point of its plan (the values of N in order, or the injected errors in order), each half
a test of its own: with DOCKAGENT_TEST_SEAL unset (CI) the first half runs on plain stations and
the second on stations whose copies are sealed to a central key, each planned from a dry run
in its own mode; with DOCKAGENT_TEST_SEAL=1 (or 0) both halves are sealed (plain), so together
they sweep every point in that mode. The kill sweep is also one test per phase, and the EIO on
a camera read runs plain in CI: small tests that pytest-xdist spreads over its workers
(tests/conftest.py runs each of them as a unit of its own, not the file as one).
DOCKAGENT_SWEEP_SAMPLE=K keeps every K-th point of each half only (a quick local run).

The numbers go to a table in the test's temporary directory (printed with -s) and, when
$DOCKAGENT_SWEEP_REPORT names a file, into that file as JSON.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.core.errors import EX_IOERR, EX_TEMPFAIL, EXIT_INCOMPLETE
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.cli import run_cli
from tests.support.evidence import rows
from tests.support.nothing_lost import Manifest, check, directory_sink_objects
from tests.support.sealed_mode import alternate
from tests.support.syscall_faults import (
    VARIANTS,
    Call,
    first_reaching,
    highest_nth,
    killed_call,
    of,
    parse,
    strace_argv,
    strace_missing,
    unsynced_publications,
)

# Each part of the sweep keeps two lanes busy; in a parallel run (scripts/test) it shares the
# cores with the other workers and takes about twice its time alone.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

HALVES = (0, 1)  # every other point: the first half plain, the second sealed (unless forced)


def _half(items: Sequence[Any], half: int) -> list[Any]:
    """This half's points of a plan, thinned by DOCKAGENT_SWEEP_SAMPLE for a quick run."""
    sample = max(1, int(os.environ.get("DOCKAGENT_SWEEP_SAMPLE", "1") or 1))
    return list(items[half :: len(HALVES)][::sample])


def _mode(half: int) -> str:
    return "sealed" if alternate(half) else "plain"


SERIAL = "SWEEP01"
# The smallest camera that still has each kind of file: DEVICE.INF, one log (SYSTEM.LOG), one
# video and its .IMP marker (zero bytes). The battery log is left out: one more small file
# adds about 25 crash points and no new code path.
SPEC = CameraSpec(
    serial=SERIAL,
    days=1,
    files_per_day=1,
    file_size=48 * 1024,
    important_every=1,
    other_files=0,
    large_files=0,
    split_every=0,
    audio_every=0,
    photo_every=0,
)
CONFIG = """station_id = "SWEEP"
[log]
# Warnings and errors only: every info line is one more write(2) to stderr, a crash point
# that differs from its neighbours in nothing on disk.
level = "warning"
[storage]
reserve_bytes = 0
[ingest]
wipe_policy = "after_seal"
[sync]
kind = "directory"
directory_root = "{sink}"
# One upload thread: strace numbers calls per thread, so fewer threads shadow fewer calls.
max_parallel_uploads = 1
purge_grace_s = {grace}
[devices]
require_enrollment = false
"""
KEEP_CONFIRMED_S = 86400  # builds the "confirmed, not yet purged" starting point

# Every call of these is a crash point; the variants of rename, link and unlink are swept
# wherever they occur.
EVERY_N = (
    "write",
    "fsync",
    "fdatasync",
    *VARIANTS["rename"],
    *VARIANTS["link"],
    *VARIANTS["unlink"],
    "ftruncate",
    "fallocate",
)
# Samples, to keep the sweep within its time budget (about 1.2 s of CPU per crash point: the
# killed run, import, sync and now and then verify are separate interpreters). A kill before a call that changes
# nothing on disk leaves the disk as a kill before the next call that does, so what the
# samples skip is mostly covered by the swept calls around it.
# SQLite's page writes: every PWRITE_STRIDE-th call (they come in runs within one commit).
PWRITE_STRIDE = 20
# openat on the station, the sink or the camera: every one that opens for writing (creates a
# temp file, the database, the lock); every OPENAT_READ_STRIDE-th read-only one. Of the others
# (Python importing its modules, /etc, /proc: before the station is touched, the same in every
# command) every OPENAT_STARTUP_STRIDE-th, in the import only.
OPENAT_READ_STRIDE = 8
OPENAT_STARTUP_STRIDE = 100
_OPEN_FOR_WRITING = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
TRACED = (*EVERY_N, "pwrite64", "openat", "execve")
LANES = 2
SYNCS = ("fsync", "fdatasync", "syncfs")
# What the durability analysis of a faulty run needs to see (unsynced_publications).
ERROR_TRACED = (*TRACED, "syncfs", "mkdir", "mkdirat")


@pytest.fixture
def strace() -> None:
    """Fails (never skips) when strace cannot inject system-call faults here."""
    missing = strace_missing()
    if missing:
        pytest.fail(
            "this test injects system-call faults with strace but: "
            + "; ".join(missing)
            + ". Install strace (scripts/bootstrap --test does) and allow ptrace.",
            pytrace=False,
        )


# ---- lanes: a station, its camera and its sink, with saved starting points --------------------


class Lane:
    """One station with its camera and sink; starting points are saved and put back whole."""

    def __init__(self, root: Path, camera_fixture: Path, *, sealed: bool) -> None:
        self.root = root
        self.station = Station(root / "station", sealed=sealed)
        self.station.root.mkdir(parents=True)
        self.camera = root / "cam"
        self.sink = root / "sink"
        self.saved = root / "saved"
        self.station.configure(CONFIG.format(sink=self.sink, grace=0))
        self.keep_config = self.station.root / "config-keep.toml"
        self.keep_config.write_text(
            Path(self.station.config_path)
            .read_text()
            .replace("purge_grace_s = 0", f"purge_grace_s = {KEEP_CONFIRMED_S}")
        )
        shutil.copytree(camera_fixture, self.camera, symlinks=True)

    @property
    def data_dir(self) -> Path:
        return self.station.data_dir

    def roots(self) -> dict[str, Path]:
        return {"station": self.station.root, "sink": self.sink, "camera": self.camera}

    def _places(self) -> dict[str, Path]:
        return {"data": self.data_dir, "cam": self.camera, "sink": self.sink}

    def save(self, name: str) -> None:
        for part, live in self._places().items():
            if live.exists():
                shutil.copytree(live, self.saved / name / part, symlinks=True)

    def restore(self, name: str) -> None:
        for part, live in self._places().items():
            shutil.rmtree(live, ignore_errors=True)
            kept = self.saved / name / part
            if kept.exists():
                shutil.copytree(kept, live, symlinks=True)

    def cli(
        self,
        *args: str,
        trace: tuple[Path, Iterable[str]] | None = None,
        inject: str | None = None,
        paths: Sequence[Path] = (),
        **env: str,
    ) -> subprocess.CompletedProcess[str]:
        prefix: list[str] = []
        if trace is not None:
            prefix = strace_argv(trace[0], trace[1], inject=inject, paths=paths)
        return run_cli(
            args, env=self.station.env(**env), log=self.station.cli_log, timeout=120, prefix=prefix
        )

    def staging_temps(self) -> list[str]:
        staging = self.station.staging
        return [str(p) for p in staging.rglob("*") if p.name.endswith(".part")]


@dataclass(frozen=True)
class Phase:
    """A starting point (saved under its name) and the command that is killed from it."""

    name: str
    args: Callable[[Lane], tuple[str, ...]]


PHASES = (
    Phase("import", lambda lane: ("import", str(lane.camera))),  # into a fresh station
    Phase("upload", lambda lane: ("sync", "--once")),  # what that import sealed
    Phase("purge", lambda lane: ("sync", "--once")),  # copies confirmed earlier
)


def _camera(tmp_path: Path) -> tuple[Path, Manifest]:
    cam = tmp_path / "camera"
    write_camera(SPEC, cam)
    (cam / "LOG" / "BATTERY.CSV").unlink()
    return cam, Manifest.of_camera(SERIAL, cam)


def _lanes(
    tmp_path: Path, camera: Path, count: int, *, sealed: bool, upto: str = "purge"
) -> list[Lane]:
    """Lanes with the starting points saved up to `upto`: fresh, after import, after a sync
    that confirmed everything and purged nothing."""
    lanes = [Lane(tmp_path / f"lane{i}", camera, sealed=sealed) for i in range(count)]

    def prepare(lane: Lane) -> None:
        lane.save("import")
        if upto == "import":
            return
        done = lane.cli("import", str(lane.camera))
        assert done.returncode == 0, done.stdout + done.stderr
        lane.save("upload")
        if upto == "upload":
            return
        synced = lane.cli(
            "--foreign-config", "sync", "--once", DOCKAGENT_CONFIG=str(lane.keep_config)
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        lane.save("purge")

    with ThreadPoolExecutor(count) as pool:
        for future in [pool.submit(prepare, lane) for lane in lanes]:
            future.result()
    return lanes


def _on_lanes(lanes: list[Lane], work: Sequence[Any], run: Callable[[Lane, Any], Any]) -> list[Any]:
    """Run `run(lane, item)` for every item, each lane taking the next item when it is free."""
    todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for item in work:
        todo.put(item)
    results: list[Any] = []
    lock = threading.Lock()

    def drain(lane: Lane) -> None:
        while True:
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            result = run(lane, item)
            with lock:
                results.append(result)

    with ThreadPoolExecutor(len(lanes)) as pool:
        for future in [pool.submit(drain, lane) for lane in lanes]:
            future.result()
    return results


def _after_restart(
    lane: Lane, manifest: Manifest, *, reimport: bool = True, verify: bool = True
) -> list[str]:
    """Restart (import, then sync) and check the station; the problems found, if any.

    After a kill in a sync the import is left out (the sync's own start-up recovery is what is
    under test, and the import has nothing new to do), and the agent's own `verify` runs for a
    quarter of the kills: the independent checker after every kill already re-hashes every
    staged copy and verifies every record. Both keep the sweep inside the CI time budget."""
    problems: list[str] = []
    if reimport:
        again = lane.cli("import", str(lane.camera))
        if again.returncode != 0:
            problems.append(f"re-run import exited {again.returncode}: {_tail(again)}")
    synced = lane.cli("sync", "--once")
    if synced.returncode != 0:
        problems.append(f"re-run sync exited {synced.returncode}: {_tail(synced)}")
    sink = directory_sink_objects(lane.sink)
    report = check(manifest, lane.data_dir, cameras={SERIAL: lane.camera}, sink=sink)
    problems += report.problems
    if not report.problems and report.at_sink != len(manifest.files):
        problems.append(f"after the re-run only {report.summary()}")
    if verify:
        checked = lane.cli("verify")
        if checked.returncode != 0:
            problems.append(f"verify exited {checked.returncode}: {_tail(checked)}")
    problems += [f"temp file left in staging: {p}" for p in lane.staging_temps()]
    # Regression: a kill while the directory sink wrote a file's metadata left its temp file
    # in the archive for good (the re-send swept only the file's own temp files).
    problems += [f"temp file left at the sink: {p}" for p in sink[1]]
    return problems


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return " | ".join(text[-3:])[-600:]


def _save_report(tmp_path: Path, section: str, data: dict[str, Any], table: str) -> None:
    """The table beside the test (and on stdout), the numbers into $DOCKAGENT_SWEEP_REPORT."""
    (tmp_path / f"{section}.txt").write_text(table)
    sys.stdout.write(f"\n{table}")
    target = os.environ.get("DOCKAGENT_SWEEP_REPORT")
    if not target:
        return
    path = Path(target)
    merged = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
    merged[section] = data
    path.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")


# ---- kill -9 at every call --------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    phase: str
    syscall: str
    nth: int
    expected: str  # what the dry run's nth call was
    group: str  # the row of the report: the syscall, with its sample stride if sampled


@dataclass
class Outcome:
    point: Point
    killed: str = ""  # the call strace killed ("" if the run did not get that far this time)
    thread: int = -1
    place: str = ""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _dry_run(lane: Lane, phase: Phase) -> list[Call]:
    lane.restore(phase.name)
    out = lane.root / f"dry-{phase.name}.trace"
    proc = lane.cli(*phase.args(lane), trace=(out, TRACED))
    assert proc.returncode == 0, f"dry run of {phase.name}: {_tail(proc)}"
    calls = parse(out.read_text())
    # Regression: the clock check ran `ldconfig -p` (ctypes.util.find_library) at every dock.
    # The agent starts no process; a child would also take kills meant for the agent.
    assert len(of(calls, "execve")) == 1, [c.paths for c in of(calls, "execve")]
    return calls


def _group(phase: Phase, call: Call, roots: dict[str, Path], started: int) -> tuple[str, int]:
    """The report row of a call and its sample stride; ("", 0) for a call not swept here."""
    if phase.name == "purge" and call.thread == 0 and call.line < started:
        return "", 0  # before the upload thread started: the upload phase's, swept there
    if call.syscall == "pwrite64":
        return f"pwrite64 (1 in {PWRITE_STRIDE})", PWRITE_STRIDE
    if call.syscall != "openat":
        return call.syscall, 1
    if call.place(roots) == "other":
        if phase.name != "import":
            return "", 0
        return f"openat (startup, 1 in {OPENAT_STARTUP_STRIDE})", OPENAT_STARTUP_STRIDE
    if not any(flag in call.args for flag in _OPEN_FOR_WRITING):
        return f"openat (read, 1 in {OPENAT_READ_STRIDE})", OPENAT_READ_STRIDE
    return "openat (write)", 1


def _purge_started(calls: list[Call]) -> int:
    """Where a sync that starts no upload thread (it has nothing to upload) begins to purge:
    the transaction before its first unlink in staging. Regression: with no upload thread the
    purge phase took every call for start-up and swept nothing."""
    unlinks = [
        c.line
        for c in calls
        if c.syscall in VARIANTS["unlink"] and any("/staging/" in p for p in c.strings)
    ]
    if not unlinks:
        return len(calls)
    commits = [
        c.line
        for c in calls
        if c.syscall in SYNCS and c.line < unlinks[0] and any(p.endswith("-wal") for p in c.fds)
    ]
    return commits[-2] + 1 if len(commits) >= 2 else 0


def _plan(
    phase: Phase, calls: list[Call], roots: dict[str, Path], counts: dict[str, Counter[str]]
) -> list[Point]:
    """Every N of the EVERY_N calls and of openat for writing, samples of the rest. In the
    purge phase only what the main thread does once the upload thread has started: its calls
    before that (opening the store, recovery) are the upload phase's, swept there.

    `counts` gets, per report row, the calls of the dry run (all threads) and the values of N
    (fewer when the upload thread's nth call comes after the main thread's nth: strace kills
    at whichever comes first, so that call is shadowed)."""
    workers = [c.line for c in calls if c.thread > 0]
    started = workers[0] if workers else _purge_started(calls)
    points: list[Point] = []
    for call in calls:
        group, _ = _group(phase, call, roots, started)
        if group and call.syscall in (*EVERY_N, "pwrite64", "openat"):
            counts[f"{phase.name}|{group}"]["calls"] += 1
    for syscall in (*EVERY_N, "pwrite64", "openat"):
        for nth in range(1, highest_nth(calls, syscall) + 1):
            target = first_reaching(calls, syscall, nth)
            assert target is not None
            group, stride = _group(phase, target, roots, started)
            if not group:
                continue
            row = counts[f"{phase.name}|{group}"]
            row["n"] += 1
            if (row["n"] - 1) % stride == 0:
                expected = f"{target.describe()} [{target.place(roots)}]"
                points.append(Point(phase.name, syscall, nth, expected, group))
    return points


def _kill_at(lane: Lane, point: Point, manifest: Manifest) -> Outcome:
    started = time.monotonic()
    outcome = Outcome(point)
    phase = next(p for p in PHASES if p.name == point.phase)
    try:
        lane.restore(point.phase)
        out = lane.root / "kill.trace"
        proc = lane.cli(
            *phase.args(lane),
            trace=(out, (point.syscall,)),
            inject=f"{point.syscall}:signal=KILL:when={point.nth}",
        )
        killed = killed_call(parse(out.read_text()), point.syscall, point.nth)
        if proc.returncode == -signal.SIGKILL and killed is not None:
            outcome.killed = killed.describe()
            outcome.thread = killed.thread
            outcome.place = killed.place(lane.roots())
            outcome.problems = _after_restart(
                lane, manifest, reimport=point.phase == "import", verify=point.nth % 4 == 1
            )
        elif proc.returncode != 0:
            outcome.problems = [f"not killed, but exited {proc.returncode}: {_tail(proc)}"]
    except Exception as exc:  # a harness failure is reported with the point, not lost
        outcome.problems = [f"harness: {exc!r}"]
    outcome.seconds = time.monotonic() - started
    return outcome


def _crash_table(
    outcomes: list[Outcome], counts: dict[str, Counter[str]], seconds: float
) -> tuple[str, dict[str, Any]]:
    per: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        per[(o.point.phase, o.point.group)].append(o)
    lines = [
        "Syscall crash sweep: SIGKILL at the N-th call (strace counts per thread), then "
        "(import +) sync --once, the nothing-lost checker and (1 in 4) verify",
        f"{'phase':7} {'calls':27} {'in dry run':>10} {'N':>4} {'tried':>5} {'killed':>6} "
        f"{'failed':>6}  killed calls on",
    ]
    data: dict[str, Any] = {"phases": {}, "seconds": round(seconds, 1), "lanes": LANES}
    totals: Counter[str] = Counter()
    order = {p.name: i for i, p in enumerate(PHASES)}
    for (phase, group), batch in sorted(per.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        killed = [o for o in batch if o.killed]
        places = Counter(o.place for o in killed)
        counted = counts[f"{phase}|{group}"]
        row = {
            "in_dry_run": counted["calls"],
            "n_values": counted["n"],
            "tried": len(batch),
            "killed": len(killed),
            "failed": sum(1 for o in batch if o.problems),
            "places": dict(places),
        }
        data["phases"].setdefault(phase, {})[group] = row
        for key in ("in_dry_run", "n_values", "tried", "killed", "failed"):
            totals[key] += int(row[key])
        where = ", ".join(f"{k} {v}" for k, v in sorted(places.items()))
        lines.append(
            f"{phase:7} {group:27} {row['in_dry_run']:>10} {row['n_values']:>4} "
            f"{row['tried']:>5} {row['killed']:>6} {row['failed']:>6}  {where}"
        )
    data["totals"] = dict(totals)
    lines.append(
        f"total: {totals['tried']} runs, {totals['killed']} killed, {totals['failed']} failed, "
        f"{seconds:.0f} s on {LANES} lanes ('N': values of N that reach a call; the rest of "
        "'in dry run' are upload-thread calls whose N the main thread reaches first)"
    )
    return "\n".join(lines) + "\n", data


@pytest.mark.usefixtures("strace")
@pytest.mark.parametrize("half", HALVES, ids=lambda h: f"half{h}-{_mode(h)}")
@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.name)
def test_kill_at_every_call_then_restart_loses_nothing(
    tmp_path: Path, phase: Phase, half: int
) -> None:
    started = time.monotonic()
    camera, manifest = _camera(tmp_path)
    lanes = _lanes(tmp_path, camera, LANES, sealed=alternate(half), upto=phase.name)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    plan = _plan(phase, _dry_run(lanes[0], phase), lanes[0].roots(), counts)
    assert len(plan) >= 2 * len(HALVES), f"{phase.name}: the dry run gave {len(plan)} points"
    points = _half(plan, half)
    outcomes = _on_lanes(lanes, points, lambda lane, p: _kill_at(lane, p, manifest))
    seconds = time.monotonic() - started
    table, data = _crash_table(outcomes, counts, seconds)
    _save_report(tmp_path, f"syscall_crashes[{phase.name}-half{half}-{_mode(half)}]", data, table)
    failures = [o for o in outcomes if o.problems]
    assert not failures, "\n".join(
        f"{o.point.phase} {o.point.syscall}:when={o.point.nth} killed at {o.killed or '-'} "
        f"(dry run: {o.point.expected}): " + "; ".join(o.problems[:4])
        for o in failures[:20]
    )
    # The kills landed: a sweep that silently stopped killing (strace changed, or the
    # commands no longer make these calls) must not pass. A few may miss when the upload
    # thread's calls interleave with the main thread's differently from the dry run.
    for name, groups in data["phases"].items():
        for group, row in groups.items():
            assert row["killed"] >= row["tried"] * 0.8, (name, group, row)


# ---- injected errors ---------------------------------------------------------------------------


def _sealed_and_durable(lane: Lane, calls: list[Call]) -> list[str]:
    """Rows in a custody state (or staged) whose copy, its name or its directory's name was
    not synced before the commit after it was published: for a while the agent said it held
    what a power cut could take."""
    unsynced = unsynced_publications(calls, str(lane.station.staging))
    problems = []
    for row in _rows(lane):
        if row["state"] in ("staged", "sealed", "uploading", "confirmed", "held"):
            final = str(lane.station.staging / row["staged_path"])
            if final in unsynced:
                problems.append(f"row {row['id']} is {row['state']} but {unsynced[final]}")
    return problems


def _rows(lane: Lane) -> list[dict[str, Any]]:
    """The station's file rows; none when the fault came before the database existed."""
    return rows(lane.data_dir) if (lane.data_dir / "dockagent.db").exists() else []


@dataclass
class Injected:
    """One injected error and what the agent did with it."""

    syscall: str
    nth: int
    error: str
    target: str
    exit_code: int
    message: str
    sealed: int
    problems: list[str] = field(default_factory=list)


def _retry_completes(lane: Lane, manifest: Manifest) -> list[str]:
    problems = _after_restart(lane, manifest)
    return [f"retry: {p}" for p in problems]


def _one_error(
    lane: Lane,
    item: tuple[str, int, str, str],
    manifest: Manifest,
    expect: Callable[[subprocess.CompletedProcess[str], Injected], list[str]],
) -> Injected:
    try:
        return _inject_error(lane, item, manifest, expect)
    except Exception as exc:  # a harness failure is reported with the call, not lost
        return Injected(*item, exit_code=-1, message="", sealed=0, problems=[f"harness: {exc!r}"])


def _inject_error(
    lane: Lane,
    item: tuple[str, int, str, str],
    manifest: Manifest,
    expect: Callable[[subprocess.CompletedProcess[str], Injected], list[str]],
) -> Injected:
    syscall, nth, error, target = item
    lane.restore("import")
    out = lane.root / "error.trace"
    proc = lane.cli(
        "import",
        str(lane.camera),
        trace=(out, ERROR_TRACED),
        inject=f"{syscall}:error={error}:when={nth}",
    )
    calls = parse(out.read_text())
    hit = [c for c in of(calls, syscall) if c.nth == nth and c.errno == error]
    sealed = sum(1 for r in _rows(lane) if r["state"] == "sealed")
    message = next((line for line in proc.stderr.splitlines() if line.startswith("dockagent:")), "")
    message = message.replace(str(lane.root), "<lane>")
    result = Injected(syscall, nth, error, target, proc.returncode, message, sealed)
    if not hit:
        result.problems.append(f"strace did not fail {syscall} #{nth} ({target})")
        return result
    if "Traceback" in proc.stderr:
        result.problems.append(f"crashed with a traceback: {_tail(proc)}")
    result.problems += expect(proc, result)
    result.problems += _sealed_and_durable(lane, calls)
    result.problems += [f"temp file left in staging: {p}" for p in lane.staging_temps()]
    if not all((lane.data_dir / name).exists() for name in ("dockagent.db", "station.key")):
        # Failed before the station had its database or its key: it holds nothing, so the
        # camera must still hold everything.
        if Manifest.scan(lane.camera) != Manifest.scan(lane.saved / "import" / "cam"):
            result.problems.append("the camera changed, though the station holds nothing")
    else:
        # Sidecars are written after the chain's commit and restored by recovery (README, "How
        # evidence is kept"), so one may be missing until the retry; the retry checks them all.
        report = check(
            manifest,
            lane.data_dir,
            cameras={SERIAL: lane.camera},
            sink=([], []),
            check_sidecars=False,
        )
        result.problems += report.problems
    result.problems += _retry_completes(lane, manifest)
    return result


def _targets(
    lane: Lane, syscalls: Iterable[str], where: Callable[[Call], bool]
) -> list[tuple[str, int, str]]:
    """(syscall, nth, what it touches) of every call of a dry import that `where` selects."""
    lane.restore("import")
    out = lane.root / "targets.trace"
    proc = lane.cli("import", str(lane.camera), trace=(out, ERROR_TRACED))
    assert proc.returncode == 0, _tail(proc)
    calls = parse(out.read_text())
    return [(c.syscall, c.nth, c.paths[0]) for c in calls if c.syscall in syscalls and where(c)]


def _error_table(title: str, results: list[Injected]) -> str:
    lines = [title, f"{'call':22} {'exit':>4} {'sealed':>6}  target / message"]
    for r in sorted(results, key=lambda r: (r.syscall, r.nth)):
        lines.append(
            f"{r.syscall + ' #' + str(r.nth):22} {r.exit_code:>4} {r.sealed:>6}  "
            f"{r.target.rsplit('/', 2)[-2:]} {r.message[:110]}"
        )
    failed = [r for r in results if r.problems]
    lines.append(f"{len(results)} injected, {len(failed)} failed")
    return "\n".join(lines) + "\n"


def _assert_clean(results: list[Injected]) -> None:
    failed = [r for r in results if r.problems]
    assert not failed, "\n".join(
        f"{r.error} at {r.syscall} #{r.nth} ({r.target}): exit {r.exit_code}, "
        f"{r.message!r}: " + "; ".join(r.problems[:4])
        for r in failed[:12]
    )


@pytest.mark.usefixtures("strace")
@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
def test_no_row_is_sealed_before_its_copy_is_durable(tmp_path: Path, sealed: bool) -> None:
    """A first import, traced and undisturbed: every staged copy (its content at its final
    size, its name, its directory's name) was synced before the commit that says it is sealed.

    Regression: a copy sealed to the central key is reserved at its size bound, and a batch's
    copy was cut to its size after the batch's syncfs and published unsynced (its size on
    disk the bound's, its tail zeros, until the file system's own writeback)."""
    camera, _ = _camera(tmp_path)
    (lane,) = _lanes(tmp_path, camera, 1, sealed=sealed, upto="import")
    lane.restore("import")
    out = lane.root / "durable.trace"
    proc = lane.cli("import", str(lane.camera), trace=(out, ERROR_TRACED))
    assert proc.returncode == 0, _tail(proc)
    assert {r["state"] for r in _rows(lane)} == {"sealed"}
    assert _sealed_and_durable(lane, parse(out.read_text())) == []


@pytest.mark.usefixtures("strace")
def test_eio_reading_one_camera_file_is_a_per_file_problem(tmp_path: Path) -> None:
    camera, manifest = _camera(tmp_path)
    (lane,) = _lanes(tmp_path, camera, 1, sealed=alternate(0), upto="import")
    lane.restore("import")
    video = next(lane.camera.rglob("*.MP4"))
    name = video.relative_to(lane.camera).as_posix()
    reads = ("read", "readv", "pread64", "preadv", "preadv2")
    out = lane.root / "eio.trace"
    proc = lane.cli(
        "import",
        str(lane.camera),
        trace=(out, reads),
        inject=",".join(reads) + ":error=EIO",
        paths=[video],
    )
    assert any(c.errno == "EIO" for c in parse(out.read_text())), "no read of the video failed"
    assert proc.returncode == EXIT_INCOMPLETE, _tail(proc)
    assert f"NOT SEALED  {name}: EIO" in proc.stdout, proc.stdout
    by_name = {bytes(r["camera_path"]).decode(): r for r in rows(lane.data_dir)}
    failed = by_name.pop(name)
    # A failed camera read is retried at the next dock; EIO is classified retryable, so the row
    # goes back to `discovered` (`failed` is for permanent ones), with the reason on the row.
    assert failed["state"] in ("discovered", "failed") and "EIO" in failed["reason"], failed
    assert {r["state"] for r in by_name.values()} == {"sealed"}, by_name
    assert not list(lane.station.staging.rglob(f"{failed['id']:08d}.*"))
    assert lane.staging_temps() == []
    # Nothing was wiped: the camera still holds every file as it was.
    assert Manifest.scan(lane.camera) == Manifest.scan(camera)
    held = [(SERIAL, n.encode()) for n in by_name]
    report = check(
        manifest, lane.data_dir, cameras={SERIAL: lane.camera}, sink=([], []), reported_held=held
    )
    assert not report.problems, report.problems
    # Docked again without the fault: sealed, then wiped, uploaded and verified.
    assert not _after_restart(lane, manifest)
    final = {bytes(r["camera_path"]).decode(): r for r in rows(lane.data_dir)}
    assert final[name]["state"] == "confirmed" and final[name]["reason"] == ""
    _save_report(
        tmp_path,
        "eio_camera_read",
        {"exit_code": proc.returncode, "row_state": failed["state"], "reason": failed["reason"]},
        f"EIO on every read of {name}: exit {proc.returncode}, row {failed['state']} "
        f"({failed['reason']}), {len(by_name)} other files sealed, nothing wiped; "
        "the next import sealed it\n",
    )


def _expect_io_failure(proc: subprocess.CompletedProcess[str], r: Injected) -> list[str]:
    """EIO on a sync: the agent went on and everything it reported is in the store; or the
    file being copied was left unsealed with the error as its reason (exit 3); or it stopped
    with EX_IOERR and a message naming the error."""
    if proc.returncode == 0:
        return [] if "4 sealed now" in proc.stdout and r.sealed == 4 else [_tail(proc)]
    if proc.returncode == EXIT_INCOMPLETE:
        return [] if "NOT SEALED" in proc.stdout and "EIO" in proc.stdout else [_tail(proc)]
    if proc.returncode != EX_IOERR:
        return [f"exit {proc.returncode}, not {EX_IOERR}: {_tail(proc)}"]
    if not any(word in r.message for word in ("EIO", "I/O error")):
        return [f"message does not name the I/O error: {r.message!r}"]
    return []


# EIO on the database's syncs: every DB_EIO_STRIDE-th (there are about 35 in a first import,
# half of them building the database; each is handled by the same code, in SQLite).
DB_EIO_STRIDE = 3


@pytest.mark.usefixtures("strace")
@pytest.mark.parametrize("half", HALVES, ids=lambda h: f"half{h}-{_mode(h)}")
def test_eio_on_the_syncs_of_staging_and_the_database(tmp_path: Path, half: int) -> None:
    camera, manifest = _camera(tmp_path)
    lanes = _lanes(tmp_path, camera, LANES, sealed=alternate(half), upto="import")
    station, staging = lanes[0].station.root, lanes[0].station.staging
    targets = _targets(
        lanes[0], SYNCS, lambda c: c.place({"station": station}) == "station" and c.result == "0"
    )
    database = [t for t in targets if "/dockagent.db" in t[2]]
    items = [(s, n, "EIO", t) for s, n, t in targets if (s, n, t) not in database]
    items += [(s, n, "EIO", t) for s, n, t in database[::DB_EIO_STRIDE]]
    items = _half(items, half)
    results = _on_lanes(
        lanes, items, lambda lane, it: _one_error(lane, it, manifest, _expect_io_failure)
    )
    in_staging = [r for r in results if r.target.startswith(str(staging))]
    in_database = [r for r in results if "/dockagent.db" in r.target]
    table = _error_table(
        f"EIO on the syncs of a first import ({_mode(half)}, every other one): "
        f"{len(in_staging)} of staging, {len(results) - len(in_staging) - len(in_database)} of "
        f"the key and the data directory, {len(in_database)} of the {len(database)} of the "
        "database",
        results,
    )
    _save_report(
        tmp_path,
        f"eio_station_sync[half{half}-{_mode(half)}]",
        {
            "injected": len(results),
            "staging": len(in_staging),
            "database": [len(database[::DB_EIO_STRIDE]), len(database)],
            "exit_codes": dict(Counter(str(r.exit_code) for r in results)),
        },
        table,
    )
    # The plan (both halves) reaches staging's syncs and the database's.
    assert sum(1 for t in targets if t[2].startswith(str(staging))) >= 4 and database, table
    _assert_clean(results)


def _expect_no_space(proc: subprocess.CompletedProcess[str], r: Injected) -> list[str]:
    problems = []
    if proc.returncode != EX_TEMPFAIL:
        problems.append(f"exit {proc.returncode}, not {EX_TEMPFAIL}: {_tail(proc)}")
    if not any(word in r.message for word in ("ENOSPC", "space", "full")):
        problems.append(f"not a no-space message: {r.message!r}")
    if r.sealed and "nothing was copied" in r.message:
        problems.append(f"says nothing was copied with {r.sealed} files sealed: {r.message!r}")
    return problems


@pytest.mark.usefixtures("strace")
@pytest.mark.parametrize("half", HALVES, ids=lambda h: f"half{h}-{_mode(h)}")
def test_enospc_on_every_staging_write_and_fallocate(tmp_path: Path, half: int) -> None:
    camera, manifest = _camera(tmp_path)
    lanes = _lanes(tmp_path, camera, LANES, sealed=alternate(half), upto="import")
    staging = lanes[0].station.staging
    targets = _targets(
        lanes[0],
        ("write", "pwrite64", "fallocate"),
        lambda c: c.place({"staging": staging}) == "staging",
    )
    items = _half([(s, n, "ENOSPC", t) for s, n, t in targets], half)
    results = _on_lanes(
        lanes, items, lambda lane, it: _one_error(lane, it, manifest, _expect_no_space)
    )
    table = _error_table("ENOSPC on each write and fallocate in staging (import)", results)
    _save_report(
        tmp_path,
        f"enospc_staging[half{half}-{_mode(half)}]",
        {"injected": len(results), "exit_codes": dict(Counter(str(r.exit_code) for r in results))},
        table,
    )
    assert {s for s, _, _ in targets} >= {"write", "fallocate"}, table  # both halves' plan
    _assert_clean(results)
