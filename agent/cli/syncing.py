"""`dockagent sync --once` and `dockagent retry FILE_ID|--held`: the upload queue by hand.

Both take the writer lock (recovery runs first) and use the same workers as the daemon. Per-file
outcomes are printed and kept on the rows; the exit code says whether anything is left to do.
A retry is a technician's override of a hold: it is signed into the chain as an audit record
(agent.custody.audit) naming the operator and the files, in the transaction that releases them;
a sync that changed files is signed too (`sync.ran`). Both run only under the station's own
configuration, or root's explicit --foreign-config (agent.cli.context.custody_config).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import context
from agent.cli.output import emit_json
from agent.core.config import Config
from agent.core.config import station as station_config
from agent.core.errors import EX_TEMPFAIL, EXIT_INCOMPLETE, UsageError
from agent.core.model import FileState
from agent.core.operator import current_operator
from agent.core.wallclock import utc_now
from agent.custody import audit
from agent.sync.pool import SyncReport, Uploader


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sync", help="upload sealed files to the configured sink and confirm them")
    p.add_argument(
        "--once",
        action="store_true",
        required=True,
        help="drain the queue once (every waiting file is tried now) and exit",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_sync)
    r = sub.add_parser("retry", help="send held files (or one file) again at the next sync")
    r.add_argument("file_id", nargs="?", type=int, help="the file's id (see dockagent queue)")
    r.add_argument("--held", action="store_true", help="every held file")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run_retry)


def run_sync(args: argparse.Namespace) -> int:
    cfg, station = context.custody_config(args)
    with context.writer(cfg) as ctx:
        context.note_foreign(ctx, station, "sync")
        report = Uploader(cfg, key=ctx.key).run_once(ctx.store)
        _audit_sync(ctx, report)
        backlog = ctx.store.upload_backlog()
        pending = ctx.store.sinks_pending() if cfg.sync.sinks else {}
        tokens = ctx.store.token_deliveries()
    data = report.as_dict()
    # Time-stamp tokens per sink: waiting, delivered, held (agent.sync.token_delivery).
    data["tokens"] = tokens
    data["left"] = backlog
    if cfg.sync.sinks:
        data["sinks"] = _per_sink(cfg, pending)
    if args.json:
        emit_json(data)
    else:
        out = sys.stdout
        sink = cfg.sync.endpoint if cfg.sync.kind == "tus" else str(cfg.archive_path)
        if cfg.sync.sinks:
            sink = ", ".join(f"{d.name} ({d.identity.endpoint})" for d in _dests(cfg))
        out.write(
            f"sync to {sink}: {len(report.confirmed)} confirmed, {len(report.deferred)} to retry, "
            f"{len(report.held)} held; {report.purged} staged copies purged "
            f"({report.purged_bytes} bytes)\n"
        )
        if report.outside_window:
            out.write(f"outside the upload windows ({', '.join(cfg.sync.windows)}): nothing sent\n")
        for item in report.deferred:
            out.write(f"RETRY  {item['file_id']} {item['name']}: {item['reason']}\n")
        for item in report.held:
            out.write(f"HELD   {item['file_id']} {item['name']}: {item['reason']}\n")
        for problem in report.crashed:
            out.write(f"WORKER FAILED: {problem}\n")
        for name, counts in data.get("sinks", {}).items():
            waits = " ".join(f"{k}={v}" for k, v in sorted(counts.items()) if k != "endpoint")
            out.write(f"SINK   {name}: {waits or 'nothing pending'}\n")
        for name, counts in tokens.items():
            held = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
            why = report.tokens_failed.get(name)
            out.write(f"TOKENS {name}: {held}" + (f" ({why})" if why else "") + "\n")
        left = " ".join(f"{k}={v}" for k, v in sorted(backlog.items()))
        out.write(f"left: {left or 'nothing'}\n")
    return _exit_code(report, backlog, pending, tokens)


def _exit_code(
    report: SyncReport,
    backlog: dict[str, int],
    pending: dict[str, dict[str, int]],
    tokens: dict[str, dict[str, int]],
) -> int:
    waiting = any(counts.get("waiting") for counts in pending.values())
    if report.deferred or report.crashed or report.outside_window or backlog.get(FileState.SEALED):
        return EX_TEMPFAIL
    if waiting:  # a sink outside held_when has not got every file yet
        return EX_TEMPFAIL
    if any(counts.get("waiting") for counts in tokens.values()):  # a token not yet delivered
        return EX_TEMPFAIL
    if backlog.get(FileState.HELD):
        return EXIT_INCOMPLETE
    return 0


def _dests(cfg: Config) -> tuple[station_config.Destination, ...]:
    return station_config.destinations(cfg)


def _per_sink(cfg: Config, pending: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    """Per configured sink: where it is and how many files wait for it or it holds."""
    return {
        d.name: {"endpoint": d.identity.endpoint, **pending.get(d.name, {})} for d in _dests(cfg)
    }


def _audit_sync(ctx: context.Context, report: SyncReport) -> None:
    """A sync by hand that changed files (confirmed, held or purged them) is a technician
    action: signed, naming the operator, the configuration and the sink."""
    if not (report.confirmed or report.held or report.purged):
        return
    context.sign_custody_action(
        ctx,
        "sync.ran",
        {
            "sink": station_config.described(ctx.config),
            "confirmed": audit.file_ids(int(item["file_id"]) for item in report.confirmed),
            "held": audit.file_ids(int(item["file_id"]) for item in report.held),
            "purged": report.purged,
        },
    )


def run_retry(args: argparse.Namespace) -> int:
    if (args.file_id is None) == (not args.held):
        raise UsageError(problem="give either a FILE_ID or --held")
    cfg, station = context.custody_config(args)
    now, who = utc_now(), current_operator()
    with context.writer(cfg) as ctx, ctx.store.transaction():
        context.note_foreign(ctx, station, "retry")
        ids = None if args.held else [args.file_id]
        released = ctx.store.release_for_retry(ids, now)
        if released:
            audit.record_action(
                ctx.store,
                ctx.key,
                cfg.station_id,
                "file.retried",
                {"scope": "held" if args.held else "file", "file_ids": audit.file_ids(released)},
                now,
                operator=who,
            )
    if args.file_id is not None and not released:
        raise UsageError(problem=f"file {args.file_id} is not held or waiting for an upload")
    if args.json:
        emit_json({"released": released})
    else:
        sys.stdout.write(f"{len(released)} files will be sent at the next sync\n")
    return 0
