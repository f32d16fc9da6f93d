"""Which officer holds which camera: handovers (assignments), and the one write a ledger makes.

A camera's officer is its last assignment, else the officer it was enrolled to, else the badge
its DEVICE.INF gave at its last dock. Only a serial the station knows (enrolled or docked once)
can be assigned. Assigning is audited: the assignment row and its signed audit record commit
together. Nothing here reads a camera or renders text for a terminal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.core.errors import UnknownDevice
from agent.core.operator import current_operator
from agent.custody import audit
from agent.custody.keys import StationKey
from agent.reporting.times import iso_utc
from agent.store import AssignmentRow, Store


def current_officer(store: Store, serial: str) -> tuple[str, str]:
    """(officer, where from) for a camera now: its last assignment, else its enrolment's
    officer, else its last DEVICE.INF."""
    assignments = store.assignments(serial)
    if assignments:
        return str(assignments[-1].officer_id), "assignment"
    device = store.device(serial)
    if device is not None and device.officer_id:
        return device.officer_id, "enrolment"
    sessions = store.sessions_of_camera(serial)
    if sessions and sessions[-1].officer_id:
        return str(sessions[-1].officer_id), "DEVICE.INF"
    return "", ""


def assign(
    store: Store,
    key: StationKey,
    station_id: str,
    serial: str,
    officer: str,
    now: str,
    *,
    operator: str | None = None,
) -> dict[str, Any]:
    """Hand a camera over to an officer from `now` on: an assignment row and an audit record,
    committed together. Assigning the officer who already holds it changes nothing; a serial
    the station does not know raises UnknownDevice."""
    who = operator or current_operator()
    with store.transaction():
        if not store.device_known(serial):
            raise UnknownDevice(serial=serial)
        previous, source = current_officer(store, serial)
        if source in ("assignment", "enrolment") and previous == officer:
            return {"changed": False, "serial": serial, "officer_id": officer}
        record = audit.record_action(
            store,
            key,
            station_id,
            "device.assigned",
            {"serial": serial, "officer_id": officer, "previous_officer": previous},
            now,
            operator=who,
        )
        store.add_assignment(serial, officer, previous, now, who, record.seq)
    return {
        "changed": True,
        "serial": serial,
        "officer_id": officer,
        "previous_officer": previous,
        "assigned_at": now,
        "assigned_by": who,
        "record_seq": record.seq,
    }


def record_handover(
    store: Store,
    key: StationKey,
    station_id: str,
    serial: str,
    officer: str,
    previous: str,
    now: str,
    operator: str,
) -> None:
    """A handover that an enrolment made (the camera enrolled to another officer than it was):
    the same assignment row and audit action as `dockagent assign`, in the caller's transaction."""
    record = audit.record_action(
        store,
        key,
        station_id,
        "device.assigned",
        {"serial": serial, "officer_id": officer, "previous_officer": previous, "via": "enrolment"},
        now,
        operator=operator,
    )
    store.add_assignment(serial, officer, previous, now, operator, record.seq)


def officer_at(store: Store, serial: str, at: datetime | None, fallback: str) -> str:
    """The officer holding a camera at an instant (its assignment then), else `fallback`."""
    if at is not None:
        row = store.assignment_at(serial, iso_utc(at))
        if row is not None:
            return str(row.officer_id)
    return fallback


def handovers(store: Store, camera: str | None = None) -> list[AssignmentRow]:
    """Every assignment, oldest first (of one camera when given)."""
    return store.assignments(camera)


def handover_text(row: AssignmentRow) -> str:
    """One handover as the ledger's CSV cell and the history page say it."""
    previous = row.previous_officer or "-"
    return (
        f"{row.assigned_at} {previous} -> {row.officer_id} (by {row.assigned_by}, "
        f"record {row.record_seq})"
    )
