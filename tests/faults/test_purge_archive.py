"""Purged copies' sidecars move into the day's archive: staging stays bounded, and what the
sidecars prove is still there for `verify` and `rebuild`, whatever a kill interrupts.

A real station (the CLI as processes, a directory sink) takes cameras in and syncs with no purge
grace, so every copy is purged. The checks read the file system and SQLite directly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

from agent.core import crashpoints
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.nothing_lost import Manifest, check, directory_sink_objects

KIB = 1 << 10
CONFIG = (
    'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n'
    '[ingest]\nwipe_policy = "never"\n[sync]\npurge_grace_s = 0\n'
)
SMALL = {
    "serial": "ARCH01",
    "days": 1,
    "file_size": 8 * KIB,
    "split_every": 0,
    "other_files": 0,
    "large_files": 0,
}
# Columns a rebuild restores as they were (times it cannot know, such as purged_at, aside).
KEPT = (
    "id, session_id, device_serial, camera_path, size, mtime_ns, sha256, state, staged_path, "
    "record_seq, confirm_level, sink_ref, confirmed_at, purged_at IS NOT NULL AS purged"
)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _camera(tmp_path: Path, name: str, files: int, day: date) -> Path:
    cam = tmp_path / name
    write_camera(CameraSpec(files_per_day=files, first_day=day, **SMALL), cam)  # type: ignore[arg-type]
    return cam


def _inodes(staging: Path) -> tuple[int, int]:
    """(inodes in staging apart from the archives, archive files). The audit sidecars in
    `_chain` are left out: one per technician command (an import, a sync), not per file."""
    others = archives = 0
    for dirpath, dirs, names in os.walk(staging):
        if Path(dirpath).name == "_chain":
            continue
        others += len(dirs)
        if Path(dirpath).name == "_archive":
            archives += len(names)
        else:
            others += len(names)
    return others, archives


def _camera_dir_names(station: Station) -> list[str]:
    return sorted(p.name for p in (station.staging / SMALL["serial"]).iterdir())  # type: ignore[operator]


def _archived(station: Station) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted((station.staging / "_archive").glob("*.sidecars")):
        lines.extend(json.loads(line) for line in path.read_bytes().splitlines())
    return lines


def _sink(station: Station) -> tuple[list[Any], list[str]]:
    return directory_sink_objects(station.data_dir / "archive")


def _records(station: Station) -> list[dict[str, Any]]:
    return rows(station.data_dir, "SELECT seq, body, record_hash, signature FROM records")


def test_staging_does_not_grow_with_the_files_purged(station: Station, tmp_path: Path) -> None:
    """Purging 4 files or 4 + 16 leaves as many inodes in staging: the sidecars of purged
    copies are lines of the day's archive, not files of their own."""
    station.configure(CONFIG)
    _ok(station.run("import", str(_camera(tmp_path, "cam1", 4, date(2026, 1, 1)))))
    _ok(station.run("sync", "--once"))
    first = _inodes(station.staging)
    count = len(rows(station.data_dir))
    _ok(station.run("import", str(_camera(tmp_path, "cam2", 16, date(2026, 1, 2)))))
    _ok(station.run("sync", "--once"))
    after = _inodes(station.staging)
    purged = rows(station.data_dir, "SELECT * FROM files WHERE purged_at IS NOT NULL")
    assert len(purged) == len(rows(station.data_dir)) >= 4 * count
    assert _camera_dir_names(station) == []  # nothing of a purged copy is left beside
    assert after[0] == first[0]
    assert after[1] <= first[1] + 1  # one archive a day (a run across midnight starts one)
    names = {line["name"] for line in _archived(station)}
    for row in purged:
        assert f"{row['staged_path']}.custody.json" in names
        assert f"{row['staged_path']}.upload.json" in names
    assert sum(n.endswith(".confirmed.json") for n in names) == len(purged)
    _ok(station.run("verify"))


def test_rebuild_from_the_archive_gives_the_same_rows_and_records(
    station: Station, tmp_path: Path
) -> None:
    station.configure(CONFIG)
    cam = _camera(tmp_path, "cam", 6, date(2026, 1, 1))
    manifest = Manifest.of_camera(SMALL["serial"], cam)  # type: ignore[arg-type]
    _ok(station.run("import", str(cam)))
    _ok(station.run("sync", "--once"))
    assert _camera_dir_names(station) == []
    before_rows = rows(station.data_dir, f"SELECT {KEPT} FROM files ORDER BY id")
    before_records = _records(station)
    with open(station.data_dir / "dockagent.db", "r+b") as fh:
        fh.write(b"this is no longer SQLite!" * 4)
    assert station.run("status").returncode == 65
    report = json.loads(_ok(station.run("rebuild", "--json")))
    assert report["whole"] and report["purged"] == report["confirmed"] == len(before_rows)
    assert rows(station.data_dir, f"SELECT {KEPT} FROM files ORDER BY id") == before_rows
    after_records = _records(station)
    assert after_records[: len(before_records)] == before_records
    assert len(after_records) == len(before_records) + 1  # its own store.rebuilt record
    _ok(station.run("verify"))
    result = check(manifest, station.data_dir, sink=_sink(station))
    assert result.problems == [], result.problems


