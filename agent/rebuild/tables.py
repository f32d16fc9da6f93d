"""The new database's tables from the verified chain: sessions, file rows, records, devices.

Writes, through the store's own queries, what agent.rebuild.rows derived and the records
agent.rebuild.chain verified, in chain order; technician actions that changed tables
(enrolment, revocation, binding, handover, officers' names, explanations) are replayed from
their audit records. Call inside one transaction of a store that is not in place yet. Decides
nothing about what is trustworthy (that was decided before) and touches no file in staging.
"""

from __future__ import annotations

import json
from typing import Any

from agent.rebuild.chain import Chain
from agent.rebuild.report import RebuildReport
from agent.rebuild.rows import Rows, sessions
from agent.store import Store


def fill(store: Store, chain: Chain, rows: Rows, now: str, report: RebuildReport) -> None:
    restored_sessions = sessions(rows.files, now)
    for session in restored_sessions:
        store.restore_session(session)
    for restored in rows.files:
        store.restore_file(restored.row)
    for standing in rows.sinks:
        store.record_sink(
            standing.file_id,
            standing.sink,
            standing.state,
            standing.at or now,
            level=standing.level,
            ref=standing.ref,
        )
    head = 0
    for seq, found in sorted(chain.items()):
        if seq in rows.unrestorable:
            continue  # a file record with no row: named by rows, a gap in the chain here
        body = json.loads(found.record.body)
        store.append_record(found.record, str(body.get("at") or body.get("ingested_at") or now))
        report.records += 1
        head = seq
        if found.record.kind == "audit":
            _replay(store, body, seq, report)
    if head:
        store.set_meta("chain_head_seq", str(head))
    report.files, report.sessions = len(rows.files), len(restored_sessions)


def _holder(store: Store, details: dict[str, Any], who: str, at: str) -> tuple[str, str, str, str]:
    """(officer, name, unit number, unit name) of an enrolment record; keeps the officer's
    name and unit by badge as the enrolment did (agent.reporting.enrolment.keep_officer)."""
    officer, name, unit, unit_name = (
        str(details.get(k, "")) for k in ("officer_id", "officer_name", "unit_id", "unit_name")
    )
    if officer and (name or unit or unit_name):
        store.save_officer(officer, name, unit, unit_name, who, at)
    return officer, name, unit, unit_name


def _replay(store: Store, body: dict[str, Any], seq: int, report: RebuildReport) -> None:
    """Actions that changed tables: enrolment, revocation, a camera's binding, handover, an
    explanation of a finding."""
    action, details = body.get("action"), body.get("details") or {}
    who, at = str(body.get("operator", "")), str(body.get("at", ""))
    serial = str(details.get("serial", ""))
    if action == "device.enrolled":
        officer, name, unit, unit_name = _holder(store, details, who, at)
        store.enroll(serial, officer, who, at, officer_name=name, unit_id=unit, unit_name=unit_name)
        report.devices += 1
    elif action == "device.updated":
        store.update_holder(serial, *_holder(store, details, who, at))
    elif action == "file.explained":
        file_id = int(details.get("file_id", 0))
        if store.file_exists(file_id):
            store.save_explanation(file_id, str(details.get("text", "")), who, at, seq)
    elif action == "device.revoked":
        store.revoke(serial, who, at)
    elif action == "device.bound":
        store.mark_bound(serial, str(details.get("bound_at", "")) or at)
    elif action == "device.assigned":
        officer, previous = str(details.get("officer_id", "")), details.get("previous_officer")
        store.add_assignment(serial, officer, str(previous or ""), at, who, seq)
        report.assignments += 1
