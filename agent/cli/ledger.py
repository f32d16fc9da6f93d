"""`dockagent ledger`: one row per dock session with officer, handovers, health and faults.

A query over the store (no daemon needed); --csv opens in a spreadsheet, --json for machines.
Recording times are shown drift-corrected with the basis of the correction; station times UTC.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import context, render
from agent.cli.output import add_bom_option, canonical, emit_json
from agent.cli.words import _, emit_spreadsheet, zone
from agent.core import wallclock
from agent.custody import audit
from agent.reporting import handovers, sessions
from agent.reporting.times import RECENT_DAYS, window
from agent.store import AssignmentRow


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ledger", help="dock sessions ledger (台账): officer, handovers, health")
    p.add_argument(
        "--since",
        help="sessions docked from this date/time (station-local; default: the last "
        f"{RECENT_DAYS} days)",
    )
    p.add_argument("--all", action="store_true", help="every session ever docked")
    p.add_argument("--officer", help="only sessions of this officer (badge number)")
    p.add_argument("--camera", help="only this camera serial")
    p.add_argument("--faults", action="store_true", help="list the fault register instead")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV for a spreadsheet")
    fmt.add_argument("--json", action="store_true")
    add_bom_option(p)
    p.set_defaults(func=run)


def _faults(args: argparse.Namespace, faults: list[dict[str, Any]]) -> int:
    if args.csv:
        emit_spreadsheet(faults, sessions.FAULT_COLUMNS, args.bom)
    elif args.json:
        emit_json({"faults": [canonical(f, at="recorded_at") for f in faults]})
    else:
        sys.stdout.write(render.fault_register(faults))
    return 0


def run(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    since, first_day = window(args.since, args.all, zone(), wallclock.now())
    with context.reader(cfg) as store:
        sessions.require_schema(store)
        faults = sessions.fault_register(store, since=since, camera=args.camera)
        rows: list[dict[str, Any]] = []
        handed: list[AssignmentRow] = []
        names = {badge: o.name for badge, o in store.officers().items()}
        if not args.faults:
            rows = sessions.sessions(store, since=since, officer=args.officer, camera=args.camera)
            handed = handovers.handovers(store, args.camera)
        audit_trail = audit.audit_trail(store) if args.json else []
    if args.faults:
        code = _faults(args, faults)
        if first_day is not None and not (args.csv or args.json):
            sys.stdout.write(render.recent_window(_("faults recorded"), first_day))
        return code
    if args.csv:
        emit_spreadsheet(rows, sessions.SESSION_COLUMNS, args.bom)
    elif args.json:
        emit_json(
            {
                "sessions": [canonical(r) for r in rows],
                "handovers": [
                    {
                        **canonical(h.as_dict()),
                        "officer_name": names.get(h.officer_id, ""),
                        "previous_officer_name": names.get(h.previous_officer, ""),
                    }
                    for h in handed
                ],
                "faults": [canonical(f, at="recorded_at") for f in faults],
                # The signed records themselves, as signed: their fields keep their names.
                "audit": audit_trail,
            }
        )
    else:
        sys.stdout.write(render.ledger(rows, handed, names))
        if first_day is not None:
            sys.stdout.write(render.recent_window(_("sessions docked"), first_day))
    return 0
