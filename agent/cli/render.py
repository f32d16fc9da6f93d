"""The ledger, the compliance report and a camera's history as text a supervisor reads.

Each function takes the data agent.reporting returned and gives back the whole text, so the
commands only choose between it, CSV and JSON. Words are the station's language's and station
times are shown in its zone with the zone named (agent.cli.words); a camera's own clock is shown
as the camera said it, and says so. Nothing here queries the store or changes a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from agent.cli.output import table
from agent.cli.words import _, value, when
from agent.core.i18n import N_
from agent.core.model import display_name
from agent.health import battery
from agent.reporting.sessions import FAULT_COLUMNS
from agent.reporting.times import RECENT_DAYS
from agent.store import AssignmentRow

# The compliance report's kinds of finding (agent.reporting.compliance), for the catalogue.
FINDINGS = (N_("late"), N_("interruption"), N_("gap"))


def _session_headers() -> list[str]:
    return [
        _("session"),
        _("camera"),
        _("officer"),
        _("docked"),
        _("sealed"),
        _("hours"),
        _("drift s"),
        _("clock"),
        _("battery"),
        _("readiness"),
        _("faults"),
        _("outcome"),
    ]


def _who(badge: str, name: str) -> str:
    """An officer as a person reads it: badge and name (the name escaped: roster input)."""
    return " ".join(p for p in (badge or "-", display_name(name)) if p)


def handover_line(h: AssignmentRow | dict[str, Any]) -> str:
    """One handover: when (station zone), from whom to whom, by whom, its record."""
    row: dict[str, Any] = h if isinstance(h, dict) else h.as_dict()
    return _("{at} {previous} -> {officer} (by {by}, record {seq})").format(
        at=when(row["assigned_at"]),
        previous=row["previous_officer"] or "-",
        officer=row["officer_id"],
        by=row["assigned_by"],
        seq=row["record_seq"],
    )


# ---- `dockagent ledger` --------------------------------------------------------------------


def fault_register(faults: Sequence[dict[str, Any]]) -> str:
    """The fault register as a table."""
    rows = [[when(f[c]) if c == "at" else f[c] for c in FAULT_COLUMNS] for f in faults]
    heads = [_("when"), _("camera"), _("session"), _("source"), _("code"), _("severity")]
    return table(rows, [*heads, _("detail")]) + "\n"


def _session_line(s: dict[str, Any]) -> tuple[object, ...]:
    return (
        s["session_id"],
        s["camera"],
        _who(s["officer"], s["officer_name"]),
        when(s["docked_at_utc"]),
        s["files_sealed"],
        s["hours_recorded"],
        "?" if s["clock_drift_s"] is None else f"{s['clock_drift_s']:+d}",
        _clock_word(s["clock_correction"]),
        value(s["battery_verdict"] or "-"),
        value(s["readiness"] or "-"),
        s["faults"],
        value(s["outcome"]),
    )


def _clock_word(correction: str) -> str:
    """The clock correction's verdict alone ("set", "not needed", ...): its detail is long."""
    if not correction:
        return "-"
    for known in ("not needed",):
        if correction.startswith(known):
            return value(known)
    return value(correction.split(" ", 1)[0])


def _session_notes(s: dict[str, Any]) -> list[str]:
    """What a row cannot show: officer mismatch, handovers, why it is not ready."""
    handover = s["handovers_since_last_dock"]
    return [
        n
        for n in (
            s["officer_mismatch"],
            _("handover: {what}").format(what=handover) if handover else "",
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
        table([_session_line(s) for s in sessions], _session_headers()) + "\n",
        _(
            "drift: camera clock minus station clock at dock detection; recording times in the "
            "ledger are camera clock minus that drift (see --csv/--json time_basis)"
        )
        + "\n",
    ]
    parts.extend(
        _("  session {session}: {note}").format(session=s["session_id"], note=note) + "\n"
        for s in sessions
        for note in _session_notes(s)
    )
    if handovers:
        parts.append("\n" + _("handovers:") + "\n")
        parts.append(
            table(
                [
                    (
                        h.device_serial,
                        when(h.assigned_at),
                        _who(h.previous_officer, names.get(h.previous_officer, "")),
                        _who(h.officer_id, names.get(h.officer_id, "")),
                        h.assigned_by,
                    )
                    for h in handovers
                ],
                [_("camera"), _("handed over"), _("from"), _("to"), _("by")],
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
        [_("officer"), _("files"), _("late"), _("max hours"), _("interruptions"), _("gaps")],
    )


def _finding_time(f: dict[str, Any]) -> str:
    """Corrected: in the station's zone. Uncorrected: the camera's clock, said as such."""
    if f["corrected_time"]:
        return when(f["corrected_time"])
    return _("{time} (uncorrected)").format(time=display_name(str(f["camera_time"] or "-")))


def _findings_text(findings: Sequence[dict[str, Any]]) -> str:
    rows = [
        (
            _(f["finding"]),
            _who(f["officer"], f["officer_name"]),
            f["camera"],
            f["file_id"] if f["file_id"] is not None else "-",
            f["file"],
            _finding_time(f),
            f["detail"],
            display_name(f["explanation"]) or "-",
        )
        for f in findings
    ]
    if not rows:
        return _("nothing to explain") + "\n"
    heads = [_("finding"), _("officer"), _("camera"), _("id"), _("file"), _("time")]
    return (
        _("to be explained (times: camera clock minus measured drift):")
        + "\n"
        + table(rows, [*heads, _("detail"), _("explanation")])
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
                    _("LATE") if f["late"] else "",
                    f["retention_class"],
                )
                for f in files
            ],
            [_("id"), _("camera"), _("officer"), _("file"), _("hours"), _("late"), _("retention")],
        )
        + "\n"
    )


