"""`dockagent report compliance`: late files, interruptions and segment gaps, per officer;
`dockagent report explain`: a supervisor's written explanation of one (audited).

A query over the store. "Late" is measured from the drift-corrected recording end to the time
the station held the copy; every time printed says how it was corrected. Shows no content.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import context, render
from agent.cli.output import add_bom_option, canonical, emit_json
from agent.cli.words import _, emit_spreadsheet, zone
from agent.core import log, wallclock
from agent.core.operator import current_operator
from agent.core.wallclock import utc_now
from agent.reporting import compliance, explanations
from agent.reporting.sessions import require_schema
from agent.reporting.times import RECENT_DAYS, window


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="reports for supervisors")
    rsub = p.add_subparsers(dest="report_command", required=True)
    c = rsub.add_parser("compliance", help="late ingests (>24 h), interruptions, segment gaps")
    c.add_argument(
        "--since",
        help="files ingested from this date/time (station-local; default: the last "
        f"{RECENT_DAYS} days)",
    )
    c.add_argument("--all", action="store_true", help="every file ever ingested")
    c.add_argument("--files", action="store_true", help="list every file (with retention class)")
    fmt = c.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV for a spreadsheet: one finding a row")
    fmt.add_argument("--json", action="store_true")
    add_bom_option(c)
    c.set_defaults(func=run_compliance)
    x = rsub.add_parser(
        "explain",
        help="a written explanation of a late or interrupted recording (audited)",
        description="Fill the compliance report's explanation of a file's finding (the file id "
        "is in report compliance). Signed into the chain as file.explained; the latest one is "
        f"shown. At most {explanations.MAX_TEXT} characters.",
    )
    x.add_argument("file_id", type=int, help="the file's id (report compliance)")
    x.add_argument("text", help="the explanation")
    x.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    text = explanations.check_text(args.text)
    cfg = context.load_config(args.config, args.log_level)
    who = current_operator()
    with context.technician(cfg) as ctx:
        seq = explanations.explain(
            ctx.store, ctx.key, cfg.station_id, args.file_id, text, utc_now(), who
        )
    log.get(__name__).info("file.explained", file_id=args.file_id, operator=who, seq=seq)
    sys.stdout.write(f"file {args.file_id} explained (record {seq})\n")
    return 0


def _document(report: dict[str, Any]) -> dict[str, Any]:
    """report compliance --json: its rows under README "JSON output" names."""
    doc = canonical(report)
    for key in ("files", "late", "interruptions", "gaps"):
        doc[key] = [canonical(row) for row in report.get(key, [])]
    return doc


def run_compliance(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    since, first_day = window(args.since, args.all, zone(), wallclock.now())
    with context.reader(cfg) as store:
        require_schema(store)
        report = compliance.compliance(store, cfg, since=since)
    if args.json:
        emit_json(_document(report))
    elif args.csv and args.files:
        emit_spreadsheet(report["files"], compliance.FILE_COLUMNS, args.bom)
    elif args.csv:
        emit_spreadsheet(compliance.findings(report), compliance.FINDING_COLUMNS, args.bom)
    else:
        text = render.compliance(report, compliance.findings(report), with_files=args.files)
        sys.stdout.write(text)
        if first_day is not None:
            sys.stdout.write(render.recent_window(_("files ingested"), first_day))
    return 0
