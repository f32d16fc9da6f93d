"""`dockagent report compliance`: late files, interruptions and segment gaps, per officer.

A query over the store. "Late" is measured from the drift-corrected recording end to the time
the station held the copy; every time printed says how it was corrected. Shows no content.
"""

from __future__ import annotations

import argparse
import sys

from agent.cli import context, render
from agent.cli.output import emit_json
from agent.reporting import compliance, exports
from agent.reporting.sessions import require_schema
from agent.reporting.times import parse_since


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="reports for supervisors")
    rsub = p.add_subparsers(dest="report_command", required=True)
    c = rsub.add_parser("compliance", help="late ingests (>24 h), interruptions, segment gaps")
    c.add_argument("--since", help="files ingested from this date/time (station-local)")
    c.add_argument("--files", action="store_true", help="list every file (with retention class)")
    fmt = c.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV for a spreadsheet: one finding a row")
    fmt.add_argument("--json", action="store_true")
    c.set_defaults(func=run_compliance)


def run_compliance(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    since = parse_since(args.since) if args.since else None
    with context.reader(cfg) as store:
        require_schema(store)
        report = compliance.compliance(store, cfg, since=since)
    if args.json:
        emit_json(report)
    elif args.csv and args.files:
        sys.stdout.write(exports.to_csv(report["files"], compliance.FILE_COLUMNS))
    elif args.csv:
        findings = compliance.findings(report)
        sys.stdout.write(exports.to_csv(findings, compliance.FINDING_COLUMNS))
    else:
        text = render.compliance(report, compliance.findings(report), with_files=args.files)
        sys.stdout.write(text)
    return 0