def test_a_kill_between_the_archive_and_the_unlink_is_finished_at_the_next_start(
    station: Station, tmp_path: Path
) -> None:
    station.configure(CONFIG)
    cam = _camera(tmp_path, "cam", 5, date(2026, 1, 1))
    manifest = Manifest.of_camera(SMALL["serial"], cam)  # type: ignore[arg-type]
    _ok(station.run("import", str(cam)))
    (step,) = crashpoints.PURGE_STEPS
    crashed = station.run("sync", "--once", DOCKAGENT_CRASH_AT=step)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    # Killed with the sidecars both archived (fsynced) and still beside their purged copies.
    left = _camera_dir_names(station)
    assert left and all(name.endswith(".json") for name in left)
    archived = {line["name"] for line in _archived(station)}
    assert {f"{SMALL['serial']}/{name}" for name in left} <= archived
    assert station.run("status").returncode == 0  # a reader repairs nothing
    assert _camera_dir_names(station) == left
    _ok(station.run("sync", "--once"))  # its recovery archives them again, then unlinks
    assert _camera_dir_names(station) == []
    _ok(station.run("verify"))
    result = check(manifest, station.data_dir, sink=_sink(station))
    assert result.problems == [], result.problems
    # Readers take the duplicate lines as one: a rebuild restores every row, whole.
    report = json.loads(_ok(station.run("rebuild", "--force", "--json")))
    assert report["whole"] and report["purged"] == len(rows(station.data_dir)), report


def test_verify_reads_the_archived_sidecars(station: Station, tmp_path: Path) -> None:
    station.configure(CONFIG)
    _ok(station.run("import", str(_camera(tmp_path, "cam", 3, date(2026, 1, 1)))))
    _ok(station.run("sync", "--once"))
    _ok(station.run("verify"))
    (path,) = sorted((station.staging / "_archive").glob("*.sidecars"))
    lines = path.read_bytes().splitlines(keepends=True)
    victim = next(i for i, line in enumerate(lines) if b".custody.json" in line)
    entry = json.loads(lines[victim])
    envelope = json.loads(entry["text"])
    envelope["body"]["size"] += 1  # an archived record edited: its hash no longer matches
    entry["text"] = json.dumps(envelope, sort_keys=True, indent=1) + "\n"
    lines[victim] = json.dumps(entry, sort_keys=True).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    found = station.run("verify", "--full", "--json")
    assert found.returncode != 0
    kinds = {p["kind"] for p in json.loads(found.stdout)["problems"]}
    assert kinds == {"missing_sidecar", "sidecar_differs"}, found.stdout
    del lines[victim]  # the archived sidecar gone altogether
    path.write_bytes(b"".join(lines))
    found = station.run("verify", "--full", "--json")
    problems = json.loads(found.stdout)["problems"]
    assert [p["kind"] for p in problems] == ["missing_sidecar"], problems


def test_a_torn_archive_line_is_cut_before_the_next_append(
    station: Station, tmp_path: Path
) -> None:
    """A power cut while appending leaves a line without its newline: readers skip it, and the
    next purge cuts it off before appending (its sidecars were never unlinked)."""
    station.configure(CONFIG)
    _ok(station.run("import", str(_camera(tmp_path, "cam1", 2, date(2026, 1, 1)))))
    _ok(station.run("sync", "--once"))
    (path,) = sorted((station.staging / "_archive").glob("*.sidecars"))
    whole = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"name": "ARCH01/00000099.mp4.custody.json", "text": "{\\n \\"bo')
    _ok(station.run("verify"))
    _ok(station.run("import", str(_camera(tmp_path, "cam2", 2, date(2026, 1, 2)))))
    _ok(station.run("sync", "--once"))
    data = path.read_bytes()
    assert data.startswith(whole) and data.endswith(b"\n")
    assert b"00000099" not in data
    _ok(station.run("verify"))


def test_start_up_recovery_reads_only_the_records_after_its_mark(
    station: Station, tmp_path: Path
) -> None:
    """A sidecar lost after its record committed (a kill before it was written) is restored by
    the next start; the records the last recovery already checked are not read again, so a
    start costs the tail of the chain, and a sidecar removed by hand there is verify's to name."""
    station.configure(CONFIG)
    _ok(station.run("import", str(_camera(tmp_path, "cam1", 2, date(2026, 1, 1)))))
    _ok(station.run("sync", "--once"))  # signs sync.ran
    _ok(station.run("import", str(_camera(tmp_path, "cam2", 2, date(2026, 1, 2)))))
    _ok(station.run("sync", "--once"))  # its recovery checked up to that; signs another
    audits = rows(station.data_dir, "SELECT seq FROM records WHERE kind='audit' ORDER BY seq")
    mark = int(
        rows(station.data_dir, "SELECT value FROM meta WHERE key='recovered_seq'")[0]["value"]
    )
    (older,) = [r["seq"] for r in audits if r["seq"] <= mark]
    (newer,) = [r["seq"] for r in audits if r["seq"] > mark]
    chain = station.staging / "_chain"
    (chain / f"{older:010d}.audit.json").unlink()  # removed by hand, long after
    (chain / f"{newer:010d}.audit.json").unlink()  # as a kill after the sync's commit leaves it
    _ok(station.run("sync", "--once"))
    assert (chain / f"{newer:010d}.audit.json").exists()
    assert not (chain / f"{older:010d}.audit.json").exists()
    found = station.run("verify", "--json")
    problems = json.loads(found.stdout)["problems"]
    assert [(p["kind"], p["seq"]) for p in problems] == [("missing_sidecar", older)], problems
