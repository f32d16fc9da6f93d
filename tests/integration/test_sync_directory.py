"""The directory sink (the embedded default), what confirmation unlocks, and the queue's rules.

Layout and durability per upload-protocol.md; a damaged archived copy is never confirmed;
confirmed files' staged copies are purged after the grace period and never before; wiping under
after_confirm happens at the next dock; the free-space reserve pauses ingest until uploads free
space; important files go first, then the oldest; the bandwidth cap and the upload windows hold.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.core import config
from agent.sync.pool import Uploader
from agent.sync.throttle import RateLimit
from agent.sync.windows import in_window
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows, sha256_file
from tests.support.volumes import tmpfs

MIB = 1 << 20
SPEC = CameraSpec(serial="DIR01", days=1, files_per_day=4, file_size=128 * 1024, important_every=3)
BASE = 'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n'


def _camera(tmp_path: Path, spec: CameraSpec = SPEC, name: str = "cam") -> dict[bytes, str]:
    manifest = write_camera(spec, tmp_path / name)
    return {e.rel_path: e.sha256 for e in manifest.entries}


def _import(station: Station, cam: Path) -> dict[str, object]:
    proc = station.run("import", str(cam), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout))


def _damage_the_archive_copy_of_the_largest_file(
    station: Station, tmp_path: Path
) -> dict[str, Any]:
    """Import a camera; put other bytes where the archive copy of its largest file will go, so
    that file's upload is held. Returns that file's row."""
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n[sync]\npurge_grace_s = 0\n')
    victim, folder, ext = _largest_and_its_archive_folder(station, tmp_path)
    (folder / f"{victim['sha256']}.{ext}").write_bytes(b"something else entirely")
    return victim


def _largest_and_its_archive_folder(
    station: Station, tmp_path: Path
) -> tuple[dict[str, Any], Path, str]:
    """Import a camera; its largest file's row, the archive folder its copy will go to (made
    now) and its extension."""
    _camera(tmp_path)
    _import(station, tmp_path / "cam")
    victim = rows(station.data_dir, "SELECT * FROM files ORDER BY size DESC LIMIT 1")[0]
    day = datetime.fromisoformat(victim["staged_at"])
    folder = station.data_dir / "archive" / "TEST-STATION" / f"{day:%Y/%m/%d}"
    folder.mkdir(parents=True)
    return victim, folder, str(victim["staged_path"]).rsplit(".", 1)[1]


def test_default_sink_archives_by_layout_and_confirms_on_reread(
    station: Station, tmp_path: Path
) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n')  # no [sync]: the defaults
    expected = _camera(tmp_path)
    _import(station, tmp_path / "cam")
    proc = station.run("sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"sync to {station.data_dir / 'archive'}" in proc.stdout
    for row in rows(station.data_dir):
        assert row["state"] == "confirmed" and row["confirm_level"] == "verified"
        day = datetime.fromisoformat(row["staged_at"])
        folder = station.data_dir / "archive" / "TEST-STATION" / f"{day:%Y/%m/%d}"
        ext = str(row["staged_path"]).rsplit(".", 1)[1]
        archived = folder / f"{row['sha256']}.{ext}"
        assert row["sink_ref"] == str(archived)
        assert sha256_file(archived) == row["sha256"] == expected[bytes(row["camera_path"])]
        record = json.loads((folder / f"{row['sha256']}.json").read_text())
        assert record["metadata"]["sha256"] == row["sha256"]
        assert record["custody_record"]["body"]["file_id"] == row["id"]
        assert record["custody_record"]["signature"]
        # The default grace period keeps the staged copy.
        assert (station.staging / str(row["staged_path"])).exists()
        assert row["purged_at"] is None
    assert not list((station.data_dir / "archive").rglob("*.part"))
    assert station.run("verify").returncode == 0


def test_a_damaged_archive_copy_is_held_with_an_alarm_and_never_purged(
    station: Station, tmp_path: Path
) -> None:
    victim = _damage_the_archive_copy_of_the_largest_file(station, tmp_path)
    proc = station.run("sync", "--once")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "upload.digest_mismatched" in proc.stderr
    after = {r["id"]: r for r in rows(station.data_dir)}
    assert after[victim["id"]]["state"] == "held"
    assert "hashes" in after[victim["id"]]["reason"]
    assert (station.staging / str(victim["staged_path"])).exists()
    assert after[victim["id"]]["purged_at"] is None
    others = [r for r in after.values() if r["id"] != victim["id"]]
    assert all(r["state"] == "confirmed" and r["purged_at"] for r in others)
    assert not any((station.staging / str(r["staged_path"])).exists() for r in others)
    # Sidecars (the signed receipts) stay, archived with the purge.
    archived = b"".join(p.read_bytes() for p in (station.staging / "_archive").iterdir())
    assert all(f"{r['staged_path']}.custody.json".encode() in archived for r in others)
    assert not any((station.staging / f"{r['staged_path']}.custody.json").exists() for r in others)
    queue = station.json("queue")["files"]
    assert [q["file_id"] for q in queue] == [victim["id"]]
    assert "hashes" in queue[0]["last_error"]


def test_after_confirm_wipes_at_the_next_dock(station: Station, tmp_path: Path) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "after_confirm"\n')
    _camera(tmp_path)
    cam = tmp_path / "cam"
    recordings = {p for p in (cam / "RECORD").rglob("*") if p.is_file()}
    assert recordings
    first = _import(station, cam)
    assert first["wipe"]["state"] == "not wiped"
    assert all(p.exists() for p in recordings)
    assert station.run("sync", "--once").returncode == 0
    second = _import(station, cam)
    assert second["wipe"]["state"] == "wiped", second["wipe"]
    assert not any(p.exists() for p in recordings)
    assert (cam / "DEVICE.INF").exists()  # metadata is never wiped


def test_staging_reserve_defers_files_until_uploads_free_space(tmp_path: Path) -> None:
    """A camera that does not fit above the reserve gives what fits; the rest waits on its row
    (staging_full) until uploads are confirmed and purged, and the next import takes it."""
    big = CameraSpec(serial="RES01", days=1, files_per_day=4, file_size=6 * MIB, size_jitter=0)
    second = CameraSpec(serial="RES02", days=1, files_per_day=4, file_size=6 * MIB, size_jitter=0)
    _camera(tmp_path, big, "cam1")
    _camera(tmp_path, second, "cam2")
    archive = tmp_path / "archive"
    with tmpfs(tmp_path / "station", 64 * MIB):
        station = Station(tmp_path / "station")
        station.configure(
            'station_id = "T"\n[storage]\nreserve_bytes = 20971520\n'
            f'[ingest]\nwipe_policy = "never"\n[sync]\ndirectory_root = "{archive}"\n'
            "purge_grace_s = 0\n"
        )
        _import(station, tmp_path / "cam1")
        partial = station.run("import", str(tmp_path / "cam2"))
        assert partial.returncode == 3, partial.stdout + partial.stderr
        assert "staging full" in partial.stdout
        waiting = [r for r in rows(station.data_dir) if r["reason_kind"] == "staging_full"]
        assert [(r["device_serial"], r["state"]) for r in waiting] == [("RES02", "discovered")]
        synced = station.run("sync", "--once", "--json")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert json.loads(synced.stdout)["purged_bytes"] >= 24 * MIB
        again = station.run("import", str(tmp_path / "cam2"))
        assert again.returncode == 0, again.stdout + again.stderr
        states = {(r["device_serial"], r["state"]) for r in rows(station.data_dir)}
        assert states == {("RES01", "confirmed"), ("RES02", "confirmed"), ("RES02", "sealed")}
        (late,) = [r for r in rows(station.data_dir) if r["state"] == "sealed"]
        assert late["id"] == waiting[0]["id"]


def test_important_files_go_first_then_the_oldest(station: Station, tmp_path: Path) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n[sync]\nmax_parallel_uploads = 1\n')
    _camera(tmp_path)
    _import(station, tmp_path / "cam")
    _camera(tmp_path, CameraSpec(serial="DIR02", days=1, files_per_day=3, important_every=2), "c2")
    _import(station, tmp_path / "c2")
    assert station.run("sync", "--once").returncode == 0
    done = rows(station.data_dir, "SELECT * FROM files ORDER BY confirmed_at, id")
    important = [r["important"] for r in done]
    assert 0 < sum(important) < len(done)
    assert important == sorted(important, reverse=True), important
    for group in (1, 0):
        sealed = [r["sealed_at"] for r in done if r["important"] == group]
        assert sealed == sorted(sealed)


def test_the_bandwidth_cap_holds_across_workers(station: Station, tmp_path: Path) -> None:
    rate = 4 * MIB
    station.configure(
        BASE + '[ingest]\nwipe_policy = "never"\n'
        f"[sync]\nbandwidth_bytes_per_s = {rate}\nmax_parallel_uploads = 2\n"
    )
    _camera(tmp_path, CameraSpec(serial="BW01", days=1, files_per_day=3, file_size=2 * MIB))
    _import(station, tmp_path / "cam")
    total = sum(int(r["size"]) for r in rows(station.data_dir))
    assert total > 5 * MIB
    started = time.monotonic()
    assert station.run("sync", "--once").returncode == 0
    elapsed = time.monotonic() - started
    assert elapsed >= total / rate - RateLimit.BURST_S, elapsed


def test_outside_the_upload_windows_nothing_is_sent(station: Station, tmp_path: Path) -> None:
    later = datetime.now() + timedelta(hours=3)
    window = f"{later:%H}:00-{(later + timedelta(hours=1)):%H}:00"
    station.configure(BASE + f'[ingest]\nwipe_policy = "never"\n[sync]\nwindows = ["{window}"]\n')
    _camera(tmp_path)
    _import(station, tmp_path / "cam")
    proc = station.run("sync", "--once")
    assert proc.returncode == 75, proc.stdout
    assert "outside the upload windows" in proc.stdout
    assert {r["state"] for r in rows(station.data_dir)} == {"sealed"}
    assert not (station.data_dir / "archive").exists()


@pytest.mark.parametrize(
    ("windows", "hhmm", "inside"),
    [
        ((), "12:00", True),
        (("22:00-06:00",), "23:30", True),
        (("22:00-06:00",), "05:59", True),
        (("22:00-06:00",), "06:00", False),
        (("08:00-09:00", "13:00-24:00"), "23:59", True),
        (("08:00-09:00", "13:00-24:00"), "12:00", False),
    ],
)
def test_upload_windows_wrap_midnight(windows: tuple[str, ...], hhmm: str, inside: bool) -> None:
    hour, minute = map(int, hhmm.split(":"))
    assert in_window(windows, datetime(2026, 1, 1, hour, minute)) is inside


def test_rate_limit_waits_on_the_monotonic_clock() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limit = RateLimit(1000, monotonic=lambda: clock[0], sleep=sleep)
    for _ in range(10):
        limit(500)
    assert clock[0] - 100.0 >= 5.0 - RateLimit.BURST_S - 1e-9


@pytest.mark.parametrize(
    ("sync", "problem"),
    [
        ('kind = "tus"\nendpoint = "http://evidence.example.org/files"', "plain http is refused"),
        ('kind = "tus"\nendpoint = "http://10.0.0.5/files"', "plain http is refused"),
        ('kind = "tus"', "required when kind is tus"),
        ('confirm_level = "trust-me"', "must be one of"),
        ('windows = ["25:00-26:00"]', "is not HH:MM-HH:MM"),
        ('client_cert = "/nonexistent.pem"', "is not a readable file"),
    ],
)
def test_unsafe_or_wrong_sync_settings_are_refused(
    station: Station, sync: str, problem: str
) -> None:
    station.configure(BASE + f"[sync]\n{sync}\n")
    proc = station.run("sync", "--once")
    assert proc.returncode == 78, proc.stderr
    assert problem in proc.stderr and "sync." in proc.stderr


def test_the_daemon_loop_uploads_as_files_arrive_and_stops_promptly(
    station: Station, tmp_path: Path
) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n[sync]\npurge_grace_s = 0\n')
    _camera(tmp_path)
    _import(station, tmp_path / "cam")
    cfg = config.load(station.config_path, station.env())
    stop = threading.Event()
    loop = threading.Thread(target=Uploader(cfg).serve, args=(stop,), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while {r["state"] for r in rows(station.data_dir)} != {"confirmed"}:
            assert time.monotonic() < deadline, "the loop did not drain the queue"
            time.sleep(0.1)
        while any(r["purged_at"] is None for r in rows(station.data_dir)):
            assert time.monotonic() < deadline, "the loop did not purge"
            time.sleep(0.1)
    finally:
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive()


def test_a_purge_cut_short_between_mark_and_unlink_is_finished_at_the_next_start(
    station: Station, tmp_path: Path
) -> None:
    """A kill after the row says purged but before the unlink leaves the copy behind: the next
    command's recovery removes it (and only it); the signed sidecar stays, archived."""
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n[sync]\npurge_grace_s = 0\n')
    _camera(tmp_path)
    _import(station, tmp_path / "cam")
    kept = {
        r["staged_path"]: (station.staging / r["staged_path"]).read_bytes()
        for r in rows(station.data_dir)
    }
    assert station.run("sync", "--once").returncode == 0
    purged = rows(station.data_dir, "SELECT * FROM files WHERE purged_at IS NOT NULL")
    assert len(purged) == len(kept)
    leftover = station.staging / purged[0]["staged_path"]
    leftover.write_bytes(kept[purged[0]["staged_path"]])  # as if the unlink never ran
    leftover.chmod(0o600)
    proc = station.run("status")
    assert proc.returncode == 0, proc.stderr
    assert leftover.exists(), "reading commands repair nothing"
    proc = station.run("sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not leftover.exists()
    archived = b"".join(p.read_bytes() for p in (station.staging / "_archive").iterdir())
    assert f"{purged[0]['staged_path']}.custody.json".encode() in archived
    assert station.run("verify").returncode == 0


def test_retry_releases_a_held_file_and_signs_who_did_it(station: Station, tmp_path: Path) -> None:
    victim = _damage_the_archive_copy_of_the_largest_file(station, tmp_path)
    assert station.run("sync", "--once").returncode == 3
    held = rows(station.data_dir, "SELECT * FROM files WHERE id=?", (victim["id"],))[0]
    assert (held["state"], held["reason_kind"]) == ("held", "upload_held")
    before = station.json("ledger")["audit"]

    # A file that is not held changes nothing, and nothing is signed for it.
    confirmed = next(r for r in rows(station.data_dir) if r["state"] == "confirmed")
    refused = station.run("retry", str(confirmed["id"]))
    assert refused.returncode == 64, refused.stdout + refused.stderr
    assert station.json("ledger")["audit"] == before

    proc = station.run("retry", "--held")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 files will be sent at the next sync" in proc.stdout
    released = rows(station.data_dir, "SELECT * FROM files WHERE id=?", (victim["id"],))[0]
    assert (released["state"], released["reason"], released["reason_kind"]) == ("sealed", "", "")
    trail = station.json("ledger")["audit"]
    assert len(trail) == len(before) + 1
    record = trail[-1]
    assert record["action"] == "file.retried"
    assert record["details"] == {"scope": "held", "file_ids": str(victim["id"])}
    assert record["operator"]
    # Signed into the chain, beside staging too: verify finds it whole.
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_files_of_identical_content_uploaded_in_parallel_all_end_confirmed(
    station: Station, tmp_path: Path
) -> None:
    # Every recording marked important has an empty .IMP marker: dozens of files with one hash,
    # which parallel workers write into the same archive folder under the same name at once.
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n[sync]\nmax_parallel_uploads = 4\n')
    spec = CameraSpec(serial="SAME01", days=2, files_per_day=24, file_size=4096, important_every=1)
    expected = _camera(tmp_path, spec)
    empty = [p for p, sha in expected.items() if sha == hashlib.sha256(b"").hexdigest()]
    assert len(empty) >= 40
    _import(station, tmp_path / "cam")
    proc = station.run("sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    held = rows(station.data_dir)
    assert len(held) == len(expected)
    assert {r["state"] for r in held} == {"confirmed"}, [
        (r["camera_name"], r["state"], r["reason"]) for r in held if r["state"] != "confirmed"
    ]
    assert not list((station.data_dir / "archive").rglob("*.part"))
    assert station.run("verify").returncode == 0


def test_temp_files_a_dead_writer_left_in_the_archive_are_swept_by_the_next_upload(
    station: Station, tmp_path: Path
) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n')
    victim, folder, ext = _largest_and_its_archive_folder(station, tmp_path)
    left = [f".{victim['sha256']}.{ext}.0123456789ab.part", f".{victim['sha256']}.json.ab.part"]
    for name in left:
        (folder / name).write_bytes(b"half a write")
    other = folder / f".{'0' * 64}.mp4.0123456789ab.part"  # content this station never sent
    other.write_bytes(b"not ours to judge")
    proc = station.run("sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in folder.glob(".*.part")) == [other.name]
    assert {r["state"] for r in rows(station.data_dir)} == {"confirmed"}
