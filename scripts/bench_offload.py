"""`scripts/bench offload`: dockagent's single-pass copy+hash against two-pass references.

Each measured run is one whole process (or pipeline of processes), timed wall-clock from start
to end, on a fresh destination:

  dockagent      python3 -m agent.cli.main import SRC --json   (fresh data dir, reserve 0,
                 wipe_policy never); it fsyncs every file itself, so no `sync` is added
  cp+openssl+sync  cp -r SRC DST; openssl dgst -sha256 on every copy; sync
  cp+sync        cp -r SRC DST; sync
  dockagent+age  dockagent with `[custody] encrypt_to` set to a fresh age key: every copy
                 encrypted in the same pass (workloads a and b; the report adds the CPU
                 seconds per GiB with encryption on and off)
  age+openssl+sync  the same job as dockagent+age by the reference tools, one pass each:
                 openssl dgst -sha256 of every camera file (the evidence's hash), age -e of
                 each to its copy, openssl dgst -sha256 of every ciphertext (the stored copy's
                 hash, what a sink proves), sync (workload a only: age encrypts one file a
                 process, so many small files would time process start-ups)

COLD: `sync; echo 3 > /proc/sys/vm/drop_caches` before the run (this also evicts Python and
its libraries, as after a reboot). WARM: every source file read once just before the run.
Workloads: (a) a few large files laid out by the camera simulator, (b) many small files,
(c) one very large file for dockagent's peak RSS (from wait4(2) on that very process), and
(m, only when asked: --only ...,m) 100,000 small files for dockagent's peak RSS, cold, which
must stay flat in the number of files. CPU seconds (user+sys of every process of a method) are
also shown per GiB, and dockagent's against the references' of the same run.
Test and demo tooling only; it writes nothing outside its work directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000
CHUNK = MIB
SERIAL = "BENCH0001"
DAY = "20261127"
COLD, WARM = "cold", "warm"
WORKLOADS = ("s", "a", "b", "c", "m")
DOCKAGENT, TWO_PASS, CP_SYNC = "dockagent", "cp+openssl+sync", "cp+sync"
DOCKAGENT_AGE = "dockagent+age"
AGE_PASSES = "age+openssl+sync"
METHODS = (DOCKAGENT, TWO_PASS, CP_SYNC, DOCKAGENT_AGE)
LARGE_METHODS = (*METHODS, AGE_PASSES)
CONFIG = (
    'station_id = "BENCH-STATION"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
)
# Agents with an allow-list refuse unenrolled serials; the bench measures the copy, not that.
CONFIG_DEVICES = "[devices]\nrequire_enrollment = false\n"
_PROBE = """
import dataclasses, agent.cli.main, agent.core.config as c
names = {f.name for f in dataclasses.fields(c.Config)}
sub = {f.name for f in dataclasses.fields(c.DevicesConfig)} if "devices" in names else set()
print("require_enrollment" in sub)
"""


def station_config(agent_root: Path) -> str:
    """The bench's config for the agent in agent_root; fails early if that agent is broken."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKAGENT_")}
    env["PYTHONPATH"] = str(agent_root)
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=agent_root,
        check=False,
        timeout=60,
    )
    if probe.returncode != 0:
        raise RunFailed(f"the agent in {agent_root} cannot be imported:\n{probe.stderr[-1500:]}")
    return CONFIG + (CONFIG_DEVICES if probe.stdout.strip() == "True" else "")


# Targets (ratios are reference seconds / dockagent seconds: >1 = faster).
TARGET_TWO_PASS = 1.3
TARGET_CP_COLD = 0.9
TARGET_CP_WARM = 0.75
TARGET_PEAK_MIB = 100
TARGET_SMALL_FPS = 200
TARGET_SMALL_RSS_MIB = 64  # many small files: (b) 10,000 and (m) 100,000 alike
TARGET_CPU_VS_TWO_PASS = 1.0  # the references' CPU seconds / dockagent's: at most theirs


def _gnu_time() -> str:
    path = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else "")
    if not path:
        return ""
    try:
        probe = subprocess.run(
            [path, "-f", "%M", "true"], capture_output=True, text=True, check=False, timeout=10
        )
    except OSError:
        return ""
    return path if probe.returncode == 0 and probe.stderr.strip().isdigit() else ""


GNU_TIME = _gnu_time()


