"""`scripts/bench devices`: a station's rack, N cameras docked at once, each at its own USB-2
speed (default N = 1, 8, 25 and 30 MiB/s a camera).

Each camera is an exFAT image written by the simulator, mounted through exfat-fuse with its
reads limited to `--throttle` MiB/s by a block-I/O cgroup on its own loop device
(scripts/bench_cameras.py says why that throttle). Each round: fresh station, the daemon
(`dockagent run`, default [devices] settings) with the fake device source, N insert events
dropped at once, timed until every file is taken into custody (sealed or any later state:
CUSTODY_STATES). During the measurement the only upload window is twelve hours away, so no
upload competes with the copies (a round that saw one fails instead of printing a figure).

Printed per round: the aggregate (all bytes / wall time) and its ratio to the sum of the
throttles, the slowest camera's own rate (its bytes / the time its last file was taken in), the
daemon's CPU (its user+sys over the round / wall time, in cores) and peak resident memory
(VmHWM: what a rack of N costs in memory), and two references on the
same cold data: N `cp -r` through the same throttled mounts plus one `sync` (what the throttle
lets the simplest tool do), and the same unthrottled (this machine's ceiling for N cameras).
Targets: aggregate >= 0.95 x the sum of throttles, and < 1 core at the largest N. When the sum
of throttles is above the ceiling, the first target cannot be met by any program here: lower
`--throttle` to measure the station below the ceiling. Exits 0 unless it crashed; 2 on bad
arguments, too little room or no cgroup to throttle with. Needs root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_CAMERAS = 64  # the simulator's serials are BENCH000..; a rack of 25 is the large case
MIB = 1 << 20
sys.path.insert(0, str(REPO))

from agent.core.model import CUSTODY_STATES, FileState  # noqa: E402
from agent.devices.fake import write_event  # noqa: E402
from scripts.bench_cameras import Camera, ReadThrottle, attached, drop_caches  # noqa: E402
from scripts.bench_proc import cpu_s, status_mib  # noqa: E402
from scripts.simulator.cameras import CameraSpec, build_image, parse_size  # noqa: E402

# Taken in: the signed custody record is committed, whatever the upload did since.
_TAKEN_IN = tuple(sorted(str(state) for state in CUSTODY_STATES))
# Any sign that an upload ran during the measurement.
_UPLOADED = tuple(sorted(str(s) for s in (FileState.UPLOADING, FileState.CONFIRMED)))


def _per_camera(db: Path, states: tuple[str, ...]) -> dict[str, int]:
    """Files in `states`, by camera serial."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    marks = ",".join("?" * len(states))
    query = (
        f"SELECT device_serial, COUNT(*) FROM files WHERE state IN ({marks})"  # noqa: S608
        " GROUP BY device_serial"
    )
    try:
        return {serial: int(n) for serial, n in conn.execute(query, states)}
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


def _closed_window() -> str:
    """One minute of upload window twelve hours from now (station-local, as the daemon reads
    `[sync] windows`): no upload starts during any round of this bench."""
    start = datetime.now().astimezone() + timedelta(hours=12)
    end = start + timedelta(minutes=1)
    return f"{start:%H:%M}-{end:%H:%M}"


@dataclass
class Result:
    wall_s: float
    cpu_s: float
    slowest_mib_s: float
    peak_mib: float  # the daemon's peak resident memory (VmHWM) over the round


def _start_daemon(station: Path) -> tuple[subprocess.Popen[bytes], Path]:
    spool = station / "spool"
    config = station / "config.toml"
    config.write_text(
        'station_id = "BENCH"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
        f'[sync]\nwindows = ["{_closed_window()}"]\n'
    )
    env = {
        **os.environ,
        "DOCKAGENT_DATA_DIR": str(station / "data"),
        "DOCKAGENT_CONFIG": str(config),
        "PYTHONPATH": str(REPO),
    }
    with open(station / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "agent.cli.main", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + 30
    while b"daemon.started" not in (station / "daemon.log").read_bytes():
        if time.monotonic() > deadline or daemon.poll() is not None:
            daemon.kill()
            raise RuntimeError("the daemon did not start")
        time.sleep(0.05)
    return daemon, spool


def _round(work: Path, cameras: list[Camera], timeout: float) -> Result:
    station = work / "station"
    shutil.rmtree(station, ignore_errors=True)
    station.mkdir()
    daemon, spool = _start_daemon(station)
    try:
        cpu0 = cpu_s(daemon.pid)
        started = time.monotonic()
        for cam in cameras:
            write_event(
                spool,
                cam.serial,
                action="inserted",
                key=cam.serial,
                vendor_id="2b0e",
                model_id="0a01",
                serial=cam.serial,
                usb_interfaces=":080650:",
                mountpoint=str(cam.mountpoint),
            )
        db = station / "data" / "dockagent.db"
        finished: dict[str, float] = {}
        while len(finished) < len(cameras):
            taken = _per_camera(db, _TAKEN_IN)
            now = time.monotonic() - started
            for cam in cameras:
                if cam.serial not in finished and taken.get(cam.serial, 0) >= cam.files:
                    finished[cam.serial] = now
            if now > timeout or daemon.poll() is not None:
                got = sum(taken.values())
                want = sum(c.files for c in cameras)
                raise RuntimeError(f"only {got} of {want} files taken into custody")
            time.sleep(0.05)
        took = time.monotonic() - started
        cpu = cpu_s(daemon.pid) - cpu0
        if uploaded := sum(_per_camera(db, _UPLOADED).values()):
            raise RuntimeError(f"{uploaded} files were uploaded during the measurement")
        slowest = min(cam.size / MIB / finished[cam.serial] for cam in cameras)
        (peak,) = status_mib(daemon.pid, "VmHWM")
        return Result(took, cpu, slowest, peak)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)


