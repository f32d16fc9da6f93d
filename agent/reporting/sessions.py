"""The sessions ledger (台账): one row per dock session, with officer, handovers, health, faults.

Each row joins a dock session with its health record, its files' recording times (raw and
drift-corrected, with the basis of the correction), the handovers since the camera's previous
dock and its faults; the fault register is the same faults as a list. Queries only: nothing here
writes, reads a camera or renders text for a terminal (agent.cli does that).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.core.errors import UsageError
from agent.health import battery
from agent.reporting.handovers import handover_text
from agent.reporting.times import hours
from agent.store import (
    AssignmentRow,
    FaultRow,
    HealthRow,
    LedgerRow,
    OfficerRow,
    Store,
)

SESSION_COLUMNS = (
    "session_id",
    "camera",
    "officer",
    "officer_name",
    "unit_id",
    "unit_name",
    "officer_source",
    "officer_on_camera",
    "officer_mismatch",
    "handovers_since_last_dock",
    "docked_at_utc",
    "undocked_at_utc",
    "station_clock",
    "outcome",
    "files_found",
    "files_sealed",
    "bytes_copied",
    "hours_recorded",
    "first_recording_corrected",
    "last_recording_corrected",
    "first_recording_camera_clock",
    "last_recording_camera_clock",
    "clock_drift_s",
    "time_basis",
    "clock_correction",
    "correction_check",
    "drift_trend",
    "drift_flagged",
    "battery_verdict",
    "battery",
    "storage_free_bytes",
    "readiness",
    "readiness_reasons",
    "faults",
    "fault_details",
    "wipe",
)

FAULT_COLUMNS = ("at", "device_serial", "session_id", "source", "code", "severity", "detail")


def require_schema(store: Store) -> None:
    """The ledger's tables come with migration 0004_health, applied by any writing command."""
    if not store.health_ready():
        raise UsageError(
            problem="this database predates the ledger; run a command that writes (dockagent "
            "import, or the daemon) once to upgrade it"
        )


@dataclass
class _Context:
    """What the rows need besides their own columns, read once for the whole ledger."""

    seconds: dict[int, float]
    faults: dict[int, list[FaultRow]] = field(default_factory=dict)
    assignments: dict[str, list[AssignmentRow]] = field(default_factory=dict)
    previous_dock: dict[str, str] = field(default_factory=dict)
    officers: dict[str, OfficerRow] = field(default_factory=dict)


def _durations(spans: Iterable[tuple[int, str, str]]) -> dict[int, float]:
    """Seconds recorded per session (files first taken in it), from raw camera times."""
    out: dict[int, float] = {}
    for session_id, start, end in spans:
        if not end:
            continue
        try:
            span = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        except ValueError:
            continue
        out[session_id] = out.get(session_id, 0.0) + max(0.0, span)
    return out


def _context(store: Store, rows: list[LedgerRow], camera: str | None) -> _Context:
    """Read for the listed sessions only (their files, faults, cameras), never the history."""
    ids = [int(r.session.id) for r in rows]
    ctx = _Context(
        seconds=_durations(store.recording_spans(ids, camera)),
        officers=store.officers(),
    )
    for f in store.faults_of_sessions(ids):
        if f.session_id is not None:
            ctx.faults.setdefault(int(f.session_id), []).append(f)
    for a in store.assignments(camera):
        ctx.assignments.setdefault(str(a.device_serial), []).append(a)
    # The dock before the first listed one, so its handovers are counted from the right time.
    if rows:
        serials = {str(r.session.device_serial) for r in rows}
        ctx.previous_dock.update(store.previous_docks(serials, rows[0].session.docked_at))
    return ctx


