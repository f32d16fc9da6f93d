"""`dockagent ledger`: one row per dock session with officer, handovers, health and faults.

A query over the store (no daemon needed); --csv opens in a spreadsheet, --json for machines.
Recording times are shown drift-corrected with the basis of the correction; station times UTC.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import context
from agent.cli.output import emit_json, table
from agent.custody import audit
from agent.reporting import ledger


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ledger", help="dock sessions ledger (台账): officer, handovers, health")
    p.add_argument("--since", help="sessions docked from this date/time (station-local)")
    p.add_argument("--officer", help="only sessions of this officer (badge number)")
    p.add_argument("--camera", help="only this camera serial")
    p.add_argument("--faults", action="store_true", help="list the fault register instead")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV for a spreadsheet")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    since = ledger.parse_since(args.since) if args.since else None
    with context.reader(cfg) as store:
        ledger.require_schema(store)
        faults = ledger.fault_register(store, since=since, camera=args.camera)
        sessions: list[dict[str, Any]] = []
        handovers: list[dict[str, Any]] = []
        if not args.faults:
            sessions = ledger.sessions(store, since=since, officer=args.officer, camera=args.camera)
            handovers = ledger.handovers(store, args.camera)
        audit_trail = audit.audit_trail(store) if args.json else []
    out = sys.stdout
    if args.faults:
        columns = ("at", "device_serial", "session_id", "source", "code", "severity", "detail")
        if args.csv:
            out.write(ledger.to_csv(faults, columns))
        elif args.json:
            emit_json({"faults": faults})
        else:
            out.write(table([[f[c] for c in columns] for f in faults], columns) + "\n")
        return 0
    if args.csv:
        out.write(ledger.to_csv(sessions, ledger.SESSION_COLUMNS))
        return 0
    if args.json:
        emit_json(
            {
                "sessions": sessions,
                "handovers": handovers,
                "faults": faults,
                "audit": audit_trail,
            }
        )
        return 0
    rows = [
        (
            s["session_id"],
            s["camera"],
            s["officer"] or "-",
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
        for s in sessions
    ]
    out.write(
        table(
            rows,
            [
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
            ],
        )
        + "\n"
    )
    out.write(
        "drift: camera clock minus station clock at dock detection; recording times in the "
        "ledger are camera clock minus that drift (see --csv/--json time_basis)\n"
    )
    for s in sessions:
        notes = [
            n
            for n in (
                s["officer_mismatch"],
                f"handover: {s['handovers_since_last_dock']}"
                if s["handovers_since_last_dock"]
                else "",
                s["readiness_reasons"] if s["readiness"] not in ("", "ready") else "",
            )
            if n
        ]
        for note in notes:
            out.write(f"  session {s['session_id']}: {note}\n")
    if handovers:
        out.write("\nhandovers:\n")
        out.write(
            table(
                [
                    (
                        h["device_serial"],
                        h["assigned_at"],
                        h["previous_officer"] or "-",
                        h["officer_id"],
                        h["assigned_by"],
                    )
                    for h in handovers
                ],
                ["camera", "handed over (UTC)", "from", "to", "by"],
            )
            + "\n"
        )
    return 0
