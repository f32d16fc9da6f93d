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
from agent.store import Store

SESSION_COLUMNS = (
    "session_id",
    "camera",
    "officer",
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
    faults: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    assignments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    previous_dock: dict[str, str] = field(default_factory=dict)


def _durations(recordings: Iterable[dict[str, Any]]) -> dict[int, float]:
    """Seconds recorded per session (files first taken in it), from raw camera times."""
    out: dict[int, float] = {}
    for r in recordings:
        if not r["recorded_end"]:
            continue
        try:
            span = (
                datetime.fromisoformat(r["recorded_end"])
                - datetime.fromisoformat(r["recorded_start"])
            ).total_seconds()
        except ValueError:
            continue
        out[r["session_id"]] = out.get(r["session_id"], 0.0) + max(0.0, span)
    return out


def _context(store: Store, rows: list[dict[str, Any]], camera: str | None) -> _Context:
    recordings = (
        store.recordings("f.device_serial = ?", (camera,)) if camera else store.recordings()
    )
    ctx = _Context(seconds=_durations(recordings))
    for f in store.faults("device_serial = ?", (camera,)) if camera else store.faults():
        if f["session_id"] is not None:
            ctx.faults.setdefault(int(f["session_id"]), []).append(f)
    for a in store.assignments(camera):
        ctx.assignments.setdefault(str(a["device_serial"]), []).append(a)
    # The dock before the first listed one, so its handovers are counted from the right time.
    for earlier in store.sessions("docked_at < ?", (rows[0]["docked_at"],)) if rows else []:
        ctx.previous_dock[str(earlier["device_serial"])] = str(earlier["docked_at"])
    return ctx


def _joined(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def _time_basis(drift: int | None) -> str:
    return (
        f"recordings: camera clock minus drift {drift:+d} s (± 1 s); "
        if drift is not None
        else "recordings: camera clock, uncorrected (drift unknown); "
    ) + "docked/undocked: station clock UTC"


def _health_columns(r: dict[str, Any]) -> dict[str, Any]:
    """The columns from the session's health record (clock, battery, readiness)."""
    drift = r["h_clock_drift_s"]
    bat = json.loads(r["h_battery"]) if r["h_battery"] else {}
    reasons = json.loads(r["h_readiness_reasons"]) if r["h_readiness_reasons"] else []
    return {
        "station_clock": r["h_station_clock"] or "",
        "clock_drift_s": drift,
        "time_basis": _time_basis(drift),
        "clock_correction": _joined(r["h_clock_correction"], r["h_clock_correction_detail"]),
        "correction_check": _joined(r["h_correction_check"], r["h_correction_check_detail"]),
        "drift_trend": r["h_drift_trend"] or "",
        "drift_flagged": bool(r["h_drift_flagged"]),
        "battery_verdict": r["h_battery_verdict"] or "",
        "battery": battery.BatteryReport(**bat).summary() if bat else "",
        "storage_free_bytes": r["h_storage_free_bytes"],
        "readiness": r["h_readiness"] or "",
        "readiness_reasons": "; ".join(
            f"[{x['severity']}] {x['area']}: {x['text']}" for x in reasons
        ),
    }


def _row(store: Store, r: dict[str, Any], ctx: _Context, handovers: list[str]) -> dict[str, Any]:
    effective = r["h_officer"] if r["h_officer"] is not None else r["officer_id"]
    stats = store.session_file_stats(int(r["id"]))
    faults = ctx.faults.get(int(r["id"]), [])
    columns = {
        "session_id": r["id"],
        "camera": str(r["device_serial"]),
        "officer": effective,
        "officer_source": r["h_officer_source"] or ("DEVICE.INF" if effective else ""),
        "officer_on_camera": r["officer_id"],
        "officer_mismatch": r["h_officer_mismatch"] or "",
        "handovers_since_last_dock": "; ".join(handovers),
        "docked_at_utc": r["docked_at"],
        "undocked_at_utc": r.get("undocked_at") or r["ended_at"] or "",
        "outcome": r["outcome"],
        "files_found": r["files_found"],
        "files_sealed": r["files_sealed"],
        "bytes_copied": r["bytes_copied"],
        "hours_recorded": hours(ctx.seconds.get(int(r["id"]), 0.0)),
        "first_recording_corrected": stats["first_corrected"] or "",
        "last_recording_corrected": stats["last_corrected"] or "",
        "first_recording_camera_clock": stats["first_raw"] or "",
        "last_recording_camera_clock": stats["last_raw"] or "",
        **_health_columns(r),
        "faults": len(faults),
        "fault_details": "; ".join(f"{f['code']}: {f['detail']}" for f in faults),
        "wipe": _joined(r["wipe_state"], r["wipe_detail"]),
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
    clauses: list[str] = []
    args: list[Any] = []
    if since:
        clauses.append("s.docked_at >= ?")
        args.append(since)
    if camera:
        clauses.append("s.device_serial = ?")
        args.append(camera)
    rows = store.ledger_rows(" AND ".join(clauses), args)
    ctx = _context(store, rows, camera)
    out: list[dict[str, Any]] = []
    for r in rows:
        serial = str(r["device_serial"])
        last = ctx.previous_dock.get(serial, "")
        ctx.previous_dock[serial] = str(r["docked_at"])
        handovers = [
            handover_text(a)
            for a in ctx.assignments.get(serial, [])
            if last < str(a["assigned_at"]) <= str(r["docked_at"])
        ]
        effective = r["h_officer"] if r["h_officer"] is not None else r["officer_id"]
        if officer and officer not in (effective, r["officer_id"]):
            continue
        out.append(_row(store, r, ctx, handovers))
    return out


def fault_register(
    store: Store, *, since: str | None = None, camera: str | None = None
) -> list[dict[str, Any]]:
    """The faults recorded at docks (from `since`, of one camera when given), with FAULT_COLUMNS."""
    clauses, args = [], []
    if since:
        clauses.append("at >= ?")
        args.append(since)
    if camera:
        clauses.append("device_serial = ?")
        args.append(camera)
    return store.faults(" AND ".join(clauses), args)
