"""`dockagent report compliance`: late files, interruptions and segment gaps, per officer.

A query over the store. "Late" is measured from the drift-corrected recording end to the time
the station held the copy; every time printed says how it was corrected. Shows no content.
"""

from __future__ import annotations

import argparse
import sys

from agent.cli import context
from agent.cli.output import emit_json, table
from agent.reporting import ledger


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


_FILE_COLUMNS = (
    "officer",
    "camera",
    "session_id",
    "file_id",
    "file",
    "kind",
    "important",
    "camera_time",
    "corrected_time",
    "clock_drift_s",
    "time_basis",
    "ingested_at_utc",
    "hours_to_ingest",
    "late",
    "retention_class",
    "state",
)


def run_compliance(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    since = ledger.parse_since(args.since) if args.since else None
    with context.reader(cfg) as store:
        ledger.require_schema(store)
        report = ledger.compliance(store, cfg, since=since)
    out = sys.stdout
    if args.json:
        emit_json(report)
        return 0
    if args.csv:
        if args.files:
            out.write(ledger.to_csv(report["files"], _FILE_COLUMNS))
        else:
            out.write(ledger.to_csv(ledger.findings(report), ledger.FINDING_COLUMNS))
        return 0
    out.write(
        f"compliance report at {report['generated_at_utc']} (UTC)"
        + (f", files ingested since {since}" if since else "")
        + f"; late: ingested more than {report['late_after_h']} h after the recording ended "
        "(camera clock corrected by the measured drift)\n\n"
    )
    out.write(
        table(
            [
                (
                    officer,
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
        + "\n\n"
    )
    rows = [
        (
            f["finding"],
            f["officer"] or "-",
            f["camera"],
            f["file"],
            f["corrected_time"] or f"{f['camera_time']} (uncorrected)",
            f["detail"],
        )
        for f in ledger.findings(report)
    ]
    if rows:
        out.write("to be explained (times: camera clock minus measured drift):\n")
        out.write(table(rows, ["finding", "officer", "camera", "file", "time", "detail"]) + "\n")
    else:
        out.write("nothing to explain\n")
    if args.files:
        out.write("\n")
        out.write(
            table(
                [
                    (
                        f["file_id"],
                        f["camera"],
                        f["officer"] or "-",
                        f["file"],
                        f["hours_to_ingest"],
                        "LATE" if f["late"] else "",
                        f["retention_class"],
                    )
                    for f in report["files"]
                ],
                ["id", "camera", "officer", "file", "hours", "late", "retention"],
            )
            + "\n"
        )
    return 0
