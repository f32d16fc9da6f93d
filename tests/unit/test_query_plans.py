"""Every hot query of the store is answered from an index, never by walking a table that grows
with the station's history: what the daemon's idle loop, its start-up and every command ask
costs the same at a million files as at a thousand.

Each hot path (agent.store.hot.HOT_QUERIES, and the commands' own readers above the store) is
run on a real store with SQLite's statement trace on; every statement it ran is then asked for
its EXPLAIN QUERY PLAN, and a full scan of a history table fails the test. The few scans that
must stay are allow-listed below with the reason.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.cli.inspecting import status_data
from agent.core import i18n
from agent.core.config import Config
from agent.core.model import Candidate, FileKind, FileState, SessionOutcome, display_name
from agent.reporting import compliance, metrics, sessions
from agent.screen import times, view
from agent.store import Store
from agent.store.hot import HOT_QUERIES, SINCE

# Tables that grow with every dock, file, record or fault.
HISTORY = (
    "files",
    "sessions",
    "records",
    "session_health",
    "faults",
    "camera_events",
    "refusals",
    "copy_progress",
)
# Partial indexes hold only the rows still in flight, never the history: files not confirmed
# yet (files_unconfirmed), cameras docked now (sessions_docked_now), docks still being taken in
# (sessions_running), verdicts not final yet (session_health_not_final). Walking one costs what
# is in flight.
PARTIAL = re.compile(
    r"^SCAN \w+ USING (COVERING )?INDEX (files_unconfirmed|sessions_docked_now|sessions_running|session_health_not_final)$"
)
# The chain's head: read backwards along the rowid (seq), stopping after the LIMIT.
NEWEST = re.compile(r"FROM records ORDER BY seq DESC LIMIT \d+$")
SCAN = re.compile(r"^SCAN (\w+)")
# An open range over the purge time walks every file ever purged, though SQLite says SEARCH.
PURGED_RANGE = re.compile(r"^SEARCH (\w+) .*purged_at>\?")


def _station(tmp_path: Path) -> Store:
    """A store with two docks of a camera, sealed and confirmed files, health and faults."""
    store = Store.open(tmp_path, create=True)
    now = "2026-02-01T00:00:00.000000Z"
    for n in range(2):
        sid = store.open_session(
            {
                "device_serial": "CAM1",
                "source": "/x",
                "docked_at": f"2026-02-0{n + 1}T00:00:00.000000Z",
                "outcome": SessionOutcome.COMPLETE,
            }
        )
        store.open_health(sid, "CAM1", f"2026-02-0{n + 1}T00:00:00.000000Z", now)
        store.add_fault("CAM1", sid, SINCE, "camera_log", "X", "warn", "d")
        for i in range(3):
            name = f"F{n}{i}.MP4".encode()
            cand = Candidate(
                name, 10, 1, 0, 0, FileKind.VIDEO, "2026-01-31T10:00:00", "", i, False, True
            )
            fid = store.register(sid, "CAM1", cand, display_name(name), now)[0]
            store.transition(fid, FileState.DISCOVERED, FileState.COPYING)
            store.transition(
                fid, FileState.COPYING, FileState.STAGED, sha256="ab" * 32, staged_path=f"C/{fid}"
            )
            store.transition(fid, FileState.STAGED, FileState.SEALED, record_seq=fid)
    return store


@contextmanager
def _traced(store: Store) -> Iterator[list[str]]:
    ran: list[str] = []
    store.conn.set_trace_callback(ran.append)
    try:
        yield ran
    finally:
        store.conn.set_trace_callback(None)


def _scans(conn: sqlite3.Connection, sql: str) -> list[str]:
    """The plan's full scans of history tables that are not allow-listed."""
    found = []
    for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"):
        detail = str(row[3])
        walk = PURGED_RANGE.match(detail)
        if walk and walk.group(1) in HISTORY:
            found.append(detail)
            continue
        m = SCAN.match(detail)
        if not m or m.group(1) not in HISTORY or PARTIAL.match(detail):
            continue
        if not (detail == "SCAN records" and NEWEST.search(sql)):
            found.append(detail)
    return found


