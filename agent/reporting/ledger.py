"""The ledger (台账) a supervisor reads: dock sessions, officer handovers, faults, compliance.

Every function here is a query over the store plus arithmetic on times: one row per dock session,
the assignment history, the fault register, files ingested late (drift-corrected recording end
to ingest), interruptions and segment gaps to be explained, per camera history. Exports are CSV
that a spreadsheet opens and JSON. Every recording time says how it was corrected. Assigning an
officer is the one write, and it is audited. Nothing here reads a camera or shows content.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import posixpath
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from agent.core import wallclock
from agent.core.config import Config
from agent.core.errors import UsageError
from agent.core.operator import current_operator
from agent.custody import audit
from agent.custody.keys import StationKey
from agent.health import battery, clock
from agent.store import Store


def require_schema(store: Store) -> None:
    """The ledger's tables come with migration 0004_health, applied by any writing command."""
    if not store.health_ready():
        raise UsageError(
            problem="this database predates the ledger; run a command that writes (dockagent "
            "import, or the daemon) once to upgrade it"
        )


# ---- times ---------------------------------------------------------------------------------


def iso_utc(instant: datetime) -> str:
    """The station's time format (ingest.utc_now): comparable as text."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_since(text: str) -> str:
    """--since: a date or a date and time, station-local unless a zone is given; as UTC text."""
    try:
        if len(text) == 10:
            value = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(problem=f"--since {text!r}: give YYYY-MM-DD or YYYY-MM-DDThh:mm") from exc
    if value.tzinfo is None:
        value = value.astimezone()  # station-local
    return iso_utc(value)


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return clock.parse_station_time(text)
    except ValueError:
        return None


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


# ---- officer assignment --------------------------------------------------------------------


def current_officer(store: Store, serial: str) -> tuple[str, str]:
    """(officer, where from) for a camera now: its last assignment, else its last DEVICE.INF."""
    assignments = store.assignments(serial)
    if assignments:
        return str(assignments[-1]["officer_id"]), "assignment"
    sessions = store.sessions("device_serial=?", (serial,))
    if sessions and sessions[-1]["officer_id"]:
        return str(sessions[-1]["officer_id"]), "DEVICE.INF"
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
    committed together. Assigning the officer who already holds it changes nothing."""
    who = operator or current_operator()
    with store.transaction():
        previous, source = current_officer(store, serial)
        if source == "assignment" and previous == officer:
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


def officer_at(store: Store, serial: str, at: datetime | None, fallback: str) -> str:
    """The officer holding a camera at an instant (its assignment then), else `fallback`."""
    if at is not None:
        row = store.assignment_at(serial, iso_utc(at))
        if row is not None:
            return str(row["officer_id"])
    return fallback


# ---- sessions ledger -----------------------------------------------------------------------

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


