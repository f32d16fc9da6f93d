"""`dockagent rebuild [--force] [--json]`: a new database from the signed sidecars in staging.

For a station that refuses to run because its database is damaged, missing or behind. Takes
the writer lock (stop the service first); the logic is agent.rebuild's, this module only
prints it. Exit 0 only when the rebuilt chain is whole; otherwise each gap or bad record is
printed and the exit code is 5.
"""

from __future__ import annotations

import argparse
import sys

from agent.cli import context
from agent.cli.output import emit_json
from agent.core import durable
from agent.core.errors import EXIT_REBUILD_INCOMPLETE, StationKeyError
from agent.core.wallclock import utc_now
from agent.custody import keys
from agent.rebuild.procedure import rebuild
from agent.runtime.lock import WriterLock


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rebuild",
        help="move a damaged database aside and rebuild it from the signed sidecars (audited)",
    )
    p.add_argument(
        "--force", action="store_true", help="rebuild even when the database looks whole"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Under the station's own configuration only (or root's --foreign-config): the rebuilt
    # rows decide what is purged and wiped next.
    cfg, _station = context.custody_config(args)
    if not cfg.key_path.exists():
        # A new key would verify none of the sidecars; never create one here.
        raise StationKeyError(
            path=str(cfg.key_path),
            problem="is missing; the sidecars can only be checked with the key that signed "
            "them: restore it from its backup first",
        )
    durable.make_dirs(cfg.data_path)  # its name made durable too (fsync(2) NOTES)
    with WriterLock(cfg.data_path):
        key = keys.load_or_create(cfg.key_path)
        report = rebuild(cfg, key, utc_now(), force=args.force)
    if args.json:
        emit_json({**vars(report), "whole": report.whole})
    else:
        out = sys.stdout
        out.write(f"database was: {report.damage}\n")
        if report.moved_aside:
            out.write(f"moved aside (kept): {', '.join(report.moved_aside)}\n")
        out.write(
            f"rebuilt: {report.records} custody records ({report.salvaged} from the damaged "
            f"database), {report.files} files ({report.confirmed} confirmed, {report.purged} of "
            f"them purged; {report.resumable} uploads to resume, {report.reconfirm} to confirm "
            f"again with the sink), {report.sessions} sessions, "
            f"{report.devices} enrolments, {report.assignments} handovers\n"
        )
        if report.set_aside:
            out.write(
                f"{len(report.set_aside)} staged copies that were never sealed set aside in "
                f"{cfg.data_path}/unsealed-*: their camera still holds them; import it again\n"
            )
            if not report.whole:
                out.write(
                    "  (the chain is not whole: a copy whose record is missing may be among "
                    "them, and its camera may no longer hold it)\n"
                )
        for problem in report.problems:
            out.write(f"PROBLEM {problem}\n")
        verdict = "whole" if report.whole else f"NOT whole ({len(report.problems)} problems)"
        out.write(f"chain {verdict}; next: dockagent verify\n")
    return 0 if report.whole else EXIT_REBUILD_INCOMPLETE
