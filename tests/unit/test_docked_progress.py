"""Progress of a docked camera's copy and uploads, and its readiness judged again while docked.

Real store, real files: progress costs a few commits a second at most whatever the chunk count;
`devices` and `queue` carry bytes done and total; the re-read of a growing battery log is
bounded in bytes and never raises on what a camera wrote; a verdict once final stays final.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli.devices import docked_now
from agent.cli.inspecting import queue_item
from agent.core.config import HealthConfig
from agent.core.model import Candidate, FileKind, FileState, SessionOutcome
from agent.health import battery, readiness
from agent.health.logs import MAX_LINE_BYTES
from agent.health.readiness_watch import FOLLOW_READ_LIMIT, Follow, read_appended
from agent.ingest.progress import WRITE_INTERVAL_S, Progress
from agent.store import Store

HEADER = battery.HEADER.encode() + b"\n"


def _row(minute: int, pct: int) -> bytes:
    return f"2026-12-07 10:{minute:02d}:00,{pct},3900,1450,30.0,120,2900,3000\n".encode()


def _station(tmp_path: Path, sizes: list[int]) -> tuple[Store, int, list[int]]:
    store = Store.open(tmp_path, create=True)
    sid = store.open_session(
        {
            "device_serial": "CAM1",
            "source": "/x",
            "docked_at": "t",
            "outcome": SessionOutcome.RUNNING,
        }
    )
    ids = []
    for n, size in enumerate(sizes):
        cand = Candidate(
            f"F{n}.MP4".encode(), size, 1, 0, 0, FileKind.VIDEO, "", "", None, False, True
        )
        ids.append(store.register(sid, "CAM1", cand, f"F{n}.MP4", "t")[0])
    return store, sid, ids


def test_progress_commits_a_few_times_a_second_never_per_buffer(tmp_path: Path) -> None:
    store, sid, (fid,) = _station(tmp_path, [1 << 30])
    progress = Progress(store, lambda: "t")
    before = store.conn.total_changes
    started = time.monotonic()
    progress.begin(sid, 1 << 30)
    progress.file_started(fid, "F0.MP4", 1 << 30)
    for _ in range(20_000):  # 20,000 buffers of 64 KiB: 1.25 GiB of chunks
        progress.advanced(64 << 10)
    elapsed = time.monotonic() - started
    progress.finish()
    writes = store.conn.total_changes - before
    assert writes <= 2 + elapsed / WRITE_INTERVAL_S + 1, (writes, elapsed)
    (row,) = store.copy_progress([sid]).values()
    assert (row.bytes_done, row.bytes_total) == (20_000 * (64 << 10), 1 << 30)
    assert (row.file_id, row.file_done, row.file_total) == (fid, 20_000 * (64 << 10), 1 << 30)


def test_a_file_not_copied_whole_leaves_the_totals(tmp_path: Path) -> None:
    store, sid, (a, b) = _station(tmp_path, [100, 50])
    progress = Progress(store, lambda: "t")
    progress.begin(sid, 150)
    progress.file_started(a, "F0.MP4", 100)
    progress.advanced(60)
    progress.file_ended(False)  # it changed while read: not copied
    progress.file_started(b, "F1.MP4", 50)
    progress.advanced(50)
    progress.file_ended(True)
    progress.finish()
    (row,) = store.copy_progress([sid]).values()
    assert (row.bytes_done, row.bytes_total) == (50, 50)


def test_devices_and_queue_carry_bytes_done_and_total(tmp_path: Path) -> None:
    store, sid, (copying, uploading, confirmed) = _station(tmp_path, [1000, 400, 600])
    store.transition(copying, FileState.DISCOVERED, FileState.COPYING)
    for fid in (uploading, confirmed):
        store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
        store.transition(
            fid, FileState.COPYING, FileState.STAGED, sha256="ab" * 32, staged_path=f"C/{fid}"
        )
        store.transition(fid, FileState.STAGED, FileState.SEALED, record_seq=fid)
    store.claim_upload("w", "t", exclude=[uploading])
    store.confirm_upload(confirmed, "complete", "sink/1", "t", "t", 0.0)
    store.claim_upload("w", "t")
    store.record_upload_offset(uploading, 100, True, "t")
    progress = Progress(store, lambda: "t")
    progress.begin(sid, 2000)
    progress.file_started(copying, "F0.MP4", 1000)
    progress.advanced(250)
    progress.finish()

    (camera,) = docked_now(store)
    assert camera["copy"]["bytes_done"] == 250 and camera["copy"]["bytes_total"] == 2000
    assert (camera["copy"]["file_id"], camera["copy"]["file_done"]) == (copying, 250)
    assert camera["upload"] == {"bytes_done": 600 + 100, "bytes_total": 400 + 600}
    assert camera["readiness"]["verdict"] == "not assessed"
    items = {f.id: queue_item(f, store.copying_progress()) for f in store.files_of_session(sid)}
    assert (items[copying]["copy_done"], items[copying]["copy_total"]) == (250, 1000)
    assert (items[uploading]["upload_done"], items[uploading]["upload_total"]) == (100, 400)
    assert items[uploading]["copy_done"] is None


def _log(path: Path, data: bytes) -> int:
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def test_appended_rows_are_read_once_and_a_row_being_written_waits(tmp_path: Path) -> None:
    path = tmp_path / "BATTERY.CSV"
    fd = _log(path, HEADER + _row(0, 5))
    try:
        offset = os.fstat(fd).st_size
        with path.open("ab") as log:
            log.write(_row(10, 40) + _row(20, 80)[:12])  # the camera is mid-row
        got = read_appended(fd, offset)
        assert got.lines == [_row(10, 40).rstrip(b"\n")]
        with path.open("ab") as log:
            log.write(_row(20, 80)[12:])
        again = read_appended(fd, got.offset)
        assert again.lines == [_row(20, 80).rstrip(b"\n")]
        assert read_appended(fd, again.offset).lines == []
    finally:
        os.close(fd)


def test_a_judge_fed_in_parts_judges_as_the_whole_log(tmp_path: Path) -> None:
    limits = HealthConfig()
    rows = [_row(m, p) for m, p in enumerate([5, 4, 3, 30, 60, 95])]
    whole = battery.assess(HEADER + b"".join(rows), limits)
    path = tmp_path / "BATTERY.CSV"
    fd = _log(path, HEADER + b"".join(rows[:3]))
    try:
        judge = battery.Judge(limits)
        judge.feed(iter((HEADER + b"".join(rows[:3])).splitlines()))
        offset = os.fstat(fd).st_size
        with path.open("ab") as log:
            log.write(b"".join(rows[3:]))
        judge.feed(read_appended(fd, offset).lines)
    finally:
        os.close(fd)
    assert judge.report() == whole and whole.charge_pct == 95


@settings(max_examples=200, deadline=None)
@given(old=st.binary(max_size=300), new=st.binary(max_size=3000), limit=st.integers(1, 2048))
def test_a_hostile_append_is_read_within_the_limit(
    tmp_path_factory: pytest.TempPathFactory, old: bytes, new: bytes, limit: int
) -> None:
    path = tmp_path_factory.mktemp("append") / "BATTERY.CSV"
    fd = _log(path, old + new)
    try:
        got = read_appended(fd, len(old), limit)
    finally:
        os.close(fd)
    assert sum(len(line) for line in got.lines) <= limit
    assert all(len(line) <= MAX_LINE_BYTES + 1 for line in got.lines)
    assert len(old) <= got.offset <= len(old) + len(new) or (not new and got.offset == len(old))
    assert got.skipped <= len(new)


def test_a_log_that_grew_by_gigabytes_costs_one_bounded_read(tmp_path: Path) -> None:
    path = tmp_path / "BATTERY.CSV"
    fd = _log(path, HEADER + _row(0, 5))
    offset = os.fstat(fd).st_size
    with path.open("ab") as log:  # 1 GiB of garbage without a newline, sparse, then a row
        log.truncate(offset + (1 << 30))
        log.seek(0, os.SEEK_END)
        log.write(b"\n" + _row(30, 99))
    try:
        started = time.monotonic()
        got = read_appended(fd, offset)
        assert time.monotonic() - started < 1.0
    finally:
        os.close(fd)
    assert got.lines[-1] == _row(30, 99).rstrip(b"\n")
    assert got.skipped >= (1 << 30) - FOLLOW_READ_LIMIT


def test_a_final_verdict_is_never_judged_again(tmp_path: Path) -> None:
    store, sid, _ = _station(tmp_path, [])
    store.update_session(sid, {"outcome": SessionOutcome.COMPLETE})
    store.open_health(sid, "CAM1", "t", "t")
    limits = HealthConfig()
    flat = battery.assess(HEADER + _row(0, 5), limits)
    inputs = readiness.Inputs(
        battery=flat.as_dict(),
        storage_free=None,
        storage_capacity=None,
        storage_is_volume=False,
        drift_s=0,
        clock_threshold_s=5,
        correction="not needed",
        correction_detail="",
        correction_check="",
        drift_flagged=False,
        drift_trend="",
        faults=(),
        officer_mismatch="",
    )
    path = tmp_path / "cam" / "BATTERY.CSV"
    path.parent.mkdir()
    path.write_bytes(HEADER + _row(0, 5))
    judge = battery.Judge(limits)
    judge.feed(iter(path.read_bytes().splitlines()))
    follow = Follow(sid, sid, inputs, limits, "BATTERY.CSV", judge, path.stat().st_size)
    root = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        judged = follow.again(store, root, "t1")
        assert judged is not None and judged.verdict == "warning"  # 5 %: charge before issue
        with path.open("ab") as log:
            log.write(_row(30, 100))
        judged = follow.again(store, root, "t2")
        assert judged is not None and judged.verdict == "ready"
        store.finalise_readiness([sid])
        with path.open("ab") as log:
            log.write(_row(40, 3))
        assert follow.again(store, root, "t3") is None
    finally:
        os.close(root)
    health = store.health(sid)
    assert health is not None
    assert (health.readiness, health.readiness_at, health.readiness_final) == ("ready", "t2", 1)
