"""What keeps the cost of the station's commands and idle loop flat as its history grows, held to
the answers it must still give: the counts kept by triggers equal a count over the rows, `status`
lists the latest docks with their own counts, the upload claim hands out every row once in the
queue's order without sending what the pass tried to SQLite, an idle upload pass opens no store,
and a truncated database is refused at open without PRAGMA quick_check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli.inspecting import status_data
from agent.core.config import Config
from agent.core.errors import StoreCorrupt
from agent.core.model import Candidate, FileKind, FileState, SessionOutcome
from agent.store import FileRow, Store
from agent.sync.pool import Uploader

NOW = "2026-03-01T00:00:00.000000Z"


def _cand(name: bytes, size: int = 10, important: bool = False) -> Candidate:
    return Candidate(name, size, 1, 0, 0, FileKind.VIDEO, "", "", None, important, True)


def _session(store: Store, serial: str = "CAM1", docked_at: str = NOW) -> int:
    return store.open_session(
        {
            "device_serial": serial,
            "source": "/x",
            "docked_at": docked_at,
            "outcome": SessionOutcome.COMPLETE,
        }
    )


def _seal(store: Store, fid: int, sealed_at: str | None = NOW) -> None:
    store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    store.transition(
        fid, FileState.COPYING, FileState.STAGED, sha256="ab" * 32, staged_path=f"C/{fid}"
    )
    store.transition(fid, FileState.STAGED, FileState.SEALED, record_seq=fid, sealed_at=sealed_at)


def _counted(store: Store) -> tuple[dict[str, int], list[tuple[str, str, int, int]]]:
    """The same counts over the rows themselves."""
    by_state = {
        str(r[0]): int(r[1])
        for r in store.conn.execute("SELECT state, COUNT(*) FROM files GROUP BY state")
    }
    by_camera = [
        (str(r[0]), str(r[1]), int(r[2]), int(r[3]))
        for r in store.conn.execute(
            "SELECT device_serial, state, COUNT(*), SUM(size) FROM files "
            "GROUP BY device_serial, state ORDER BY device_serial, state"
        )
    ]
    return by_state, by_camera


STEPS = st.lists(
    st.tuples(st.sampled_from(["add", "copy", "fail", "rediscover", "drop"]), st.integers(0, 30)),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(steps=STEPS, data=st.data())
def test_the_counts_kept_by_triggers_equal_a_count_over_the_rows(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int]], data: st.DataObject
) -> None:
    store = Store.open(tmp_path_factory.mktemp("counts"), create=True)
    try:
        sessions = {serial: _session(store, serial) for serial in ("CAM1", "CAM2")}
        ids: list[int] = []
        for n, (step, pick) in enumerate(steps):
            if step == "add" or not ids:
                serial = data.draw(st.sampled_from(sorted(sessions)))
                cand = _cand(f"F{n}.MP4".encode(), size=pick * 7 + 1)
                ids.append(store.register(sessions[serial], serial, cand, "F", NOW)[0])
                continue
            fid = ids[pick % len(ids)]
            state = store.file(fid).state
            if step == "copy" and state is FileState.DISCOVERED:
                store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
            elif step == "fail" and state is FileState.COPYING:
                store.transition(fid, FileState.COPYING, FileState.FAILED, reason="x")
            elif step == "rediscover" and state is FileState.FAILED:
                store.transition(fid, FileState.FAILED, FileState.DISCOVERED, size=pick + 3)
            elif step == "drop":
                store.conn.execute("DELETE FROM files WHERE id=?", (fid,))
                ids.remove(fid)
        by_state, by_camera = _counted(store)
        assert store.state_counts() == by_state
        kept = [(c.key, c.state, c.files, c.bytes) for c in store.state_counts_by_camera()]
        assert kept == by_camera
    finally:
        store.close()


def test_status_lists_the_latest_docks_with_their_own_counts(tmp_path: Path) -> None:
    store = Store.open(tmp_path, create=True)
    ids = []
    for day in range(1, 31):
        sid = _session(store, docked_at=f"2026-03-{day:02d}T08:00:00.000000Z")
        ids.append(sid)
        fid = store.register(sid, "CAM1", _cand(f"D{day}.MP4".encode()), "D", NOW)[0]
        if day % 2:
            store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
    data = status_data(store, 5, "")
    assert [s["id"] for s in data["sessions"]] == ids[-5:]  # oldest of them first
    assert [s["states"] for s in data["sessions"]] == [
        {"copying": 1} if day % 2 else {"discovered": 1} for day in range(26, 31)
    ]
    assert data["files"] == 30 and data["states"]["copying"] == 15
    since = status_data(store, 20, "2026-03-28T00:00:00.000000Z")
    assert [s["id"] for s in since["sessions"]] == ids[-3:]
    assert status_data(store, 0, "")["sessions"] == []
    store.close()


def test_the_claim_hands_out_every_row_once_in_queue_order(tmp_path: Path) -> None:
    """Important first, then by seal time (none first) and id; an important row sealed while
    the pass goes on is claimed next; a row excluded is passed over."""
    store = Store.open(tmp_path, create=True)
    sid = _session(store)
    plan = [
        ("b", False, "2026-03-01T00:00:02.000000Z"),
        ("a", False, "2026-03-01T00:00:01.000000Z"),
        ("i", True, "2026-03-01T00:00:09.000000Z"),
        ("n", False, None),
        ("c", False, "2026-03-01T00:00:02.000000Z"),
        ("x", False, "2026-03-01T00:00:01.500000Z"),
    ]
    by_name = {}
    for name, important, sealed_at in plan:
        fid = store.register(sid, "CAM1", _cand(name.encode(), important=important), name, NOW)[0]
        _seal(store, fid, sealed_at)
        by_name[name] = fid
    tried = {by_name["x"]}
    claimed = []
    last: dict[bool, FileRow] = {}
    while (row := store.claim_upload("w", NOW, exclude=tried, after=last.values())) is not None:
        tried.add(row.id)
        last[row.important] = row
        claimed.append(row.camera_name)
        if row.camera_name == "a":  # an important row sealed meanwhile goes next
            late = store.register(sid, "CAM1", _cand(b"late", important=True), "late", NOW)[0]
            _seal(store, late, "2026-03-01T00:00:30.000000Z")
    assert claimed == ["i", "n", "a", "late", "b", "c"]
    store.close()


def test_a_claim_does_not_send_what_the_pass_tried_to_sqlite(tmp_path: Path) -> None:
    """A catch-up pass over n rows costs n claims of the same size, not n claims each naming
    every row tried before it (quadratic)."""
    store = Store.open(tmp_path, create=True)
    sid = _session(store)
    fid = store.register(sid, "CAM1", _cand(b"A.MP4"), "A", NOW)[0]
    _seal(store, fid)
    sent: list[str] = []
    store.conn.set_trace_callback(sent.append)
    row = store.claim_upload("w", NOW, exclude=set(range(100_000, 105_000)))
    store.conn.set_trace_callback(None)
    assert row is not None and row.id == fid
    assert max(len(sql) for sql in sent) < 1000, max(sent, key=len)[:200]
    store.close()


def test_an_idle_upload_pass_opens_no_store(tmp_path: Path) -> None:
    """Nothing to claim: no upload worker is started and no store opened (the daemon's idle
    pass every 2 s was a store per worker, each with its checks)."""
    cfg = Config()
    store = Store.open(tmp_path, create=True)
    opened: list[Store] = []

    def open_store() -> Store:
        opened.append(Store.open(tmp_path, create=False))
        return opened[-1]

    uploader = Uploader(cfg, open_store=open_store)
    report = uploader.run_once(store)
    assert report.confirmed == [] and report.crashed == []
    assert opened == []
    store.close()


def test_a_truncated_database_is_refused_at_open(tmp_path: Path) -> None:
    store = Store.open(tmp_path, create=True)
    sid = _session(store)
    for n in range(400):
        store.register(sid, "CAM1", _cand(f"F{n:04d}.MP4".encode() * 8), "F", NOW)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    db = tmp_path / "dockagent.db"
    for leftover in ("-wal", "-shm"):
        Path(f"{db}{leftover}").unlink(missing_ok=True)
    os.truncate(db, db.stat().st_size // 2)
    with pytest.raises(StoreCorrupt, match="malformed"):
        Store.open(tmp_path, create=False)


def _signed_confirmation(store: Store, fid: int) -> None:
    """The chain's confirmation of the row's hash, which purge asks for (its signature is not
    what this query looks at: agent.custody.verify checks it)."""
    store.conn.execute(
        "INSERT INTO records (kind, file_id, body, record_hash, prev_hash, signature, key_id, "
        "created_at) VALUES ('confirmation', ?, ?, ?, '', 's', 'k', ?)",
        (fid, '{"sha256": "' + "ab" * 32 + '"}', f"h{fid}", NOW),
    )


def test_the_purge_reads_only_rows_whose_grace_may_have_run_out(tmp_path: Path) -> None:
    """Rows confirmed on this boot less than the grace ago are not read at all; one confirmed
    longer ago, one on another boot and one from before boot stamps are."""
    store = Store.open(tmp_path, create=True)
    sid = _session(store)
    confirmed: dict[str, int] = {}
    for name, clock, boottime in (
        ("recent", "boot-a", 990.0),
        ("old", "boot-a", 100.0),
        ("other boot", "boot-b", 995.0),
        ("no stamp", None, None),
    ):
        fid = store.register(sid, "CAM1", _cand(name.encode()), name, NOW)[0]
        _seal(store, fid)
        store.claim_upload("w", NOW)
        store.confirm_upload(fid, "verified", "ref", NOW, clock or "", boottime or 0.0)
        _signed_confirmation(store, fid)
        if clock is None:
            store.conn.execute(
                "UPDATE files SET confirmed_clock=NULL, confirmed_boottime_s=NULL WHERE id=?",
                (fid,),
            )
        confirmed[name] = fid
    grace = 60.0
    read = {r.camera_name for r in store.purge_candidates(not_after=("boot-a", 1000.0 - grace))}
    assert read == {"old", "other boot", "no stamp"}
    assert len(store.purge_candidates()) == 4
    store.close()


def test_a_claim_after_many_deferred_rows_does_not_step_over_them(tmp_path: Path) -> None:
    """Rows a pass tried that went back to the queue (an outage defers them all) are behind
    where the pass got to: the next claim does not read them again one by one."""
    store = Store.open(tmp_path, create=True)
    sid = _session(store)
    last: dict[bool, FileRow] = {}
    tried: set[int] = set()
    for n in range(300):
        fid = store.register(sid, "CAM1", _cand(f"I{n}".encode(), important=n % 2 == 0), "I", NOW)
        _seal(store, fid[0], f"2026-03-01T00:00:{n // 10:02d}.{n:06d}Z")
    for _ in range(299):
        row = store.claim_upload("w", NOW, exclude=tried, after=last.values())
        assert row is not None
        tried.add(row.id)
        last[row.important] = row
        store.defer_upload(row.id, "server down", NOW, NOW)  # back to sealed, same place
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    # SQLite calls the handler every 10 virtual machine instructions: rows stepped over show.
    store.conn.set_progress_handler(count, 10)
    row = store.claim_upload("w", NOW, exclude=tried, after=last.values())
    store.conn.set_progress_handler(None, 0)
    assert row is not None and row.id not in tried
    walked = steps[0]
    steps[0] = 0
    store.conn.set_progress_handler(count, 10)
    # A claim that stepped over the deferred rows would read each of them as a row to upload.
    list(store.conn.execute("SELECT * FROM files WHERE state='sealed' AND important=1"))
    store.conn.set_progress_handler(None, 0)
    assert walked < steps[0], (walked, steps[0])  # less than reading the 150 deferred once
    store.close()