# --- sizes ------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """1234, 4K, 16M, 2G (binary units)."""
    units = {"K": KIB, "M": MIB, "G": GIB, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    try:
        value = int(float(number) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"negative size: {text!r}")
    return value


def human(n: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


class RunFailed(RuntimeError):
    pass


# --- incompressible data ----------------------------------------------------------------------


class RandomStream:
    """Incompressible bytes fast: AES-128-CTR keystream (cryptography, a dependency of the
    project) from a random key, ~1+ GB/s; os.urandom (~350 MB/s here) if it is unavailable."""

    def __init__(self) -> None:
        self.zeros = bytes(CHUNK)
        self._enc: object | None = None
        try:
            from cryptography.hazmat.primitives.ciphers import (  # noqa: PLC0415
                Cipher,
                algorithms,
                modes,
            )

            cipher = Cipher(algorithms.AES(os.urandom(16)), modes.CTR(os.urandom(16)))
            self._enc = cipher.encryptor()
        except ImportError:
            self._enc = None

    def take(self, n: int) -> bytes:
        if self._enc is None:
            return os.urandom(n)
        zeros = self.zeros if n == CHUNK else bytes(n)
        return self._enc.update(zeros)  # type: ignore[attr-defined,no-any-return]


def write_random_file(path: Path, size: int, rnd: RandomStream, mtime: float | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        left = size
        while left:
            piece = rnd.take(min(CHUNK, left))
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view) :]
            left -= len(piece)
    finally:
        os.close(fd)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


# --- camera-like source directories -----------------------------------------------------------


@dataclass
class Source:
    path: Path
    files: int
    bytes: int
    how: str  # which generator laid it out


def _device_inf(root: Path) -> None:
    (root / "DEVICE.INF").write_text(
        f"serial={SERIAL}\nvendor=Bench\nmodel=BWC-BENCH\nfirmware=1.0.0\n"
        "officer_id=100234\nunit=BENCH\n",
        encoding="utf-8",
    )


def _recording_name(index: int, ext: str = "MP4") -> str:
    """<SERIAL>_<OFFICER>_<YYYYMMDDhhmmss>_<NNNN>.<EXT>, unique per index (4 s apart)."""
    seconds = 7 * 3600 + 4 * index
    stamp = f"{DAY}{seconds // 3600 % 24:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"
    return f"{SERIAL}_100234_{stamp}_{index % 10000:04d}.{ext}"


def make_bench_camera(root: Path, sizes: Sequence[int], rnd: RandomStream) -> Source:
    """DEVICE.INF with serial=BENCH0001 at the root and the files under RECORD/20261127/."""
    record = root / "RECORD" / DAY
    record.mkdir(parents=True)
    _device_inf(root)
    when = datetime(2026, 11, 27, 19, 0).timestamp()
    for index, size in enumerate(sizes):
        write_random_file(record / _recording_name(index + 1), size, rnd, when)
    return _describe(root, "written by the bench")


def make_simulated_camera(root: Path, count: int, total: int, rnd: RandomStream) -> Source:
    """Large files laid out by scripts.simulator.cameras (directory format); the bench's own
    layout if the simulator cannot be used (it is test tooling and may be mid-change)."""
    size = total // max(1, count)
    try:
        from scripts.simulator.cameras import CameraSpec, write_camera  # noqa: PLC0415

        spec = CameraSpec(
            serial=SERIAL,
            days=1,
            files_per_day=count,
            file_size=size,
            size_jitter=0.0,
            split_every=0,
            important_every=0,
            other_files=0,
            audio_every=0,
            photo_every=0,
            first_day=date(2026, 11, 27),
            docked_at=datetime(2026, 11, 28, 8, 0),
        )
        write_camera(spec, root)
        return _describe(root, "scripts.simulator.cameras.write_camera")
    except Exception as exc:  # any simulator failure: fall back to our layout, and say so
        print(f"  note: simulator unusable ({type(exc).__name__}: {exc}); bench layout used")
        shutil.rmtree(root, ignore_errors=True)
        return make_bench_camera(root, [size] * count, rnd)


def _describe(root: Path, how: str) -> Source:
    files = 0
    total = 0
    for path in iter_files(root):
        files += 1
        total += path.stat().st_size
    return Source(root, files, total, how)


def iter_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in sorted(names):
            yield Path(dirpath) / name


# --- cache control ----------------------------------------------------------------------------


def sync() -> None:
    os.sync()


def cached_kib() -> int:
    """Page cache that drop_caches can drop: Cached less Shmem (tmpfs, /dev/shm stay)."""
    values = {}
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0])
    return values.get("Cached", 0) - values.get("Shmem", 0)


