"""`scripts/bench devices`: daemon throughput with N cameras docked at once (default 1, 4, 8;
`--cameras 1,8,25` for a full rack).

Each round: fresh station, N directory cameras written by the simulator (FUSE says nothing
about speed here), the daemon (`dockagent run`) with the fake device source, N insert events
dropped at once, timed until every file is taken into custody (sealed or any later state:
CUSTODY_STATES). The daemon uploads to its directory sink by itself; during the measurement its
only upload window is set twelve hours away, so no upload competes with the copies measured
(a round that saw an upload fails instead of printing a figure). Reference: N `cp -r` running
at once plus one `sync`, on the same cold-cache data. Prints MB/s and the ratio; exits 0 unless
it crashed, 2 on bad arguments or too little room.
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
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_CAMERAS = 64  # the simulator's serials are BENCH000..; a rack of 25 is the large case
sys.path.insert(0, str(REPO))

from agent.core.model import CUSTODY_STATES, FileState  # noqa: E402
from agent.devices.fake import write_event  # noqa: E402
from scripts.simulator.cameras import CameraSpec, parse_size, write_camera  # noqa: E402


def _drop_caches() -> bool:
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


# Taken in: the signed custody record is committed, whatever the upload did since.
_TAKEN_IN = tuple(sorted(str(state) for state in CUSTODY_STATES))
# Any sign that an upload ran during the measurement.
_UPLOADED = tuple(sorted(str(s) for s in (FileState.UPLOADING, FileState.CONFIRMED)))


def _count(db: Path, states: tuple[str, ...]) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    marks = ",".join("?" * len(states))
    try:
        query = f"SELECT COUNT(*) FROM files WHERE state IN ({marks})"  # noqa: S608 - marks only
        return int(conn.execute(query, states).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _closed_window() -> str:
    """One minute of upload window twelve hours from now (station-local, as the daemon reads
    `[sync] windows`): no upload starts during any round of this bench."""
    start = datetime.now().astimezone() + timedelta(hours=12)
    end = start + timedelta(minutes=1)
    return f"{start:%H:%M}-{end:%H:%M}"


def _round(work: Path, cameras: list[tuple[str, Path, int]], timeout: float) -> float:
    station = work / "station"
    shutil.rmtree(station, ignore_errors=True)
    station.mkdir()
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
    log = open(station / "daemon.log", "wb")  # noqa: SIM115 - closed below
    daemon = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while b"daemon.started" not in (station / "daemon.log").read_bytes():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("the daemon did not start")
            time.sleep(0.05)
        total_files = sum(n for _, _, n in cameras)
        started = time.monotonic()
        for serial, path, _ in cameras:
            write_event(
                spool,
                serial,
                action="inserted",
                key=serial,
                vendor_id="2b0e",
                model_id="0a01",
                serial=serial,
                usb_interfaces=":080650:",
                mountpoint=str(path),
            )
        db = station / "data" / "dockagent.db"
        while _count(db, _TAKEN_IN) < total_files:
            if time.monotonic() - started > timeout or daemon.poll() is not None:
                taken = _count(db, _TAKEN_IN)
                raise RuntimeError(f"only {taken} of {total_files} files taken into custody")
            time.sleep(0.05)
        took = time.monotonic() - started
        if uploaded := _count(db, _UPLOADED):
            raise RuntimeError(f"{uploaded} files were uploaded during the measurement")
        return took
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        log.close()


def _reference(work: Path, cameras: list[tuple[str, Path, int]]) -> float:
    out = work / "ref"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    started = time.monotonic()
    procs = [
        subprocess.Popen(["cp", "-r", str(path), str(out / serial)]) for serial, path, _ in cameras
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


def run(args: argparse.Namespace) -> int:
    counts: list[int] = args.cameras
    # The cameras, the station's staging of the largest round and the cp reference at once.
    need = 3 * max(counts) * (8 * args.file_size + args.large_size) + (256 << 20)
    free = shutil.disk_usage(args.workdir).free
    if free < need:
        print(f"not enough room in {args.workdir}: need about {need >> 20} MiB", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="dockagent-bench-devices-", dir=args.workdir))
    try:
        specs = []
        for i in range(max(counts)):
            serial = f"BENCH{i:03d}"
            path = work / "cams" / serial
            manifest = write_camera(
                CameraSpec(
                    serial=serial,
                    days=1,
                    files_per_day=8,
                    file_size=args.file_size,
                    large_files=1,
                    large_size=args.large_size,
                    seed=i + 1,
                ),
                path,
            )
            specs.append((serial, path, len(manifest.entries), manifest.total_bytes))
        print(
            f"{'cameras':>8} {'bytes':>12} {'dockagent s':>12} {'MB/s':>8} "
            f"{'cp+sync s':>10} {'MB/s':>8} {'ratio':>6}  cache"
        )
        for n in counts:
            chosen = specs[:n]
            cams = [(s, p, k) for s, p, k, _ in chosen]
            size = sum(b for *_, b in chosen)
            cold = _drop_caches()
            took = _round(work, cams, args.timeout)
            _drop_caches()
            ref = _reference(work, cams)
            print(
                f"{n:>8} {size:>12} {took:>12.2f} {size / took / 1e6:>8.1f} {ref:>10.2f} "
                f"{size / ref / 1e6:>8.1f} {ref / took:>6.2f}  {'cold' if cold else 'warm?'}"
            )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("devices", help="daemon throughput with N cameras docked at once")
    p.add_argument(
        "--cameras",
        type=_counts,
        default=[1, 4, 8],
        help="comma-separated camera counts, one round each (default 1,4,8; e.g. 1,8,25)",
    )
    p.add_argument("--file-size", type=parse_size, default=parse_size("4M"))
    p.add_argument("--large-size", type=parse_size, default=parse_size("128M"))
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--workdir", default="/var/tmp")
    p.set_defaults(func=run)