def _joined(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def _time_basis(drift: int | None) -> str:
    return (
        f"recordings: camera clock minus drift {drift:+d} s (± 1 s); "
        if drift is not None
        else "recordings: camera clock, uncorrected (drift unknown); "
    ) + "docked/undocked: station clock UTC"


# What a session without a health record shows: every health column empty.
_NO_HEALTH = HealthRow(session_id=0, device_serial="", docked_at="")


def _health_columns(h: HealthRow | None) -> dict[str, Any]:
    """The columns from the session's health record (clock, battery, readiness); a session
    without one shows them empty."""
    h = h or _NO_HEALTH
    bat = h.battery_report()
    return {
        "station_clock": h.station_clock or "",
        "clock_drift_s": h.clock_drift_s,
        "time_basis": _time_basis(h.clock_drift_s),
        "clock_correction": _joined(h.clock_correction, h.clock_correction_detail),
        "correction_check": _joined(h.correction_check, h.correction_check_detail),
        "drift_trend": h.drift_trend or "",
        "drift_flagged": bool(h.drift_flagged),
        "battery_verdict": h.battery_verdict or "",
        "battery": battery.BatteryReport(**bat).summary() if bat else "",
        "storage_free_bytes": h.storage_free_bytes,
        "readiness": h.readiness or "",
        "readiness_reasons": "; ".join(
            f"[{x['severity']}] {x['area']}: {x['text']}" for x in h.reasons()
        ),
    }


def _officer(r: LedgerRow) -> str:
    """The session's officer: as its health record resolved it, else its DEVICE.INF badge."""
    return r.health.officer if r.health is not None else r.session.officer_id


def officer_columns(
    officers: dict[str, OfficerRow], badge: str, unlock: str = ""
) -> dict[str, str]:
    """The officer's name and unit by badge, as the roster last gave them; else as the camera's
    own device record (a vendor unlock's, `unlock` JSON) gave them for that badge; '' when
    neither names them."""
    o = officers.get(badge)
    if o is not None:
        return {"officer_name": o.name, "unit_id": o.unit_id, "unit_name": o.unit_name}
    record = _unlock_record(unlock)
    if badge and record.get("officer_id") == badge:
        return {k: record.get(k, "") for k in ("officer_name", "unit_id", "unit_name")}
    return {"officer_name": "", "unit_id": "", "unit_name": ""}


def _unlock_record(unlock: str) -> dict[str, str]:
    """The device record a vendor unlock read (its text fields), from the session's JSON."""
    try:
        found = json.loads(unlock) if unlock else {}
    except ValueError:
        return {}
    record = found.get("record") if isinstance(found, dict) else None
    if not isinstance(record, dict):
        return {}
    return {str(k): v for k, v in record.items() if isinstance(v, str)}


def _row(store: Store, r: LedgerRow, ctx: _Context, handovers: list[str]) -> dict[str, Any]:
    s, h = r.session, r.health
    effective = _officer(r)
    stats = store.session_file_stats(int(s.id))
    faults = ctx.faults.get(int(s.id), [])
    columns = {
        "session_id": s.id,
        "camera": str(s.device_serial),
        "officer": effective,
        **officer_columns(ctx.officers, effective, s.unlock),
        "officer_source": (h.officer_source if h else "") or ("DEVICE.INF" if effective else ""),
        "officer_on_camera": s.officer_id,
        "officer_mismatch": (h.officer_mismatch if h else "") or "",
        "handovers_since_last_dock": "; ".join(handovers),
        "docked_at_utc": s.docked_at,
        "undocked_at_utc": s.undocked_at or s.ended_at or "",
        "outcome": s.outcome,
        "files_found": s.files_found,
        "files_sealed": s.files_sealed,
        "bytes_copied": s.bytes_copied,
        "hours_recorded": hours(ctx.seconds.get(int(s.id), 0.0)),
        "first_recording_corrected": stats.first_corrected or "",
        "last_recording_corrected": stats.last_corrected or "",
        "first_recording_camera_clock": stats.first_raw or "",
        "last_recording_camera_clock": stats.last_raw or "",
        **_health_columns(h),
        "faults": len(faults),
        "fault_details": "; ".join(f"{f.code}: {f.detail}" for f in faults),
        "wipe": _joined(s.wipe_state, s.wipe_detail),
    }
    return {c: columns[c] for c in SESSION_COLUMNS}  # the CSV's column order, in JSON too


def sessions(
    store: Store,
    *,
    since: str | None = None,
    officer: str | None = None,
    camera: str | None = None,
) -> list[dict[str, Any]]:
    """One row per dock session, oldest first, with the columns of SESSION_COLUMNS."""
    rows = store.ledger_rows(since=since, camera=camera)
    ctx = _context(store, rows, camera)
    out: list[dict[str, Any]] = []
    for r in rows:
        serial = str(r.session.device_serial)
        last = ctx.previous_dock.get(serial, "")
        ctx.previous_dock[serial] = str(r.session.docked_at)
        handovers = [
            handover_text(a)
            for a in ctx.assignments.get(serial, [])
            if last < str(a.assigned_at) <= str(r.session.docked_at)
        ]
        if officer and officer not in (_officer(r), r.session.officer_id):
            continue
        out.append(_row(store, r, ctx, handovers))
    return out


def fault_register(
    store: Store, *, since: str | None = None, camera: str | None = None
) -> list[dict[str, Any]]:
    """The faults recorded at docks (from `since`, of one camera when given), each by column
    name: FAULT_COLUMNS and the rest of the row."""
    return [f.as_dict() for f in store.faults(since=since, camera=camera)]