def _statements(ran: list[str]) -> list[str]:
    """What was run, without transaction control, pragmas and trigger bodies' markers."""
    skip = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA", "--")
    return [sql for sql in ran if not sql.lstrip().upper().startswith(skip)]


def _check(store: Store, name: str, call: Callable[[Store], object]) -> list[str]:
    with _traced(store) as ran:
        call(store)
    statements = _statements(ran)
    assert statements, f"{name}: ran no statement"
    return [
        f"{name}: {detail}  <- {sql}" for sql in statements for detail in _scans(store.conn, sql)
    ]


@pytest.mark.parametrize(("name", "call"), HOT_QUERIES, ids=[n for n, _ in HOT_QUERIES])
def test_a_hot_query_of_the_store_walks_no_history_table(
    tmp_path: Path, name: str, call: Callable[[Store], object]
) -> None:
    store = _station(tmp_path)
    try:
        assert _check(store, name, call) == []
    finally:
        store.close()


COMMANDS: tuple[tuple[str, Callable[[Store], object]], ...] = (
    ("status", lambda s: status_data(s, 20, "")),
    ("status --since", lambda s: status_data(s, 20, SINCE)),
    ("status line", metrics.quick_status),
    ("metrics", metrics.collect),
    ("ledger --since", lambda s: sessions.sessions(s, since=SINCE)),
    ("report compliance --since", lambda s: compliance.compliance(s, Config(), since=SINCE)),
    ("claim a sealed row", lambda s: s.claim_upload("w", "t")),
    ("screen", lambda s: view.state(s, _screen_context())),
)


def _screen_context() -> view.Context:
    cfg = Config()
    zone = times.station_zone("UTC")
    return view.Context(cfg, i18n.translations("en").gettext, zone, datetime.now(UTC), None)


@pytest.mark.parametrize(("name", "call"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_a_command_reads_only_what_it_shows(
    tmp_path: Path, name: str, call: Callable[[Store], object]
) -> None:
    store = _station(tmp_path)
    try:
        assert _check(store, name, call) == []
    finally:
        store.close()


def test_the_scan_check_names_a_walk_of_the_files_table(tmp_path: Path) -> None:
    """The check itself: a query no index answers is named (the check is not vacuous)."""
    store = _station(tmp_path)
    try:
        assert _scans(store.conn, "SELECT * FROM files WHERE camera_name = 'x'") == ["SCAN files"]
    finally:
        store.close()


# Questions whose usual answer is "no" on a station with a year of history: each must be read
# from a partial index holding only the rows that answer yes (migration 0022), not from an
# index that holds every row of the camera or of the sink (an equality search the scan test
# above cannot tell from a selective one).
RARE_YES: tuple[tuple[str, Callable[[Store], object], str], ...] = (
    ("sink proven, by URL", lambda s: s.digest_proven("u", named=False), "files_verified_sink"),
    ("sink proven, by name", lambda s: s.digest_proven("c", named=True), "file_sinks_verified"),
    ("wipes not done", lambda s: s.interrupted_wipes("CAM1"), "files_wipe_unfinished"),
)


@pytest.mark.parametrize(("name", "call", "index"), RARE_YES, ids=[n for n, _, _ in RARE_YES])
def test_a_rare_yes_is_read_from_a_partial_index(
    tmp_path: Path, name: str, call: Callable[[Store], object], index: str
) -> None:
    store = _station(tmp_path)
    try:
        with _traced(store) as ran:
            call(store)
        plans = [
            str(row[3])
            for sql in _statements(ran)
            for row in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}")
        ]
        assert any(f"INDEX {index} " in f"{p} " for p in plans), (name, plans)
    finally:
        store.close()