def _handover_text(row: dict[str, Any]) -> str:
    previous = row["previous_officer"] or "-"
    return (
        f"{row['assigned_at']} {previous} -> {row['officer_id']} (by {row['assigned_by']}, "
        f"record {row['record_seq']})"
    )


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
    recordings = (
        store.recordings("f.device_serial = ?", (camera,)) if camera else store.recordings()
    )
    seconds = _durations(recordings)
    fault_rows = store.faults("device_serial = ?", (camera,)) if camera else store.faults()
    faults_by_session: dict[int, list[dict[str, Any]]] = {}
    for f in fault_rows:
        if f["session_id"] is not None:
            faults_by_session.setdefault(int(f["session_id"]), []).append(f)
    assignments: dict[str, list[dict[str, Any]]] = {}
    for a in store.assignments(camera):
        assignments.setdefault(str(a["device_serial"]), []).append(a)
    previous_dock: dict[str, str] = {}
    for earlier in store.sessions("docked_at < ?", (rows[0]["docked_at"],)) if rows else []:
        previous_dock[str(earlier["device_serial"])] = str(earlier["docked_at"])
    out: list[dict[str, Any]] = []
    for r in rows:
        serial = str(r["device_serial"])
        last = previous_dock.get(serial, "")
        previous_dock[serial] = str(r["docked_at"])
        handovers = [
            _handover_text(a)
            for a in assignments.get(serial, [])
            if last < str(a["assigned_at"]) <= str(r["docked_at"])
        ]
        stats = store.session_file_stats(int(r["id"]))
        effective = r["h_officer"] if r["h_officer"] is not None else r["officer_id"]
        if officer and officer not in (effective, r["officer_id"]):
            continue
        faults = faults_by_session.get(int(r["id"]), [])
        drift = r["h_clock_drift_s"]
        basis = (
            f"recordings: camera clock minus drift {drift:+d} s (± 1 s); "
            if drift is not None
            else "recordings: camera clock, uncorrected (drift unknown); "
        ) + "docked/undocked: station clock UTC"
        bat = json.loads(r["h_battery"]) if r["h_battery"] else {}
        reasons = json.loads(r["h_readiness_reasons"]) if r["h_readiness_reasons"] else []
        out.append(
            {
                "session_id": r["id"],
                "camera": serial,
                "officer": effective,
                "officer_source": r["h_officer_source"] or ("DEVICE.INF" if effective else ""),
                "officer_on_camera": r["officer_id"],
                "officer_mismatch": r["h_officer_mismatch"] or "",
                "handovers_since_last_dock": "; ".join(handovers),
                "docked_at_utc": r["docked_at"],
                "undocked_at_utc": r.get("undocked_at") or r["ended_at"] or "",
                "station_clock": r["h_station_clock"] or "",
                "outcome": r["outcome"],
                "files_found": r["files_found"],
                "files_sealed": r["files_sealed"],
                "bytes_copied": r["bytes_copied"],
                "hours_recorded": _hours(seconds.get(int(r["id"]), 0.0)),
                "first_recording_corrected": stats["first_corrected"] or "",
                "last_recording_corrected": stats["last_corrected"] or "",
                "first_recording_camera_clock": stats["first_raw"] or "",
                "last_recording_camera_clock": stats["last_raw"] or "",
                "clock_drift_s": drift,
                "time_basis": basis,
                "clock_correction": " ".join(
                    p for p in (r["h_clock_correction"], r["h_clock_correction_detail"]) if p
                ),
                "correction_check": " ".join(
                    p for p in (r["h_correction_check"], r["h_correction_check_detail"]) if p
                ),
                "drift_trend": r["h_drift_trend"] or "",
                "drift_flagged": bool(r["h_drift_flagged"]),
                "battery_verdict": r["h_battery_verdict"] or "",
                "battery": battery.BatteryReport(**bat).summary() if bat else "",
                "storage_free_bytes": r["h_storage_free_bytes"],
                "readiness": r["h_readiness"] or "",
                "readiness_reasons": "; ".join(
                    f"[{x['severity']}] {x['area']}: {x['text']}" for x in reasons
                ),
                "faults": len(faults),
                "fault_details": "; ".join(f"{f['code']}: {f['detail']}" for f in faults),
                "wipe": " ".join(p for p in (r["wipe_state"], r["wipe_detail"]) if p),
            }
        )
    return out


def handovers(store: Store, camera: str | None = None) -> list[dict[str, Any]]:
    return store.assignments(camera)


def fault_register(
    store: Store, *, since: str | None = None, camera: str | None = None
) -> list[dict[str, Any]]:
    clauses, args = [], []
    if since:
        clauses.append("at >= ?")
        args.append(since)
    if camera:
        clauses.append("device_serial = ?")
        args.append(camera)
    return store.faults(" AND ".join(clauses), args)


# ---- CSV -----------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: formula-like text is quoted (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and (
        value.startswith(_FORMULA_START) or (value.startswith("-") and not value[1:2].isdigit())
    ):
        return "'" + value
    return value


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


# ---- compliance ----------------------------------------------------------------------------