def compliance(
    report: dict[str, Any], findings: Sequence[dict[str, Any]], *, with_files: bool
) -> str:
    """The compliance report: per officer totals, the findings, and every file if asked."""
    since = report["since"]
    head = (
        _("compliance report at {at}").format(at=when(report["generated_at_utc"]))
        + (_(", files ingested since {since}").format(since=when(since)) if since else "")
        + _(
            "; late: ingested more than {hours} h after the recording ended "
            "(camera clock corrected by the measured drift)"
        ).format(hours=report["late_after_h"])
        + "\n\n"
    )
    text = head + _officer_table(report) + "\n\n" + _findings_text(findings)
    if with_files:
        text += "\n" + _files_table(report["files"])
    return text


# ---- `dockagent devices SERIAL` ------------------------------------------------------------


def _dock_lines(d: dict[str, Any]) -> list[str]:
    drift = _("unknown") if d["clock_drift_s"] is None else f"{d['clock_drift_s']:+d} s"
    bat = d["battery"]
    bat_text = battery.BatteryReport(**bat).summary() if bat else "-"
    lines = [
        _("  session {session}  {at}  officer {officer}  drift {drift}  clock {clock}").format(
            session=d["session_id"],
            at=when(d["docked_at_utc"]),
            officer=d["officer"] or "-",
            drift=drift,
            clock=d["clock_correction"] or "-",
        )
        + (
            _(" (last correction {check})").format(check=d["correction_check"])
            if d["correction_check"]
            else ""
        ),
        _("      battery {battery}").format(battery=bat_text),
        _("      readiness {readiness}").format(readiness=value(d["readiness"] or "-")),
    ]
    lines.extend(
        f"        [{reason['severity']}] {reason['area']}: {reason['text']}"
        for reason in d["readiness_reasons"]
        if reason["severity"] != "info"
    )
    return lines


def _device_head(data: dict[str, Any]) -> list[str]:
    unit = display_name(data["unit_name"] or data["unit_id"])
    lines = [
        _("camera {serial}: officer {officer}").format(
            serial=data["serial"], officer=_who(data["officer"], data["officer_name"])
        )
        + (f", {unit}" if unit else "")
        + (f" ({data['officer_source']})" if data["officer_source"] else ""),
        _("clock drift trend: {detail}").format(detail=data["drift_trend"]["detail"])
        + (_("  ** FLAGGED **") if data["drift_trend"]["flagged"] else ""),
    ]
    bt = data["battery_trend"]
    if bt["capacity_change_pct"] is not None:
        lines.append(
            _("battery trend: capacity {change:+g} points").format(change=bt["capacity_change_pct"])
            + (
                _(", {fade:g} % per 100 cycles").format(fade=bt["fade_per_100"])
                if bt["fade_per_100"]
                else ""
            )
        )
    return lines


def device_history(data: dict[str, Any]) -> str:
    """The text `dockagent devices SERIAL` prints."""
    lines = _device_head(data)
    lines.append("")
    lines.append(_("docks (drift = camera clock minus station clock at dock detection):"))
    for d in data["docks"]:
        lines.extend(_dock_lines(d))
    if data["assignments"]:
        lines.append("")
        lines.append(_("handovers:"))
        lines.extend(f"  {handover_line(a)}" for a in data["assignments"])
    if data["faults"]:
        lines.append("")
        lines.append(_("faults:"))
        lines.extend(
            _("  {at}  session {session}  [{severity}] {code}: {detail}").format(
                at=when(f["at"]),
                session=f["session_id"],
                severity=f["severity"],
                code=f["code"],
                detail=f["detail"],
            )
            for f in data["faults"]
        )
    return "\n".join(lines) + "\n"


def recent_window(what: str, first_day: date) -> str:
    """The line under a ledger or report that showed only the default window."""
    return (
        _(
            "{what} since {day} (the last {days} days); --since DATE or --all for earlier ones"
        ).format(what=what, day=first_day.isoformat(), days=RECENT_DAYS)
        + "\n"
    )
