"""Hostile camera input that costs the station time, descriptors or space: a megabyte-long log
line, thousands of sibling directories, files whose sizes do not fit staging. Each import must
end in seconds with every recording that can be held sealed, and say what it could not hold.

The volumes are real FAT32 images mounted through fusefat, or directories on a real tmpfs;
the CLI runs as its own process (under `prlimit` where a descriptor limit is the point).
Expected hashes are computed here from the bytes written, never taken from the agent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Station
from tests.support.cli import run_cli
from tests.support.evidence import assert_all_sealed, rows
from tests.support.volumes import mount_fat, tmpfs

CONFIG = """station_id = "HOSTILE"
[storage]
reserve_bytes = 0
[ingest]
wipe_policy = "never"
"""
DAY = "RECORD/20261127"
SIBLINGS = 3000
NOFILE = 1024  # a common default soft RLIMIT_NOFILE (getrlimit(2))
IMPORT_BOUND_S = 120  # catches a hang or a quadratic parse, not a slow disk
LONG_LINE = 1 << 20


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.insert(0, "root")
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    if missing:
        pytest.fail("this mount test cannot run here, missing: " + ", ".join(missing))


def _must(*cmd: str) -> None:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    proc = subprocess.run(
        list(cmd), env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")


def _recordings(count: int, size: int = 4096) -> dict[str, bytes]:
    return {
        f"{DAY}/CAM1_7_2026112708{i:02d}00_{i + 1:04d}.MP4": os.urandom(size + i)
        for i in range(count)
    }


def _fat_camera(tmp_path: Path, files: dict[str, bytes], dirs: list[str]) -> Path:
    """A FAT32 image holding `files` (with their directories) and the empty `dirs`, made with
    mtools in a few batch commands (one mmd for every directory)."""
    image = tmp_path / "camera.fat"
    with open(image, "wb") as fh:
        fh.truncate(128 << 20)
    _must("mkfs.vfat", "-F", "32", str(image))
    parents = sorted({os.path.dirname(p) for p in files if "/" in p})
    wanted = [*dirs, *[d for p in parents for d in _ancestors(p)]]
    unique = list(dict.fromkeys(wanted))
    _must("mmd", "-i", str(image), *[f"::/{d}" for d in unique])
    src = tmp_path / "src"
    src.mkdir()
    for index, (rel, data) in enumerate(files.items()):
        body = src / str(index)
        body.write_bytes(data)
        _must("mcopy", "-i", str(image), str(body), f"::/{rel}")
    return image


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _expected(files: dict[str, bytes]) -> dict[bytes, str]:
    return {rel.encode(): hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def _import(station: Station, path: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        ("import", str(path), "--json"),
        env=station.env(),
        log=station.cli_log,
        timeout=IMPORT_BOUND_S,
        prefix=prefix,
    )


@pytest.mark.fuse
def test_three_thousand_sibling_directories_under_a_descriptor_limit(
    station: Station, tmp_path: Path
) -> None:
    """Every sibling directory used to be opened before any was walked: with 1,024 descriptors
    the directories listed last (RECORD among them) could not be opened and were not taken."""
    _require("fusefat", "mkfs.vfat", "mmd", "mcopy", "prlimit")
    station.configure(CONFIG)
    files = {"DEVICE.INF": b"serial=CAM1\nofficer_id=7\n", **_recordings(5)}
    siblings = [f"D{i:04d}" for i in range(SIBLINGS)]
    image = _fat_camera(tmp_path, files, siblings)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mount_fat(image, mnt) as mounted:
        assert len(os.listdir(mnt)) == SIBLINGS + 2
        proc = _import(station, mnt, "prlimit", f"--nofile={NOFILE}:{NOFILE}", "--")
        assert proc.returncode == 0, proc.stderr[-4000:] + mounted.fuse_output()[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["problems"] == []
    assert_all_sealed(station.data_dir, "CAM1", _expected(files))


@pytest.mark.fuse
def test_a_megabyte_log_line_is_taken_in_within_seconds(station: Station, tmp_path: Path) -> None:
    """One SYSTEM.LOG line of 1 MiB of letters without `=` took the field regex hours (it was
    quadratic, 40,000 characters: 6.8 s). It is now one malformed line, counted; the dock's
    other lines still give the drift, and every file is sealed."""
    _require("fusefat", "mkfs.vfat", "mmd", "mcopy")
    station.configure(CONFIG)
    log = (
        b"2026-11-27 08:00:00 BOOT\n"
        b"2026-11-27 08:00:01 FAULT " + b"a" * LONG_LINE + b"\n"
        b"2026-11-27 08:00:02 SELF_TEST " + b"x" * (LONG_LINE // 4) + b"\n"
        b"2026-11-27 08:00:03 USB_CONNECT\n"
    )
    files = {
        "DEVICE.INF": b"serial=CAM1\nofficer_id=7\n",
        "LOG/SYSTEM.LOG": log,
        "LOG/BATTERY.CSV": b"time,percent\n" + b"9" * LONG_LINE + b"\n",
        **_recordings(3),
    }
    image = _fat_camera(tmp_path, files, [])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mount_fat(image, mnt) as mounted:
        started = time.monotonic()
        proc = _import(station, mnt)
        took = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr[-4000:] + mounted.fuse_output()[-2000:]
    assert took < 30, f"import took {took:.1f} s"
    assert_all_sealed(station.data_dir, "CAM1", _expected(files))
    health = rows(station.data_dir, "SELECT system_log, camera_connect_at FROM session_health")[-1]
    summary = json.loads(health["system_log"])
    assert (summary["lines"], summary["malformed"], summary["overlong"]) == (4, 2, 2)
    assert health["camera_connect_at"] == "2026-11-27 08:00:03"


def test_files_that_fit_staging_are_held_when_the_camera_does_not_fit(
    station: Station, tmp_path: Path
) -> None:
    """A file whose size field claims more than staging has (here a sparse 1 GiB file, as a
    crafted FAT entry would claim) used to make the preflight refuse the whole camera, exit 75:
    one crafted entry kept every recording of every dock off the station. The files that fit
    are now sealed, oldest first; the rest stay queued with the reason, exit 3."""
    cam = tmp_path / "cam"
    files = {"DEVICE.INF": b"serial=CAM1\nofficer_id=7\n", **_recordings(4, 1 << 20)}
    for rel, data in files.items():
        (cam / rel).parent.mkdir(parents=True, exist_ok=True)
        (cam / rel).write_bytes(data)
    huge = f"{DAY}/CAM1_7_20261127090000_0099.MP4"
    with open(cam / huge, "wb") as fh:
        fh.truncate(1 << 30)
    with tmpfs(tmp_path / "station", 32 << 20):
        station = Station(tmp_path / "station")
        station.configure(CONFIG)
        proc = _import(station, cam)
        assert proc.returncode == 3, proc.stderr[-4000:]
        assert_all_sealed(station.data_dir, "CAM1", _expected(files))
        summary = json.loads(proc.stdout)
        reasons = {p["file"]: p for p in summary["problems"]}
        assert list(reasons) == [huge], summary["problems"]
        assert reasons[huge]["kind"] == "staging_full"
        row = rows(station.data_dir, "SELECT * FROM files WHERE camera_path=?", (huge.encode(),))[0]
        assert row["state"] == "discovered"
        assert row["reason_kind"] == "staging_full" and "staging" in row["reason"]
        assert station.run("verify").returncode == 0


def test_unknown_log_events_are_counted_not_stored_without_limit(
    station: Station, tmp_path: Path
) -> None:
    """Every unknown event used to become a database row (4 MiB of them: ~23 MB per dock).
    Now each dock stores the newest few as a sample and counts them all by kind, with a
    bounded number of kinds; known events the station uses are stored as before."""
    station.configure(CONFIG)
    cam = tmp_path / "cam"
    files = {"DEVICE.INF": b"serial=CAM1\nofficer_id=7\n", **_recordings(2)}
    for rel, data in files.items():
        (cam / rel).parent.mkdir(parents=True, exist_ok=True)
        (cam / rel).write_bytes(data)
    lines = [
        f"2026-11-27 08:{i // 60 % 60:02d}:{i % 60:02d} EV{i % 500} n={i}" for i in range(50_000)
    ]
    lines += ["2026-11-27 09:00:00 FAULT code=E12", "2026-11-27 09:00:01 USB_CONNECT"]
    files["LOG/SYSTEM.LOG"] = "\n".join(lines).encode() + b"\n"
    (cam / "LOG").mkdir()
    (cam / "LOG/SYSTEM.LOG").write_bytes(files["LOG/SYSTEM.LOG"])
    proc = _import(station, cam)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_all_sealed(station.data_dir, "CAM1", _expected(files))
    stored = rows(station.data_dir, "SELECT event FROM camera_events WHERE device_serial='CAM1'")
    events = [r["event"] for r in stored]
    assert "FAULT" in events and "USB_CONNECT" in events
    assert len([e for e in events if e.startswith("EV")]) == 20
    health = rows(station.data_dir, "SELECT system_log FROM session_health")[-1]
    summary = json.loads(health["system_log"])
    assert summary["unknown"] == 50_000
    assert len(summary["unknown_kinds"]) == 32
    assert sum(summary["unknown_kinds"].values()) + summary["unknown_other_kinds"] == 50_000
