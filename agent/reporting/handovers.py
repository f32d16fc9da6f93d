"""Which officer holds which camera: handovers (assignments), and the one write a ledger makes.

A camera's officer is its last assignment, else the officer it was enrolled to, else the badge
its DEVICE.INF gave at its last dock. Only a serial the station knows (enrolled or docked once)
can be assigned. Assigning is audited: the assignment row and its signed audit record commit
together. Nothing here reads a camera or renders text for a terminal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.core.errors import UnknownDevice
from agent.core.model import display_name
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


@dataclass(frozen=True, slots=True)
class ReprogramWarning:
    """A camera handed to `officer_id` whose own device record (read at its last vendor
    unlock, `read_at`) names `on_camera`. `refused`: its enrolment now names `officer_id`, so
    its next dock is refused (agent.runtime.unlock.identity_check) until it is reprogrammed;
    otherwise (an assignment alone) it docks, and its recordings go on naming `on_camera`."""

    serial: str
    officer_id: str
    on_camera: str
    read_at: str
    refused: bool

    def message(self) -> str:
        said = (
            f"camera {self.serial}: its own device record (read at its unlock, docked "
            f"{self.read_at}) names badge {self.on_camera}, not {self.officer_id}"
        )
        if self.refused:
            return (
                f"{said}; it will be refused at its next dock until it is reprogrammed with "
                f"badge {self.officer_id} (the vendor's configuration tool), or enrolled back "
                f"to {self.on_camera}"
            )
        return (
            f"{said}; until it is reprogrammed with badge {self.officer_id} (the vendor's "
            f"configuration tool) its recordings name {self.on_camera}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "device_serial": self.serial,
            "officer_id": self.officer_id,
            "officer_on_camera": self.on_camera,
            "device_record_read_at": self.read_at,
            "refused_at_next_dock": self.refused,
            "message": self.message(),
        }


def reprogram_warning(
    store: Store, serial: str, officer: str, *, enrolled: bool
) -> ReprogramWarning | None:
    """The warning for handing `serial` to `officer` when the camera's own device record,
    as its last vendor unlock read it, names another badge (None when it names this one, none,
    or no unlock ever read it). `enrolled`: the enrolment names `officer` now."""
    if not officer:
        return None
    last = store.last_unlock(serial)
    if last is None:
        return None
    unlock, docked_at = last
    try:
        found = json.loads(unlock)
    except ValueError:
        return None
    record = found.get("record") if isinstance(found, dict) else None
    badge = record.get("officer_id") if isinstance(record, dict) else None
    if not isinstance(badge, str) or not badge or badge == officer:
        return None
    # What a camera said is hostile: shown escaped and bounded, like every name it gives.
    return ReprogramWarning(serial, officer, display_name(badge[:64]), docked_at, enrolled)


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
            return {"changed": False, "serial": serial, "officer_id": officer, "warnings": []}
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
        device = store.device(serial)
        warning = reprogram_warning(
            store,
            serial,
            officer,
            enrolled=device is not None and device.officer_id == officer,
        )
    return {
        "changed": True,
        "serial": serial,
        "officer_id": officer,
        "previous_officer": previous,
        "assigned_at": now,
        "assigned_by": who,
        "record_seq": record.seq,
        # The camera's own device record names another badge: what to do (stderr too).
        "warnings": [] if warning is None else [warning.as_dict()],
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
