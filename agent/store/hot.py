"""The store's hot queries by name: what the daemon's idle loop, its start-up and every command
ask of the database, each as a call on a Store.

A test (tests/unit/test_query_plans.py) runs each of them with SQLite tracing on and reads the
EXPLAIN QUERY PLAN of every statement it ran: none may walk a table that grows with the
station's history. Adding a query to one of these paths means adding it here. Nothing here
runs in the agent; no SQL of its own either (the calls are the store's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.core.model import FileState

if TYPE_CHECKING:
    from agent.store import Store

# A station UTC time in the stored format, for the queries that take one.
SINCE = "2026-01-01T00:00:00.000000Z"

HOT_QUERIES: tuple[tuple[str, Callable[[Store], object]], ...] = (
    # the daemon's status line every 2 s and the metrics file (agent.reporting.metrics)
    ("state counts", lambda s: s.state_counts()),
    ("state counts by camera", lambda s: s.state_counts_by_camera()),
    ("oldest unconfirmed file", lambda s: s.oldest_unconfirmed()),
    ("cameras docked now", lambda s: s.docked_count()),
    ("last confirmation", lambda s: s.last_confirmed_at()),
    ("bytes awaiting upload", lambda s: s.bytes_in_states([FileState.SEALED])),
    ("refusals since", lambda s: s.refusal_count(SINCE)),
    ("chain head", lambda s: s.chain_head()),
    ("newest records", lambda s: s.last_records(16)),
    # the upload loop's idle pass, its claims and the purge (agent.sync)
    ("uploads waiting for a retry", lambda s: s.waiting_uploads()),
    ("uploads unscheduled", lambda s: s.uploads_unscheduled()),
    ("a sealed row to claim", lambda s: s.next_sealed()),
    ("purge candidates", lambda s: s.purge_candidates()),
    ("has the sink ever confirmed a file verified", lambda s: s.digest_proven("u", named=False)),
    ("has the named sink ever confirmed verified", lambda s: s.digest_proven("c", named=True)),
    # every dock's clock checks (agent.health.dock): its camera's last dock, and the docks its
    # drift trend is fitted over
    ("a camera's last dock", lambda s: s.last_health("CAM1", 10)),
    ("a camera's docks since its clock was set", lambda s: s.trend_history("CAM1", 10, 200)),
    # every dock's registration: a wipe a crash interrupted (agent.ingest.wipe)
    ("a camera's wipes not recorded done", lambda s: s.interrupted_wipes("CAM1")),
    # every writing command's start-up recovery (agent.custody.recovery.finish_purges)
    ("purged copies still named in staging", lambda s: s.purged_paths([1, 2])),
    ("upload backlog", lambda s: s.upload_backlog()),
    # several sinks ([[sync.sinks]]): each claimed row's sinks, what each waits for, and
    # purge and wipe asking for the confirmations of the sinks held_when requires
    ("a file's sinks", lambda s: s.sink_states(1)),
    ("files pending per sink", lambda s: s.sinks_pending()),
    ("sinks of files", lambda s: s.sinks_of_files([1, 2])),
    ("sink offsets of files", lambda s: s.sink_offsets_of_files([1, 2])),
    ("files a sink outside held_when waits for", lambda s: s.sinks_to_backfill(64)),
    ("purge candidates of required sinks", lambda s: s.purge_candidates(required=("ab", "cd"))),
    ("wipe: required sinks' confirmations", lambda s: s.signed_confirmations([1], ("ab",))),
    # time-stamp tokens each sink still waits for (agent.sync.token_delivery)
    ("tokens a sink waits for", lambda s: s.tokens_waiting("central", 16)),
    ("tokens not yet delivered", lambda s: s.tokens_undelivered()),
    # the daemon's wipe check of a docked camera, and its sessions
    ("files of a session", lambda s: s.files_of_session(1)),
    ("states of a session", lambda s: s.session_state_counts(1)),
    ("docked sessions", lambda s: s.docked_sessions()),
    # `status`
    ("recent sessions", lambda s: s.recent_sessions(20)),
    ("recent sessions since", lambda s: s.recent_sessions(20, SINCE)),
    ("states of sessions", lambda s: s.sessions_state_counts([1, 2])),
    ("latest health per camera", lambda s: s.latest_health()),
    # `queue`
    ("files not confirmed", lambda s: s.files_not_in_state(FileState.CONFIRMED)),
    # `ledger --since` and `report compliance --since`
    ("ledger rows since", lambda s: s.ledger_rows(since=SINCE)),
    ("files first taken in a session", lambda s: s.session_file_stats(1)),
    ("recordings of sessions", lambda s: s.recordings(sessions=[1, 2])),
    ("recordings ingested since", lambda s: s.recordings(ingested_since=SINCE)),
    ("camera events since", lambda s: s.camera_events(["REC_INTERRUPT"], docked_since=SINCE)),
    ("faults of sessions", lambda s: s.faults_of_sessions([1, 2])),
    ("faults since", lambda s: s.faults(since=SINCE)),
    ("previous docks", lambda s: s.previous_docks(["CAM1"], SINCE)),
    ("assignment in force", lambda s: s.assignment_at("CAM1", SINCE)),
    ("audit records", lambda s: s.audit_records()),
    # start-up recovery before every writing command (agent.custody.recovery)
    ("rows in a state", lambda s: s.files_in_state(FileState.COPYING, FileState.STAGED)),
    ("interrupted wipes", lambda s: s.interrupted_wipes("CAM1")),
    ("copies in custody not purged", lambda s: s.unpurged_files_in_state(FileState.SEALED)),
    ("audit records in order", lambda s: list(s.records("audit"))),
    ("interrupt running sessions", lambda s: s.interrupt_running_sessions(SINCE)),
    ("undock every session", lambda s: s.undock_all(SINCE)),
    ("highest file id", lambda s: s.max_file_id()),
    # `verify --incremental`: what came after the last clean verify
    ("where the last clean verify ended", lambda s: s.verified_head()),
    ("records after a seq", lambda s: list(s.records(after=3))),
    ("rows added or changed since", lambda s: list(s.files_with_records(after_id=3))),
    ("records of rows gone since", lambda s: list(s.file_records_without_rows(after_seq=3))),
    # trusted time: the daemon's stamping tick, `status` and `doctor` (agent.sync.stamping)
    ("what the tokens cover", lambda s: s.meta("tsa_covered_seq")),
    ("the record to stamp", lambda s: s.record(3)),
    ("when the first uncovered record came", lambda s: s.record_created_at(3)),
    # a dock's clock check of a camera with no log: when it last left the station
    ("a camera's previous session", lambda s: s.previous_session("CAM1", 2)),
    # `devices` and `queue`: how far docked cameras' copies and uploads are; the daemon's start
    # makes every verdict final (agent.store.progress)
    ("copy progress of sessions", lambda s: s.copy_progress([1, 2])),
    ("upload progress of sessions", lambda s: s.upload_progress([1, 2])),
    ("files being copied", lambda s: s.copying_progress()),
    ("a dock's health", lambda s: s.health(1)),
    ("every verdict final", lambda s: s.finalise_readiness(None)),
)