def _reference(work: Path, cameras: list[Camera]) -> float:
    """N `cp -r` at once from the mounted cameras, then one `sync`: wall seconds."""
    out = work / "ref"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    started = time.monotonic()
    procs = [
        subprocess.Popen(["cp", "-r", str(cam.mountpoint), str(out / cam.serial)])
        for cam in cameras
    ]
    for proc in procs:
        proc.wait()
    subprocess.run(["sync"], check=True)
    took = time.monotonic() - started
    shutil.rmtree(out)
    return took


def _counts(text: str) -> list[int]:
    """`--cameras 1,8,25`: the camera counts, one round each, in the order given."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of counts"
        ) from None
    if not counts or min(counts) < 1 or max(counts) > MAX_CAMERAS:
        raise argparse.ArgumentTypeError(f"each count must be 1..{MAX_CAMERAS}")
    return counts


def _build(work: Path, n: int, args: argparse.Namespace) -> list[Camera]:
    cameras = []
    for i in range(n):
        serial = f"BENCH{i:03d}"
        image = work / "images" / f"{serial}.exfat"
        spec = CameraSpec(
            serial=serial,
            days=1,
            files_per_day=args.files,
            file_size=args.file_size,
            large_files=1,
            large_size=args.large_size,
            seed=i + 1,
        )
        manifest = build_image(spec, image, "exfat")
        mountpoint = work / "cams" / serial
        cameras.append(
            Camera(serial, image, mountpoint, len(manifest.entries), manifest.total_bytes)
        )
    return cameras


_HEADER = (
    f"{'cameras':>7} {'MiB/s/cam':>9} {'MiB':>7} {'wall s':>7} {'agg MiB/s':>9} "
    f"{'ratio':>6} {'slowest':>7} {'cores':>6} {'peak MiB':>8} {'cp thr':>7} {'ceiling':>7}"
)


def run(args: argparse.Namespace) -> int:
    counts: list[int] = args.cameras
    if os.geteuid() != 0:
        print("scripts/bench devices needs root (loop devices, FUSE, cgroups)", file=sys.stderr)
        return 2
    per_camera = args.files * args.file_size + args.large_size
    # The images (with their slack), the station's staging and the cp reference at once.
    need = 4 * max(counts) * per_camera + (256 << 20)
    free = shutil.disk_usage(args.workdir).free
    if free < need:
        print(f"not enough room in {args.workdir}: need about {need >> 20} MiB", file=sys.stderr)
        return 2
    try:
        throttle = ReadThrottle()
    except (OSError, RuntimeError) as exc:
        print(f"cannot throttle camera reads: {exc}", file=sys.stderr)
        return 2
    bps = int(args.throttle * MIB)
    work = Path(tempfile.mkdtemp(prefix="dockagent-bench-devices-", dir=args.workdir))
    misses: list[str] = []
    try:
        cameras = _build(work, max(counts), args)
        print(_HEADER, flush=True)
        for n in counts:
            chosen = cameras[:n]
            size = sum(cam.size for cam in chosen) / MIB
            with attached(chosen, throttle, bps):
                result = _round(work, chosen, args.timeout)
            with attached(chosen, throttle, bps):
                ref = _reference(work, chosen)
            with attached(chosen, throttle, 0):
                ceiling = _reference(work, chosen)
            aggregate = size / result.wall_s
            ratio = aggregate / (n * args.throttle)
            cores = result.cpu_s / result.wall_s
            print(
                f"{n:>7} {args.throttle:>9.1f} {size:>7.0f} {result.wall_s:>7.2f} "
                f"{aggregate:>9.1f} {ratio:>6.2f} {result.slowest_mib_s:>7.1f} {cores:>6.2f} "
                f"{result.peak_mib:>8.1f} {size / ref:>7.1f} {size / ceiling:>7.1f}",
                flush=True,
            )
            if ratio < 0.95:
                misses.append(f"{n} cameras: aggregate {ratio:.2f} x the sum of throttles")
            if n == max(counts) and cores >= 1.0:
                misses.append(f"{n} cameras: daemon used {cores:.2f} cores")
        print("targets:", "PASS" if not misses else "MISS")
        for miss in misses:
            print(f"  MISS {miss}")
        return 0
    finally:
        drop_caches()
        shutil.rmtree(work, ignore_errors=True)
        throttle.remove()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("devices", help="N cameras docked at once, each at USB-2 speed")
    p.add_argument(
        "--cameras",
        type=_counts,
        default=[1, 8, 25],
        help="comma-separated camera counts, one round each (default 1,8,25)",
    )
    p.add_argument(
        "--throttle",
        type=float,
        default=30.0,
        help="read speed of each camera in MiB/s (default 30: a USB-2 camera)",
    )
    p.add_argument("--files", type=int, default=8, help="small files per camera (default 8)")
    p.add_argument("--file-size", type=parse_size, default=parse_size("4M"))
    p.add_argument("--large-size", type=parse_size, default=parse_size("128M"))
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--workdir", default="/var/tmp")
    p.set_defaults(func=run)
