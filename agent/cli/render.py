"""The ledger, the compliance report and a camera's history as text a supervisor reads.

Each function takes the data agent.reporting returned and gives back the whole text, so the
commands only choose between it, CSV and JSON. Times are printed as the data says them (UTC, or
drift-corrected with their basis); nothing here queries the store or changes a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.cli.output import table
from agent.core.model import display_name
from agent.health import battery
from agent.reporting.handovers import handover_text
from agent.reporting.sessions import FAULT_COLUMNS
from agent.store import AssignmentRow

_SESSION_HEADERS = [
    "session",
    "camera",
    "officer",
    "docked (UTC)",
    "sealed",
    "hours",
    "drift s",
    "clock",
    "battery",
    "readiness",
    "faults",
    "outcome",
]


def _who(badge: str, name: str) -> str:
    """An officer as a person reads it: badge and name (the name escaped: roster input)."""
    return " ".join(p for p in (badge or "-", display_name(name)) if p)


# ---- `dockagent ledger` --------------------------------------------------------------------


def fault_register(faults: Sequence[dict[str, Any]]) -> str:
    """The fault register as a table."""
    return table([[f[c] for c in FAULT_COLUMNS] for f in faults], FAULT_COLUMNS) + "\n"


def _session_line(s: dict[str, Any]) -> tuple[object, ...]:
    return (
        s["session_id"],
        s["camera"],
        _who(s["officer"], s["officer_name"]),
        s["docked_at_utc"],
        s["files_sealed"],
        s["hours_recorded"],
        "?" if s["clock_drift_s"] is None else f"{s['clock_drift_s']:+d}",
        s["clock_correction"].split(" ", 1)[0] if s["clock_correction"] else "-",
        s["battery_verdict"] or "-",
        s["readiness"] or "-",
        s["faults"],
        s["outcome"],
    )


def _session_notes(s: dict[str, Any]) -> list[str]:
    """What a row cannot show: officer mismatch, handovers, why it is not ready."""
    handover = s["handovers_since_last_dock"]
    return [
        n
        for n in (
            s["officer_mismatch"],
            f"handover: {handover}" if handover else "",
            s["readiness_reasons"] if s["readiness"] not in ("", "ready") else "",
        )
        if n
    ]


def ledger(
    sessions: Sequence[dict[str, Any]],
    handovers: Sequence[AssignmentRow],
    names: dict[str, str] | None = None,
) -> str:
    """The sessions ledger: one line per session, its notes, then the handovers (officers
    named by `names`, badge to name, where the roster gave one)."""
    names = names or {}
    parts = [
        table([_session_line(s) for s in sessions], _SESSION_HEADERS) + "\n",
        "drift: camera clock minus station clock at dock detection; recording times in the "
        "ledger are camera clock minus that drift (see --csv/--json time_basis)\n",
    ]
    parts.extend(
        f"  session {s['session_id']}: {note}\n" for s in sessions for note in _session_notes(s)
    )
    if handovers:
        parts.append("\nhandovers:\n")
        parts.append(
            table(
                [
                    (
                        h.device_serial,
                        h.assigned_at,
                        _who(h.previous_officer, names.get(h.previous_officer, "")),
                        _who(h.officer_id, names.get(h.officer_id, "")),
                        h.assigned_by,
                    )
                    for h in handovers
                ],
                ["camera", "handed over (UTC)", "from", "to", "by"],
            )
            + "\n"
        )
    return "".join(parts)


# ---- `dockagent report compliance` ---------------------------------------------------------


def _officer_table(report: dict[str, Any]) -> str:
    return table(
        [
            (
                _who(officer, o["officer_name"]),
                o["files"],
                o["late"],
                o["max_hours_to_ingest"],
                o["interruptions"],
                o["gaps"],
            )
            for officer, o in report["officers"].items()
        ],
        ["officer", "files", "late", "max hours", "interruptions", "gaps"],
    )


def _findings_text(findings: Sequence[dict[str, Any]]) -> str:
    rows = [
        (
            f["finding"],
            _who(f["officer"], f["officer_name"]),
            f["camera"],
            f["file_id"] if f["file_id"] is not None else "-",
            f["file"],
            f["corrected_time"] or f"{f['camera_time']} (uncorrected)",
            f["detail"],
            display_name(f["explanation"]) or "-",
        )
        for f in findings
    ]
    if not rows:
        return "nothing to explain\n"
    return (
        "to be explained (times: camera clock minus measured drift):\n"
        + table(
            rows,
            ["finding", "officer", "camera", "id", "file", "time", "detail", "explanation"],
        )
        + "\n"
    )


def _files_table(files: Sequence[dict[str, Any]]) -> str:
    return (
        table(
            [
                (
                    f["file_id"],
                    f["camera"],
                    _who(f["officer"], f["officer_name"]),
                    f["file"],
                    f["hours_to_ingest"],
                    "LATE" if f["late"] else "",
                    f["retention_class"],
                )
                for f in files
            ],
            ["id", "camera", "officer", "file", "hours", "late", "retention"],
        )
        + "\n"
    )


def compliance(
    report: dict[str, Any], findings: Sequence[dict[str, Any]], *, with_files: bool
) -> str:
    """The compliance report: per officer totals, the findings, and every file if asked."""
    since = report["since"]
    head = (
        f"compliance report at {report['generated_at_utc']} (UTC)"
        + (f", files ingested since {since}" if since else "")
        + f"; late: ingested more than {report['late_after_h']} h after the recording ended "
        "(camera clock corrected by the measured drift)\n\n"
    )
    text = head + _officer_table(report) + "\n\n" + _findings_text(findings)
    if with_files:
        text += "\n" + _files_table(report["files"])
    return text


# ---- `dockagent devices SERIAL` ------------------------------------------------------------


def _dock_lines(d: dict[str, Any]) -> list[str]:
    drift = "unknown" if d["clock_drift_s"] is None else f"{d['clock_drift_s']:+d} s"
    bat = d["battery"]
    bat_text = battery.BatteryReport(**bat).summary() if bat else "-"
    lines = [
        f"  session {d['session_id']}  {d['docked_at_utc']}  officer {d['officer'] or '-'}  "
        f"drift {drift}  clock {d['clock_correction'] or '-'}"
        + (f" (last correction {d['correction_check']})" if d["correction_check"] else ""),
        f"      battery {bat_text}",
        f"      readiness {d['readiness'] or '-'}",
    ]
    lines.extend(
        f"        [{reason['severity']}] {reason['area']}: {reason['text']}"
        for reason in d["readiness_reasons"]
        if reason["severity"] != "info"
    )
    return lines


def device_history(data: dict[str, Any]) -> str:
    """The text `dockagent devices SERIAL` prints."""
    lines = [
        f"camera {data['serial']}: officer {_who(data['officer'], data['officer_name'])}"
        + (
            f", {display_name(data['unit_name'] or data['unit_id'])}"
            if data["unit_id"] or data["unit_name"]
            else ""
        )
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
        lines.extend(_dock_lines(d))
    if data["assignments"]:
        lines.append("")
        lines.append("handovers:")
        lines.extend(f"  {handover_text(AssignmentRow(**a))}" for a in data["assignments"])
    if data["faults"]:
        lines.append("")
        lines.append("faults:")
        lines.extend(
            f"  {f['at']}  session {f['session_id']}  [{f['severity']}] {f['code']}: {f['detail']}"
            for f in data["faults"]
        )
    return "\n".join(lines) + "\n"