def cpu_busy_seconds() -> float:
    """Whole-machine busy CPU time so far (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_report() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        load = " ".join(f.read().split()[:3])
    pressure = []
    for kind in ("cpu", "io"):
        try:
            with open(f"/proc/pressure/{kind}", encoding="ascii") as f:
                avg60 = f.readline().split()[2].split("=")[1]
            pressure.append(f"{kind} {avg60}%")
        except (OSError, IndexError):
            pass
    more = f"; pressure (some, avg60): {', '.join(pressure)}" if pressure else ""
    return f"load average {load}{more}"


def drop_caches() -> str:
    """'' when the page cache was dropped, else why not."""
    sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("3\n")
    except OSError as exc:
        return f"cannot write /proc/sys/vm/drop_caches: {exc.strerror}"
    return ""


def read_all(root: Path, buf: bytearray) -> None:
    view = memoryview(buf)
    for path in iter_files(root):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while os.readv(fd, [view]):
                pass
        finally:
            os.close(fd)


def fs_type(path: Path) -> str:
    """File-system type of the mount holding path (longest mount-point prefix)."""
    target = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            point = before.split(" ")[4].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, after.split(" ")[0]
    return kind


# --- running and measuring --------------------------------------------------------------------


@dataclass
class ProcResult:
    code: int
    cpu: float  # user + sys seconds
    maxrss_kib: int
    rss_upper_bound: bool = False  # includes the bench's own RSS at fork (no GNU time)


def run_measured(
    argv: Sequence[str],
    *,
    stdout: Path | None = None,
    stderr: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcResult:
    """Run one process and reap it with wait4(2): its own rusage, peak RSS included."""
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(stdout, "wb")) if stdout else subprocess.DEVNULL
        err = stack.enter_context(open(stderr, "wb")) if stderr else subprocess.DEVNULL
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return ProcResult(proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


@dataclass
class Run:
    workload: str
    cache: str
    method: str
    seconds: float
    files: int
    bytes: int
    cpu: float
    maxrss_kib: int
    cold_ok: bool = True
    rss_upper_bound: bool = False
    other_cpu: float = 0.0  # CPU seconds the rest of the machine used meanwhile

    @property
    def mb_s(self) -> float:
        return self.bytes / MB / self.seconds

    @property
    def files_s(self) -> float:
        return self.files / self.seconds

    @property
    def cpu_per_gib(self) -> float | None:
        """None below 1 MiB copied (the fixed cost's camera: a ratio of nothing)."""
        return self.cpu / (self.bytes / GIB) if self.bytes >= MIB else None


@dataclass
class Bench:
    workdir: Path
    agent_root: Path
    config: str
    verbose: bool = False
    runs: list[Run] = field(default_factory=list)
    cold_problem: str = ""  # why the last failed drop_caches failed
    counter: int = 0
    buf: bytearray = field(default_factory=lambda: bytearray(CHUNK))

    # -- the three methods -----------------------------------------------------------------

    def dockagent(self, src: Source, dest: Path, *, encrypted: bool = False) -> ProcResult:
        station = dest
        station.mkdir()
        config = station / "config.toml"
        extra = f'[custody]\nencrypt_to = ["{age_recipient()}"]\n' if encrypted else ""
        config.write_text(self.config + extra, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKAGENT_")}
        env.update(
            {
                "DOCKAGENT_DATA_DIR": str(station / "data"),
                "DOCKAGENT_CONFIG": str(config),
                "PYTHONPATH": str(self.agent_root),
            }
        )
        out, err = station / "stdout.json", station / "stderr.log"
        self._install(station, env)
        argv = [sys.executable, "-m", "agent.cli.main", "import", str(src.path), "--json"]
        rss_file = station / "maxrss"
        if GNU_TIME:
            # wait4's ru_maxrss of our own child would include this bench's RSS at fork time;
            # GNU time forks dockagent from a ~2 MiB process and reports the child's own.
            argv = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *argv]
        result = run_measured(argv, stdout=out, stderr=err, env=env, cwd=self.agent_root)
        if GNU_TIME and rss_file.exists():
            result.maxrss_kib = int(rss_file.read_text().split()[-1])
        else:
            result.rss_upper_bound = True
        tail = err.read_text(errors="replace")[-2000:]
        if result.code != 0:
            raise RunFailed(f"dockagent import exited {result.code}:\n{tail}")
        summary = json.loads(out.read_text())
        if summary.get("files_sealed") != src.files or summary.get("bytes_copied") != src.bytes:
            raise RunFailed(
                f"dockagent sealed {summary.get('files_sealed')} files, "
                f"{summary.get('bytes_copied')} bytes; expected {src.files}, {src.bytes}"
            )
        return result

    def _install(self, station: Path, env: dict[str, str]) -> None:
        """The station as installed and running: its database made and migrated (by an import
        of a camera with one small file, unmeasured), as the daemon does at its first start.
        The measured import is then what every dock after the first costs."""
        first = station / "first-camera"
        first.mkdir()
        (first / "DEVICE.INF").write_text("serial=FIRST0001\nofficer_id=100001\n")
        argv = [sys.executable, "-m", "agent.cli.main", "import", str(first), "--json"]
        done = subprocess.run(
            argv, env=env, cwd=self.agent_root, capture_output=True, check=False, timeout=300
        )
        if done.returncode != 0:
            raise RunFailed(f"the station's first import exited {done.returncode}")

    def cp(self, src: Source, dest: Path, *, hash_copies: bool) -> ProcResult:
        total = run_measured(["cp", "-r", str(src.path), str(dest)])
        if total.code != 0:
            raise RunFailed(f"cp -r exited {total.code}")
        if hash_copies:
            total = _add(total, _dgst(list(iter_files(dest)), src.files, dest))
        r = run_measured(["sync"])
        return _add(total, r)

    def age_passes(self, src: Source, dest: Path) -> ProcResult:
        """What dockagent+age does, by the reference tools in three passes."""
        recipient = age_recipient()
        sources = list(iter_files(src.path))
        total = _dgst(sources, src.files, dest)
        for path in sources:
            out = dest / path.relative_to(src.path)
            out.parent.mkdir(parents=True, exist_ok=True)
            r = run_measured(["age", "-e", "-r", recipient, "-o", str(out), str(path)])
            if r.code != 0:
                raise RunFailed(f"age exited {r.code}")
            total = _add(total, r)
        total = _add(total, _dgst(list(iter_files(dest)), src.files, dest))
        return _add(total, run_measured(["sync"]))

    # -- one measured run ------------------------------------------------------------------

    def measure(self, workload: str, src: Source, method: str, cache: str) -> Run:
        self.counter += 1
        dest = self.workdir / f"out-{self.counter:03d}"
        cold_ok = True
        if cache == COLD:
            before = cached_kib()
            problem = drop_caches()
            after = cached_kib()
            if not problem and after > max(before // 2, 256 * KIB):
                problem = f"page cache still {after // KIB} MiB after drop_caches"
            if problem:
                self.cold_problem = problem
            cold_ok = not problem
        else:
            sync()
            read_all(src.path, self.buf)
        actions: dict[str, Callable[[], ProcResult]] = {
            DOCKAGENT: lambda: self.dockagent(src, dest),
            DOCKAGENT_AGE: lambda: self.dockagent(src, dest, encrypted=True),
            TWO_PASS: lambda: self.cp(src, dest, hash_copies=True),
            CP_SYNC: lambda: self.cp(src, dest, hash_copies=False),
            AGE_PASSES: lambda: self.age_passes(src, dest),
        }
        busy = cpu_busy_seconds()
        start = time.perf_counter()
        result = actions[method]()
        seconds = time.perf_counter() - start
        other = max(0.0, cpu_busy_seconds() - busy - result.cpu)
        run = Run(
            workload,
            cache,
            method,
            seconds,
            src.files,
            src.bytes,
            result.cpu,
            result.maxrss_kib,
            cold_ok,
            result.rss_upper_bound,
            other,
        )
        self.runs.append(run)
        if self.verbose:
            print(
                f"  {workload:<8} {cache:<4} {method:<16} {seconds:8.2f} s  "
                f"{run.mb_s:8.1f} MB/s  {run.files_s:9.1f} files/s  "
                f"{_rss(run)}  other CPU {other:.2f} s",
                flush=True,
            )
        shutil.rmtree(dest)
        with contextlib.suppress(FileNotFoundError):
            (dest.parent / f"{dest.name}.sha256").unlink()
        sync()  # the deletion's write-back must not land in the next run
        return run


def _rss(run: Run) -> str:
    """Peak RSS of the dockagent process; '-' for the references (not measured)."""
    if run.method not in (DOCKAGENT, DOCKAGENT_AGE):
        return "-"
    return f"{'<=' if run.rss_upper_bound else ''}{run.maxrss_kib / KIB:.1f} MiB"


def age_recipient() -> str:
    """A fresh age X25519 recipient (its identity is thrown away: nothing is decrypted)."""
    from pyrage import x25519  # noqa: PLC0415  (the agent's dependency, only for this method)

    return str(x25519.Identity.generate().to_public())


def cpu_per_gib(runs: list[Run], workloads: list[tuple[str, str]]) -> list[str]:
    """Lines: dockagent's CPU seconds per GiB copied with encryption off and on, and the
    references' of the same run, per cell."""
    lines = []
    for name, _title in workloads:
        for cache in (COLD, WARM):
            off, on = best(runs, name, cache, DOCKAGENT), best(runs, name, cache, DOCKAGENT_AGE)
            if off is None or on is None or off.bytes < MIB:
                continue
            a, b = off.cpu / (off.bytes / GIB), on.cpu / (on.bytes / GIB)
            refs = ""
            for method in (AGE_PASSES, TWO_PASS, CP_SYNC):
                ref = best(runs, name, cache, method)
                if ref is not None:
                    refs += f"; {method} {ref.cpu / (ref.bytes / GIB):.2f} s/GiB"
            lines.append(
                f"  {name:<8} {cache:<4} encryption off {a:6.2f} s/GiB, on {b:6.2f} s/GiB "
                f"(+{b - a:.2f} s/GiB){refs}; wall {off.seconds:.2f} s vs {on.seconds:.2f} s"
            )
    return lines


def _dgst(paths: list[Path], expected: int, dest: Path) -> ProcResult:
    """openssl dgst -sha256 of every path, in batches; fails unless all `expected` hashed."""
    total = ProcResult(0, 0.0, 0)
    hashed = 0
    for start in range(0, len(paths), 2000):  # stay well under ARG_MAX
        batch = [str(p) for p in paths[start : start + 2000]]
        out = dest.parent / f"{dest.name}.sha256"
        r = run_measured(["openssl", "dgst", "-sha256", *batch], stdout=out)
        if r.code != 0:
            raise RunFailed(f"openssl dgst exited {r.code}")
        hashed += sum(1 for _ in out.open("rb"))
        total = _add(total, r)
    if hashed != expected:
        raise RunFailed(f"openssl hashed {hashed} files, expected {expected}")
    return total


def _add(a: ProcResult, b: ProcResult) -> ProcResult:
    return ProcResult(b.code, a.cpu + b.cpu, max(a.maxrss_kib, b.maxrss_kib))


# --- report -----------------------------------------------------------------------------------


def best(runs: list[Run], workload: str, cache: str, method: str) -> Run | None:
    """Fastest of the repeats (least disturbed by the VM's neighbours)."""
    found = [r for r in runs if (r.workload, r.cache, r.method) == (workload, cache, method)]
    return min(found, key=lambda r: r.seconds) if found else None


def ratio(ref: Run | None, dock: Run | None) -> float | None:
    if ref is None or dock is None:
        return None
    return ref.seconds / dock.seconds


def cpu_ratio(ref: Run | None, dock: Run | None) -> float | None:
    """The reference's CPU seconds / dockagent's (>= 1: dockagent uses at most as much)."""
    if ref is None or dock is None or not dock.cpu:
        return None
    return ref.cpu / dock.cpu


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_table(runs: list[Run], workloads: list[tuple[str, str]]) -> None:
    header = (
        f"{'workload':<10} {'cache':<6} {'method':<16} {'seconds':>8} {'MB/s':>8} "
        f"{'files/s':>9} {'cpu s':>7} {'s/GiB':>6} {'other':>6} {'peak RSS':>10} "
        f"{'vs 2-pass':>9} {'vs cp+sync':>10} {'cpu vs 2-pass':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, _title in workloads:
        for cache in (COLD, WARM):
            for method in LARGE_METHODS:
                run = best(runs, name, cache, method)
                if run is None:
                    continue
                vs_two = vs_cp = cpu_two = ""
                if method == DOCKAGENT:
                    two = best(runs, name, cache, TWO_PASS)
                    vs_two = fmt_ratio(ratio(two, run))
                    vs_cp = fmt_ratio(ratio(best(runs, name, cache, CP_SYNC), run))
                    cpu_two = fmt_ratio(cpu_ratio(two, run))
                per_gib = "-" if run.cpu_per_gib is None else f"{run.cpu_per_gib:.2f}"
                rss = _rss(run)
                cache_label = cache if run.cold_ok else f"{cache}*"
                print(
                    f"{name:<10} {cache_label:<6} {method:<16} {run.seconds:8.2f} "
                    f"{run.mb_s:8.1f} {run.files_s:9.1f} {run.cpu:7.2f} {per_gib:>6} "
                    f"{run.other_cpu:6.2f} {rss:>10} {vs_two:>9} {vs_cp:>10} {cpu_two:>13}"
                )
        print()


@dataclass
class Target:
    name: str
    value: str
    goal: str
    met: bool | None  # None: not measured

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.met]


def targets(runs: list[Run], large: str, small: str, peak: str, many: str) -> list[Target]:
    out: list[Target] = []

    def check(name: str, value: float | None, goal: float, unit: str, above: bool) -> None:
        if value is None:
            out.append(Target(name, "not run", f"{'>=' if above else '<'} {goal}{unit}", None))
            return
        met = value >= goal if above else value < goal
        shown = f"{value:.2f}{unit}" if unit == "x" else f"{value:.1f}{unit}"
        out.append(Target(name, shown, f"{'>=' if above else '<'} {goal}{unit}", met))

    for cache in (COLD, WARM):
        dock = best(runs, large, cache, DOCKAGENT)
        check(
            f"({large}) {cache}: dockagent vs cp+openssl+sync",
            ratio(best(runs, large, cache, TWO_PASS), dock),
            TARGET_TWO_PASS,
            "x",
            above=True,
        )
    for cache, goal in ((COLD, TARGET_CP_COLD), (WARM, TARGET_CP_WARM)):
        dock = best(runs, large, cache, DOCKAGENT)
        check(
            f"({large}) {cache}: dockagent vs cp+sync",
            ratio(best(runs, large, cache, CP_SYNC), dock),
            goal,
            "x",
            above=True,
        )
    peaks = [r.maxrss_kib for r in runs if r.workload == peak and r.method == DOCKAGENT]
    check(
        f"({peak}) dockagent peak RSS",
        max(peaks) / KIB if peaks else None,
        TARGET_PEAK_MIB,
        " MiB",
        above=False,
    )
    for cache in (COLD, WARM):
        dock = best(runs, small, cache, DOCKAGENT)
        check(
            f"({small}) {cache}: dockagent small files",
            dock.files_s if dock else None,
            TARGET_SMALL_FPS,
            " files/s",
            above=True,
        )
    for cache in (COLD, WARM):
        check(
            f"({large}) {cache}: CPU of cp+openssl+sync / dockagent's",
            cpu_ratio(best(runs, large, cache, TWO_PASS), best(runs, large, cache, DOCKAGENT)),
            TARGET_CPU_VS_TWO_PASS,
            "x",
            above=True,
        )
    for cache in (COLD, WARM):
        # Encryption on: against the same job done by the reference tools (age+openssl+sync).
        check(
            f"({large}) {cache}: CPU of age+openssl+sync / dockagent+age's",
            cpu_ratio(
                best(runs, large, cache, AGE_PASSES), best(runs, large, cache, DOCKAGENT_AGE)
            ),
            TARGET_CPU_VS_TWO_PASS,
            "x",
            above=True,
        )
    for name in (small, many):
        rss = [r.maxrss_kib for r in runs if r.workload == name and r.method == DOCKAGENT]
        check(
            f"({name}) dockagent peak RSS",
            max(rss) / KIB if rss else None,
            TARGET_SMALL_RSS_MIB,
            " MiB",
            above=False,
        )
    return out


# --- the subcommand ---------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "offload",
        help="dockagent import (single-pass copy+hash) against cp+openssl+sync and cp+sync",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where all temporary data goes (default: a fresh directory under /var/tmp); "
        "an existing directory gets a fresh subdirectory, removed at the end",
    )
    p.add_argument("--large-total", type=parse_size, default=2 * GIB, help="(a) total, def. 2G")
    p.add_argument("--large-count", type=int, default=4, help="(a) number of files, default 4")
    p.add_argument("--small-count", type=int, default=10_000, help="(b) files, default 10000")
    p.add_argument("--small-min", type=parse_size, default=4 * KIB, help="(b) min size, def. 4K")
    p.add_argument("--small-max", type=parse_size, default=16 * KIB, help="(b) max size, 16K")
    p.add_argument("--peak-size", type=parse_size, default=4 * GIB, help="(c) one file, def. 4G")
    p.add_argument("--many-count", type=int, default=100_000, help="(m) files, default 100000")
    p.add_argument(
        "--peak-compare",
        action="store_true",
        help="(c): also run the references and the warm case (default: dockagent cold only)",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs of each cell; the best is shown")
    p.add_argument(
        "--only",
        default="s,a,b,c",
        help="comma-separated workloads out of s (empty camera: fixed cost), a, b, c, m "
        "(100,000 small files: peak RSS, slow) (default: s,a,b,c)",
    )
    p.add_argument(
        "--agent-root",
        type=Path,
        default=REPO,
        help="checkout whose agent/ is run (default: this one); e.g. a patched copy to compare",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per run while running")
    p.set_defaults(func=run)


@contextlib.contextmanager
def work_directory(requested: Path | None, keep: bool) -> Iterator[Path]:
    if requested is None:
        base = Path("/var/tmp")
        if fs_type(base) == "tmpfs":
            base = REPO.parent
        path = Path(tempfile.mkdtemp(prefix="dockagent-bench-", dir=base))
    elif requested.exists():
        path = Path(tempfile.mkdtemp(prefix="dockagent-bench-", dir=requested))
    else:
        requested.mkdir(parents=True)
        path = requested
    try:
        yield path
    finally:
        if keep:
            print(f"work directory kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    chosen = {w.strip() for w in args.only.split(",") if w.strip()}
    if chosen - set(WORKLOADS):
        print(f"bench offload: unknown workload(s) {sorted(chosen - set(WORKLOADS))}")
        return 2
    if args.small_min > args.small_max or args.large_count < 1 or args.repeat < 1:
        print("bench offload: need small-min <= small-max, large-count >= 1, repeat >= 1")
        return 2
    for tool in ("cp", "openssl", "sync", "age"):
        if shutil.which(tool) is None:
            print(f"bench offload: {tool} not on PATH")
            return 2
    started = time.perf_counter()
    with work_directory(args.workdir, args.keep) as workdir:
        return _run(args, chosen, workdir, started)


def _run(args: argparse.Namespace, chosen: set[str], workdir: Path, started: float) -> int:
    if not _describe_station(args, chosen, workdir):
        return 2
    agent_root = args.agent_root.resolve()
    print(f"  agent: {agent_root}/agent")
    bench = Bench(workdir, agent_root, station_config(agent_root), verbose=not args.quiet)
    workloads = _measure_workloads(args, chosen, workdir, bench)
    _report(args, bench, workloads, started)
    return 0


def _describe_station(args: argparse.Namespace, chosen: set[str], workdir: Path) -> bool:
    """Print the machine and the work directory; False when the space needed is not free."""
    small_avg = (args.small_min + args.small_max) // 2
    need = max(
        2 * args.large_total if "a" in chosen else 0,
        2 * args.peak_size if "c" in chosen else 0,
        2 * args.small_count * (small_avg + 4 * KIB) if "b" in chosen else 0,
        2 * args.many_count * (small_avg + 4 * KIB) if "m" in chosen else 0,
    )
    vfs = os.statvfs(workdir)
    free = vfs.f_bavail * vfs.f_frsize
    kind = fs_type(workdir)
    print(f"dockagent offload bench: {datetime.now().isoformat(timespec='seconds')}")
    print(
        f"  workdir {workdir} ({kind}, {human(free)} free, needs ~{human(need)}); "
        f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
        f"{human(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))} RAM"
    )
    print(f"  at start: {load_report()}")
    if kind == "tmpfs":
        print("  WARNING: the work directory is on tmpfs: nothing reaches a disk")
    if need > free:
        print(f"bench offload: {human(free)} free in {workdir}, ~{human(need)} needed")
        return False
    return True


def _measure_workloads(
    args: argparse.Namespace, chosen: set[str], workdir: Path, bench: Bench
) -> list[tuple[str, str]]:
    """Build each chosen workload's camera, measure its cells, remove it; returns the
    (name, title) of each workload measured, in order."""
    rnd = RandomStream()
    workloads: list[tuple[str, str]] = []
    caches = (COLD, WARM)

    def measure(
        name: str, src: Source, title: str, methods: Sequence[str], cache_modes: Sequence[str]
    ) -> None:
        workloads.append((name, title))
        print(title, flush=True)
        for _ in range(args.repeat):
            for cache in cache_modes:
                for method in methods:
                    bench.measure(name, src, method, cache)
        shutil.rmtree(src.path)

    if "s" in chosen:
        src_s = make_bench_camera(workdir / "cam-empty", [], rnd)
        title = "(s) fixed cost: a camera with only DEVICE.INF (start-up, store, key, session)"
        measure("s-empty", src_s, title, (DOCKAGENT,), caches)
    if "a" in chosen:
        src_a = make_simulated_camera(
            workdir / "cam-large", args.large_count, args.large_total, rnd
        )
        title = (
            f"(a) {src_a.files} files, {human(src_a.bytes)} "
            f"({args.large_count} x {human(args.large_total // args.large_count)}), {src_a.how}"
        )
        measure("a-large", src_a, title, LARGE_METHODS, caches)
    if "b" in chosen:
        sizes = _small_sizes(args.small_count, args.small_min, args.small_max)
        src_b = make_bench_camera(workdir / "cam-small", sizes, rnd)
        title = (
            f"(b) {src_b.files} files ({args.small_count} of {human(args.small_min)}-"
            f"{human(args.small_max)} + DEVICE.INF), {human(src_b.bytes)}, {src_b.how}"
        )
        measure("b-small", src_b, title, METHODS, caches)
    if "c" in chosen:
        src_c = make_bench_camera(workdir / "cam-peak", [args.peak_size], rnd)
        title = f"(c) 1 file of {human(args.peak_size)} + DEVICE.INF, {src_c.how}"
        if args.peak_compare:
            measure("c-peak", src_c, title, METHODS, caches)
        else:
            measure("c-peak", src_c, title, (DOCKAGENT, DOCKAGENT_AGE), (COLD,))
    if "m" in chosen:
        sizes = _small_sizes(args.many_count, args.small_min, args.small_max)
        src_m = make_bench_camera(workdir / "cam-many", sizes, rnd)
        title = (
            f"(m) {src_m.files} files ({args.many_count} of {human(args.small_min)}-"
            f"{human(args.small_max)} + DEVICE.INF), {human(src_m.bytes)}: peak RSS"
        )
        measure("m-many", src_m, title, (DOCKAGENT,), (COLD,))
    return workloads


def _report(
    args: argparse.Namespace, bench: Bench, workloads: list[tuple[str, str]], started: float
) -> None:
    print()
    print("Workloads:")
    for _name, title in workloads:
        print(f"  {title}")
    print()
    print(
        "seconds: wall clock of the whole process(es), Python start-up included; MB/s = 10^6 "
        "bytes/s of source data;\ncpu s: user+sys of the processes (sync's write-back is the "
        "kernel's);\nother: CPU seconds the rest of the machine used meanwhile (kernel write-back, "
        "other users: noise);\npeak RSS: the dockagent process's own (GNU time %M);\n"
        "vs X = X seconds / dockagent seconds "
        f"(>1: dockagent faster); best of {args.repeat} run(s) per cell.\n"
    )
    if bench.cold_problem:
        print(f"COLD CACHE NOT ACHIEVED ({bench.cold_problem}): rows marked cold* are not cold.\n")
    print_table(bench.runs, workloads)
    encryption = cpu_per_gib(bench.runs, workloads)
    if encryption:
        print("CPU per GiB copied, [custody] encrypt_to off and on (dockagent's user+sys):")
        print("\n".join(encryption))
        print()
    print("targets (informational):")
    for t in targets(bench.runs, "a-large", "b-small", "c-peak", "m-many"):
        print(f"  {t.verdict:<5} {t.name:<46} {t.value:>16}   target {t.goal}")
    print(f"\nat end: {load_report()}")
    print(f"bench took {time.perf_counter() - started:.0f} s")


def _small_sizes(count: int, low: int, high: int) -> list[int]:
    import random  # noqa: PLC0415

    rng = random.Random(7)
    return [rng.randint(low, high) for _ in range(count)]