FINDING_COLUMNS = (
    "finding",
    "officer",
    "camera",
    "session_id",
    "file_id",
    "file",
    "camera_time",
    "corrected_time",
    "clock_drift_s",
    "time_basis",
    "ingested_at_utc",
    "hours_to_ingest",
    "detail",
    "retention_class",
    "explanation",
)


def _end_instant(row: dict[str, Any], config: Config) -> tuple[datetime | None, str]:
    corrected = _instant(row["recorded_end_corrected"])
    if corrected is not None:
        return corrected, str(row["time_basis"])
    try:
        wall = datetime.fromisoformat(row["recorded_end"] or row["recorded_start"])
    except ValueError:
        return None, "no recording time"
    zone = clock.camera_zone(config.ingest.camera_timezone)
    return clock.to_instant(wall, zone), "camera clock, uncorrected: drift unknown"


def _file_findings(
    store: Store, config: Config, rows: Sequence[dict[str, Any]], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    late_after = timedelta(hours=config.compliance.late_after_h)
    files: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    for r in rows:
        end, basis = _end_instant(r, config)
        ingested = _instant(r["staged_at"])
        start = _instant(r["recorded_start_corrected"])
        officer = officer_at(store, r["device_serial"], start, r["officer_on_camera"])
        delay = ((ingested or now) - end) if end is not None else None
        item = {
            "officer": officer,
            "camera": r["device_serial"],
            "session_id": r["session_id"],
            "file_id": r["id"],
            "file": r["camera_name"],
            "kind": r["kind"],
            "important": bool(r["important"]),
            "state": r["state"],
            "camera_time": r["recorded_end"],
            "corrected_time": r["recorded_end_corrected"],
            "clock_drift_s": r["clock_drift_s"],
            "time_basis": basis,
            "ingested_at_utc": r["staged_at"] or "",
            "hours_to_ingest": _hours(delay.total_seconds()) if delay is not None else None,
            "late": bool(delay is not None and delay > late_after),
            "retention_class": r["retention_class"],
            "detail": "" if ingested else "not ingested yet (hours counted to now)",
        }
        files.append(item)
        if item["late"]:
            late.append(
                {
                    **item,
                    "finding": "late",
                    "detail": (
                        f"ingested {item['hours_to_ingest']} h after the recording ended "
                        f"(limit {config.compliance.late_after_h} h)"
                        + (f"; {item['detail']}" if item["detail"] else "")
                    ),
                }
            )
    return files, late


def _gaps(store: Store, config: Config, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive segments (NNNN, NNNN+1, same directory and kind) with a gap between them."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["segment"] is None or not r["recorded_end"]:
            continue
        key = (r["device_serial"], posixpath.dirname(r["camera_name"]), r["kind"])
        groups.setdefault(key, []).append(r)
    found: list[dict[str, Any]] = []
    for (serial, _dir, _kind), items in sorted(groups.items()):
        items.sort(key=lambda x: int(x["segment"]))
        for a, b in itertools.pairwise(items):
            if int(b["segment"]) != int(a["segment"]) + 1:
                continue
            try:
                gap = (
                    datetime.fromisoformat(b["recorded_start"])
                    - datetime.fromisoformat(a["recorded_end"])
                ).total_seconds()
            except ValueError:
                continue
            if not config.compliance.segment_gap_s < gap <= config.compliance.segment_window_s:
                continue
            start = _instant(b["recorded_start_corrected"])
            found.append(
                {
                    "finding": "gap",
                    "officer": officer_at(store, serial, start, b["officer_on_camera"]),
                    "camera": serial,
                    "session_id": b["session_id"],
                    "file_id": b["id"],
                    "file": b["camera_name"],
                    "camera_time": b["recorded_start"],
                    "corrected_time": b["recorded_start_corrected"],
                    "clock_drift_s": b["clock_drift_s"],
                    "time_basis": b["time_basis"],
                    "gap_s": int(gap),
                    "previous_file": a["camera_name"],
                    "detail": (
                        f"{int(gap)} s without recording between segment {a['segment']} "
                        f"({posixpath.basename(a['camera_name'])}, ended {a['recorded_end']} "
                        f"camera clock) and segment {b['segment']}"
                    ),
                    "retention_class": b["retention_class"],
                }
            )
    return found


def _interruptions(
    store: Store, rows: Sequence[dict[str, Any]], since: str | None
) -> list[dict[str, Any]]:
    by_name: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        by_name[(r["device_serial"], posixpath.basename(r["camera_name"]))] = r
    where, args = ("s.docked_at >= ?", (since,)) if since else ("", ())
    out = []
    for e in store.camera_events(["REC_INTERRUPT"], where, args):
        name = str(e["fields"].get("file", ""))
        row = by_name.get((e["device_serial"], name))
        corrected = _instant(e["corrected_time"])
        out.append(
            {
                "finding": "interruption",
                "officer": officer_at(store, e["device_serial"], corrected, e["officer_on_camera"]),
                "camera": e["device_serial"],
                "session_id": e["session_id"],
                "file_id": row["id"] if row else None,
                "file": row["camera_name"] if row else name,
                "camera_time": e["camera_time"],
                "corrected_time": e["corrected_time"],
                "clock_drift_s": row["clock_drift_s"] if row else None,
                "time_basis": (
                    "camera clock minus the dock's drift"
                    if e["corrected_time"]
                    else "camera clock, uncorrected: drift unknown"
                ),
                "reason": str(e["fields"].get("reason", "")),
                "detail": f"REC_INTERRUPT reason={e['fields'].get('reason', '?')}",
                "retention_class": row["retention_class"] if row else "",
            }
        )
    return out


def compliance(
    store: Store, config: Config, *, since: str | None = None, now: str | None = None
) -> dict[str, Any]:
    """Late files, interruptions and segment gaps, per officer; every file with its class."""
    at = _instant(now) or wallclock.now()
    where, args = "", []
    if since:
        where = "f.staged_at >= ? OR (f.staged_at IS NULL AND s.docked_at >= ?)"
        args = [since, since]
    rows = store.recordings(where, args)
    files, late = _file_findings(store, config, rows, at)
    gaps = _gaps(store, config, rows)
    interruptions = _interruptions(store, rows, since)
    officers: dict[str, dict[str, Any]] = {}
    for item in files:
        entry = officers.setdefault(
            item["officer"] or "-",
            {"files": 0, "late": 0, "max_hours_to_ingest": 0.0, "interruptions": 0, "gaps": 0},
        )
        entry["files"] += 1
        entry["late"] += int(item["late"])
        if item["hours_to_ingest"] is not None:
            entry["max_hours_to_ingest"] = max(
                entry["max_hours_to_ingest"], item["hours_to_ingest"]
            )
    for kind, items in (("interruptions", interruptions), ("gaps", gaps)):
        for item in items:
            entry = officers.setdefault(
                item["officer"] or "-",
                {"files": 0, "late": 0, "max_hours_to_ingest": 0.0, "interruptions": 0, "gaps": 0},
            )
            entry[kind] += 1
    return {
        "generated_at_utc": iso_utc(at),
        "since": since,
        "late_after_h": config.compliance.late_after_h,
        "officers": dict(sorted(officers.items())),
        "late": late,
        "interruptions": interruptions,
        "gaps": gaps,
        "files": files,
    }


def findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything a supervisor must see explained, one row each, by officer."""
    rows = [*report["late"], *report["interruptions"], *report["gaps"]]
    return sorted(rows, key=lambda r: (str(r["officer"]), r["camera"], str(r["camera_time"])))


def readiness_by_camera(store: Store) -> list[dict[str, Any]]:
    """Each camera's verdict at its last dock, with the reasons that are not information."""
    out = []
    for h in store.latest_health():
        reasons = json.loads(h["readiness_reasons"] or "[]")
        out.append(
            {
                "camera": h["device_serial"],
                "session_id": h["session_id"],
                "docked_at_utc": h["docked_at"],
                "readiness": h["readiness"] or "not assessed",
                "reasons": [
                    f"{r['area']}: {r['text']}" for r in reasons if r["severity"] != "info"
                ],
            }
        )
    return out


# ---- per camera history (`dockagent devices SERIAL`) ---------------------------------------


def device_history(store: Store, serial: str, config: Config | None = None) -> dict[str, Any]:
    """A camera's docks with drift and battery, its trends, assignments and faults."""
    require_schema(store)
    cfg = config or Config()
    history = store.health_history(serial)
    trend = clock.drift_trend(
        clock.trend_points(history),
        cfg.health.drift_trend_min_span_h,
        cfg.health.drift_rate_flag_s_per_day,
    )
    docks = []
    for h in history:
        session = store.session(int(h["session_id"]))
        docks.append(
            {
                "session_id": h["session_id"],
                "docked_at_utc": h["docked_at"],
                "officer": h["officer"],
                "outcome": session["outcome"],
                "files_sealed": session["files_sealed"],
                "clock_drift_s": h["clock_drift_s"],
                "clock_detail": h["clock_detail"],
                "clock_correction": h["clock_correction"],
                "correction_check": h["correction_check"],
                "battery_verdict": h["battery_verdict"],
                "battery": json.loads(h["battery"] or "{}"),
                "readiness": h["readiness"],
                "readiness_reasons": json.loads(h["readiness_reasons"] or "[]"),
            }
        )
    officer, source = current_officer(store, serial)
    return {
        "serial": serial,
        "officer": officer,
        "officer_source": source,
        "docks": docks,
        "drift_trend": {
            "rate_s_per_day": trend.rate_s_per_day,
            "span_days": trend.span_days,
            "points": trend.points,
            "flagged": trend.flagged,
            "detail": trend.detail,
        },
        "battery_trend": battery.trend([(d["docked_at_utc"], d["battery"]) for d in docks]),
        "assignments": store.assignments(serial),
        "faults": store.faults("device_serial=?", (serial,)),
    }


def render_device_history(data: dict[str, Any]) -> str:
    """The text `dockagent devices SERIAL` prints."""
    lines = [
        f"camera {data['serial']}: officer {data['officer'] or '-'}"
        + (f" ({data['officer_source']})" if data["officer_source"] else ""),
        f"clock drift trend: {data['drift_trend']['detail']}"
        + ("  ** FLAGGED **" if data["drift_trend"]["flagged"] else ""),
    ]
    bt = data["battery_trend"]
    if bt["capacity_change_pct"] is not None:
        lines.append(
            f"battery trend: capacity {bt['capacity_change_pct']:+g} points"
            + (f", {bt['fade_per_100']:g} % per 100 cycles" if bt["fade_per_100"] else "")
        )
    lines.append("")
    lines.append("docks (drift = camera clock minus station clock at dock detection):")
    for d in data["docks"]:
        drift = "unknown" if d["clock_drift_s"] is None else f"{d['clock_drift_s']:+d} s"
        bat = d["battery"]
        bat_text = battery.BatteryReport(**bat).summary() if bat else "-"
        lines.append(
            f"  session {d['session_id']}  {d['docked_at_utc']}  officer {d['officer'] or '-'}  "
            f"drift {drift}  clock {d['clock_correction'] or '-'}"
            + (f" (last correction {d['correction_check']})" if d["correction_check"] else "")
        )
        lines.append(f"      battery {bat_text}")
        lines.append(f"      readiness {d['readiness'] or '-'}")
        for reason in d["readiness_reasons"]:
            if reason["severity"] != "info":
                lines.append(f"        [{reason['severity']}] {reason['area']}: {reason['text']}")
    if data["assignments"]:
        lines.append("")
        lines.append("handovers:")
        lines.extend(f"  {_handover_text(a)}" for a in data["assignments"])
    if data["faults"]:
        lines.append("")
        lines.append("faults:")
        lines.extend(
            f"  {f['at']}  session {f['session_id']}  [{f['severity']}] {f['code']}: {f['detail']}"
            for f in data["faults"]
        )
    return "\n".join(lines) + "\n"
