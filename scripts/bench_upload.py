"""`scripts/bench upload`: `dockagent sync --once` against `curl -T` to the same tus server.

One run each, on loopback, to a real @tus/server (tests/support/tus-node, whose finish hook
hashes every stored file for Repr-Digest, for both contenders alike):

  dockagent   python3 -m agent.cli.main sync --once: tus creation + 16 MiB PATCHes, one worker,
              confirm_level verified (the files were imported beforehand, not timed)
  curl -T     per file: curl POST (creation), then curl -T FILE -X PATCH (the whole file in one
              request, no checksums, no resume bookkeeping): an upper bound

Then the peak memory (VmHWM of the agent process itself) while it uploads one 4 GiB file.
Targets: throughput >= 80 % of curl; peak memory <= chunk + 64 MiB. Test tooling only: it
writes nothing outside its work directory and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.simulator.cameras import CameraSpec, parse_size, write_camera  # noqa: E402
from tests.support.tus_servers import tus_node_server  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000
CHUNK = 16 * MIB
# Runs the agent's CLI and, at exit, writes the process's own peak RSS (VmHWM is per address
# space and starts afresh at execve, unlike a parent's view through wait4).
_WRAPPER = """
import os, sys
from agent.cli.main import main
try:
    code = main(sys.argv[1:])
finally:
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            open(os.environ['BENCH_HWM_FILE'], 'w').write(line.split()[1])
sys.exit(code)
"""


def _config(endpoint: str) -> str:
    return (
        'station_id = "BENCH-STATION"\n[storage]\nreserve_bytes = 0\n'
        '[ingest]\nwipe_policy = "never"\n[devices]\nrequire_enrollment = false\n'
        f'[sync]\nkind = "tus"\nendpoint = "{endpoint}"\nconfirm_level = "verified"\n'
        f"chunk_bytes = {CHUNK}\nmax_parallel_uploads = 1\nread_timeout_s = 300\n"
    )


def _env(station: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKAGENT_")}
    env.update(
        {
            "DOCKAGENT_DATA_DIR": str(station / "data"),
            "DOCKAGENT_CONFIG": str(station / "config.toml"),
            "PYTHONPATH": str(REPO),
            "BENCH_HWM_FILE": str(station / "hwm"),
        }
    )
    return env


def _station(root: Path, endpoint: str, spec: CameraSpec) -> tuple[Path, int]:
    """A station with one camera imported (untimed); returns it and the bytes to upload."""
    station = root / f"station-{spec.serial}"
    station.mkdir()
    (station / "config.toml").write_text(_config(endpoint))
    cam = root / f"cam-{spec.serial}"
    manifest = write_camera(spec, cam)
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "import", str(cam)],
        env=_env(station),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"import failed: {proc.stderr[-2000:]}")
    shutil.rmtree(cam)  # the camera is not needed any more; free the space
    return station, manifest.total_bytes


def _sync(station: Path) -> tuple[float, int]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, "sync", "--once", "--json"],
        env=_env(station),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"sync failed ({proc.returncode}): {proc.stdout[-2000:]}")
    report = json.loads(proc.stdout)
    if report["left"] or report["held"] or report["deferred"]:
        raise SystemExit(f"sync left work: {report['left']}")
    return elapsed, int((station / "hwm").read_text()) * 1024


def _curl_all(files: list[Path], endpoint: str) -> float:
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is missing")
    started = time.monotonic()
    for path in files:
        size = path.stat().st_size
        created = subprocess.run(
            [
                curl,
                "-sS",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "-X",
                "POST",
                "-H",
                "Tus-Resumable: 1.0.0",
                "-H",
                f"Upload-Length: {size}",
                endpoint,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        location = next(
            line.split(":", 1)[1].strip()
            for line in created.splitlines()
            if line.lower().startswith("location:")
        )
        subprocess.run(
            [
                curl,
                "-sS",
                "--fail",
                "-o",
                "/dev/null",
                "-X",
                "PATCH",
                "-H",
                "Tus-Resumable: 1.0.0",
                "-H",
                "Upload-Offset: 0",
                "-H",
                "Content-Type: application/offset+octet-stream",
                "-T",
                str(path),
                location,
            ],
            check=True,
        )
    return time.monotonic() - started


def run(args: argparse.Namespace) -> int:
    base = Path(args.workdir or "/var/tmp")
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=base))
    need = 3 * args.total + 3 * args.peak_size + GIB
    if shutil.disk_usage(root).free < need:
        print(f"not enough room in {root}: need about {need // GIB} GiB", file=sys.stderr)
        shutil.rmtree(root)
        return 2
    try:
        with tus_node_server(root / "server") as server:
            per_file = max(MIB, args.total // args.count)
            spec = CameraSpec(
                serial="BENCHUP1",
                days=1,
                files_per_day=args.count,
                file_size=per_file,
                size_jitter=0,
                split_every=0,
                important_every=0,
                audio_every=0,
                photo_every=0,
                other_files=0,
            )
            station, total = _station(root, server.endpoint, spec)
            files = sorted(p for p in (station / "data" / "staging").rglob("*") if p.is_file())
            files = [p for p in files if not p.name.endswith(".custody.json")]
            agent_s, _ = _sync(station)
            curl_s = _curl_all(files, server.endpoint)
            shutil.rmtree(server.store_dir)
            server.store_dir.mkdir()
            peak_spec = CameraSpec(
                serial="BENCHUP2",
                days=1,
                files_per_day=1,
                large_files=1,
                large_size=args.peak_size,
                split_every=0,
                important_every=0,
                audio_every=0,
                photo_every=0,
                other_files=0,
            )
            peak_station, peak_total = _station(root, server.endpoint, peak_spec)
            peak_s, hwm = _sync(peak_station)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    agent_rate, curl_rate = total / agent_s / MB, total / curl_s / MB
    ratio = agent_rate / curl_rate
    print(f"upload to @tus/server on loopback, {len(files)} files, {total / MB:.0f} MB, one run")
    print(f"  {'method':<22}{'seconds':>9}{'MB/s':>9}")
    print(f"  {'dockagent sync --once':<22}{agent_s:>9.2f}{agent_rate:>9.1f}")
    print(f"  {'curl -T (PATCH)':<22}{curl_s:>9.2f}{curl_rate:>9.1f}")
    print(
        f"peak memory, one {peak_total / GIB:.1f} GiB file: {hwm / MIB:.1f} MiB VmHWM "
        f"({peak_total / peak_s / MB:.1f} MB/s); chunk {CHUNK // MIB} MiB"
    )
    limit = CHUNK + 64 * MIB
    print(f"{'PASS' if ratio >= 0.8 else 'MISS'} throughput {100 * ratio:.0f} % of curl (>= 80 %)")
    print(
        f"{'PASS' if hwm <= limit else 'MISS'} peak memory {hwm / MIB:.1f} MiB "
        f"(<= chunk + 64 MiB = {limit // MIB} MiB)"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "upload",
        help="dockagent sync --once against curl -T to the same tus server; peak memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workdir", type=Path, default=None, help="default: under /var/tmp")
    p.add_argument("--total", type=parse_size, default=2 * GIB, help="bytes to upload, def. 2G")
    p.add_argument("--count", type=int, default=4, help="files for the throughput run, def. 4")
    p.add_argument("--peak-size", type=parse_size, default=4 * GIB, help="one file, def. 4G")
    p.set_defaults(func=run)
