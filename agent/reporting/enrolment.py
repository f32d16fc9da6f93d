"""Enrolment of cameras to officers, one or a whole roster, and the handovers it makes.

Each enrolment is an audit record (device.enrolled, or device.updated for a camera already
enrolled whose roster row changed); a camera enrolled to another officer than the one holding it
is a handover too (agent.reporting.handovers.record_handover). A roster is enrolled in one
transaction: all its rows or none; a revoked camera in a roster refuses it (a stale roster must
not take a lost or stolen camera back: that is a decision for one camera alone). The officer's
name and unit are kept by badge number for every row that names one. Nothing here parses a file
or prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.core.errors import InputRefused
from agent.custody import audit
from agent.custody.keys import StationKey
from agent.reporting.handovers import (
    ReprogramWarning,
    current_officer,
    record_handover,
    reprogram_warning,
)
from agent.reporting.roster import RosterRow
from agent.store import Store


@dataclass(frozen=True, slots=True)
class Holder:
    """Who a camera is issued to: badge, name and unit (any may be empty but the serial)."""

    serial: str
    officer_id: str = ""
    officer_name: str = ""
    unit_id: str = ""
    unit_name: str = ""

    @classmethod
    def of(cls, row: RosterRow) -> Holder:
        return cls(row.serial, row.officer_id, row.officer_name, row.unit_id, row.unit_name)

    def details(self) -> dict[str, str]:
        """The audit record's details (metadata only)."""
        return {
            "serial": self.serial,
            "officer_id": self.officer_id,
            "officer_name": self.officer_name,
            "unit_id": self.unit_id,
            "unit_name": self.unit_name,
        }


@dataclass
class Outcome:
    """What an enrolment did, counted over a roster."""

    enrolled: int = 0
    updated: int = 0
    unchanged: int = 0
    handovers: int = 0
    # Cameras now enrolled to a badge their own device record does not name: refused at
    # their next dock until reprogrammed.
    warnings: list[ReprogramWarning] = field(default_factory=list)


def _same(store: Store, h: Holder) -> bool | None:
    """Whether an active enrolment already says exactly this; None when not actively enrolled."""
    d = store.device(h.serial)
    if d is None or d.revoked_at is not None:
        return None
    return (d.officer_id, d.officer_name, d.unit_id, d.unit_name) == (
        h.officer_id,
        h.officer_name,
        h.unit_id,
        h.unit_name,
    )


def enroll(
    store: Store,
    key: StationKey,
    station_id: str,
    holder: Holder,
    now: str,
    operator: str,
    *,
    keep_binding: bool,
    outcome: Outcome,
) -> None:
    """Enrol one camera in the caller's transaction. keep_binding: a camera already enrolled
    keeps its binding and only its holder changes (a roster applied again); otherwise it is
    enrolled anew and bound again at its next dock (`dockagent devices enroll`)."""
    same = _same(store, holder)
    if keep_binding and same:
        outcome.unchanged += 1
        return
    previous, _source = current_officer(store, holder.serial)
    h = holder
    if keep_binding and same is not None:
        store.update_holder(h.serial, h.officer_id, h.officer_name, h.unit_id, h.unit_name)
        action = "device.updated"
        outcome.updated += 1
    else:
        store.enroll(
            h.serial,
            h.officer_id,
            operator,
            now,
            officer_name=h.officer_name,
            unit_id=h.unit_id,
            unit_name=h.unit_name,
        )
        action = "device.enrolled"
        outcome.enrolled += 1
    audit.record_action(store, key, station_id, action, h.details(), now, operator=operator)
    keep_officer(store, h, operator, now)
    if h.officer_id and previous and previous != h.officer_id:
        record_handover(store, key, station_id, h.serial, h.officer_id, previous, now, operator)
        outcome.handovers += 1
    warning = reprogram_warning(store, h.serial, h.officer_id, enrolled=True)
    if warning is not None:
        outcome.warnings.append(warning)


def keep_officer(store: Store, h: Holder, operator: str, now: str) -> None:
    """The officer's name and unit by badge, when the enrolment names them."""
    if h.officer_id and (h.officer_name or h.unit_id or h.unit_name):
        store.save_officer(h.officer_id, h.officer_name, h.unit_id, h.unit_name, operator, now)


def enroll_roster(
    store: Store,
    key: StationKey,
    station_id: str,
    rows: tuple[RosterRow, ...],
    now: str,
    operator: str,
) -> Outcome:
    """Every row of a checked roster, in one transaction: all of them or none. Raises
    InputRefused, enrolling nothing, when the roster lists a revoked camera."""
    outcome = Outcome()
    with store.transaction():
        revoked = [
            f"row {row.line}: camera {row.serial} was revoked at {d.revoked_at} by "
            f"{d.revoked_by}; take it back alone: dockagent devices enroll {row.serial}"
            for row in rows
            if (d := store.device(row.serial)) is not None and d.revoked_at is not None
        ]
        if revoked:
            raise InputRefused(
                problem=f"{len(revoked)} bad rows; nothing enrolled\n  " + "\n  ".join(revoked)
            )
        for row in rows:
            enroll(
                store,
                key,
                station_id,
                Holder.of(row),
                now,
                operator,
                keep_binding=True,
                outcome=outcome,
            )
    return outcome
