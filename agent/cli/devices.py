"""`dockagent devices`: what is docked now, enrolment, and what was refused.

Reads the same store the daemon writes; enrol/revoke are technician actions, signed into the
chain as audit records (agent.custody.audit). Device identities are hostile input and are shown
escaped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import context, render
from agent.cli.output import emit_json, table
from agent.core import log
from agent.core.errors import AgentError, UsageError
from agent.core.model import CUSTODY_STATES, SERIAL_PATTERN, SessionOutcome, display_name
from agent.core.operator import current_operator
from agent.core.wallclock import utc_now
from agent.custody import audit
from agent.reporting import history
from agent.store import CopyProgress, SessionRow, Store

_log = log.get(__name__)


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("devices", help="docked cameras, enrolment, refused devices")
    p.add_argument("--json", action="store_true")
    p.add_argument("--refused", action="store_true", help="list refused devices instead")
    p.set_defaults(func=run_list)
    dsub = p.add_subparsers(dest="devices_command")
    e = dsub.add_parser("enroll", help="allow a camera serial (audited)")
    e.add_argument("serial")
    e.add_argument("--officer", default="", help="officer (badge number) the camera is issued to")
    e.set_defaults(func=run_enroll)
    r = dsub.add_parser("revoke", help="stop accepting a camera serial (audited)")
    r.add_argument("serial")
    r.set_defaults(func=run_revoke)
    ls = dsub.add_parser("enrolled", help="list enrolled serials")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_enrolled)
    show = dsub.add_parser("show", help="a camera's docks, drift and battery trends, handovers")
    show.add_argument("serial")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)


def enroll(ctx: context.Context, serial: str, officer: str) -> None:
    now = utc_now()
    who = current_operator()
    with ctx.store.transaction():
        ctx.store.enroll(serial, officer, who, now)
        audit.record_action(
            ctx.store,
            ctx.key,
            ctx.config.station_id,
            "device.enrolled",
            {"serial": serial, "officer_id": officer},
            now,
            operator=who,
        )
    _log.info("device.enrolled", device_serial=serial, officer_id=officer, operator=who)


def record_refusal(ctx: context.Context, source: str, identity: str, exc: AgentError) -> None:
    ctx.store.add_refusal(source, identity, exc.message, utc_now())
    _log.warning("device.refused", source=source, identity=identity, reason=exc.message)


def _check_serial(serial: str) -> None:
    if not SERIAL_PATTERN.fullmatch(serial):
        raise UsageError(
            problem=f"{display_name(serial)!r} is not a camera serial (1-32 of A-Z a-z 0-9 -)"
        )


def run_enroll(args: argparse.Namespace) -> int:
    _check_serial(args.serial)
    cfg = context.load_config(args.config, args.log_level)
    with context.technician(cfg) as ctx:
        enroll(ctx, args.serial, args.officer)
    sys.stdout.write(
        f"enrolled {args.serial}" + (f" (officer {args.officer})" if args.officer else "") + "\n"
    )
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    _check_serial(args.serial)
    cfg = context.load_config(args.config, args.log_level)
    now, who = utc_now(), current_operator()
    with context.technician(cfg) as ctx, ctx.store.transaction():
        revoked = ctx.store.revoke(args.serial, who, now)
        if revoked:
            audit.record_action(
                ctx.store,
                ctx.key,
                ctx.config.station_id,
                "device.revoked",
                {"serial": args.serial},
                now,
                operator=who,
            )
    if not revoked:
        raise UsageError(problem=f"{args.serial} is not enrolled")
    _log.info("device.revoked", device_serial=args.serial, operator=who)
    sys.stdout.write(f"revoked {args.serial}\n")
    return 0


def docked_now(store: Store) -> list[dict[str, Any]]:
    out = []
    sessions = store.docked_sessions()
    ids = [s.id for s in sessions]
    copies, uploads = store.copy_progress(ids), store.upload_progress(ids)
    for s in sessions:
        states = store.session_state_counts(s.id)
        out.append(
            {
                "device_serial": s.device_serial,
                "profile": s.profile,
                "officer_id": s.officer_id,
                "session_id": s.id,
                "docked_at": s.docked_at,
                "outcome": s.outcome,
                "files_found": s.files_found,
                # Every file the station holds sealed, held uploads too: a held upload is
                # evidence in custody that only the sink refused (model.CUSTODY_STATES).
                "files_sealed": sum(v for k, v in states.items() if k in CUSTODY_STATES),
                "states": states,
                "verdict": _verdict(s),
                # How far its copy and its uploads are, and its readiness as last judged.
                "copy": _copy(copies.get(s.id)),
                "upload": uploads[s.id].as_dict() if s.id in uploads else _NO_UPLOAD,
                "readiness": _readiness(store, s.id),
            }
        )
    return out


_NO_UPLOAD = {"bytes_done": 0, "bytes_total": 0}


def _copy(progress: CopyProgress | None) -> dict[str, Any]:
    if progress is None:
        return {"bytes_done": 0, "bytes_total": 0, "file_id": None, "file_done": 0}
    return progress.as_dict()


def _readiness(store: Store, session_id: int) -> dict[str, Any]:
    """The verdict as last judged (while docked it is judged again: agent.health.readiness_watch)
    and when; `final` once the camera was undocked."""
    health = store.health(session_id)
    if health is None or not health.readiness:
        return {"verdict": "not assessed", "reasons": [], "judged_at": None, "final": False}
    return {
        "verdict": health.readiness,
        "reasons": health.reasons(),
        "judged_at": health.readiness_at or health.updated_at,
        "final": bool(health.readiness_final),
    }


def _bytes(done: int, total: int) -> str:
    if not total:
        return "-"
    return (
        f"{done * 100 // total} % of {total >> 20} MiB" if total >= 1 << 20 else f"{done}/{total} B"
    )


def _verdict(session: SessionRow) -> str:
    if session.outcome == SessionOutcome.RUNNING:
        return "taking in"
    if session.outcome == SessionOutcome.COMPLETE:
        return f"complete; wipe: {session.wipe_state or '-'}" + (
            f" ({session.wipe_detail})" if session.wipe_detail else ""
        )
    return f"{session.outcome}: {session.problems} problems; see dockagent queue"


def run_list(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    with context.reader(cfg) as store:
        if args.refused:
            refused = store.refusals()
            if args.json:
                emit_json([r.as_dict() for r in refused])
            else:
                sys.stdout.write(
                    table(
                        [(r.at, r.source, r.identity, r.reason) for r in refused],
                        ["when", "source", "device", "reason"],
                    )
                    + "\n"
                )
            return 0
        docked = docked_now(store)
    if args.json:
        emit_json(docked)
        return 0
    if not docked:
        sys.stdout.write("no camera docked\n")
        return 0
    sys.stdout.write(
        table(
            [
                (
                    d["device_serial"],
                    d["profile"],
                    d["officer_id"] or "-",
                    d["session_id"],
                    f"{d['files_sealed']}/{d['files_found']}",
                    _bytes(d["copy"]["bytes_done"], d["copy"]["bytes_total"]),
                    _bytes(d["upload"]["bytes_done"], d["upload"]["bytes_total"]),
                    f"{d['readiness']['verdict']} ({d['readiness']['judged_at'] or '-'})",
                    d["verdict"],
                )
                for d in docked
            ],
            [
                "camera",
                "profile",
                "officer",
                "session",
                "sealed",
                "copied",
                "uploaded",
                "readiness (judged)",
                "verdict",
            ],
        )
        + "\n"
    )
    return 0


def run_enrolled(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    with context.reader(cfg) as store:
        rows = store.device_rows()
    if args.json:
        emit_json([r.as_dict() for r in rows])
    else:
        sys.stdout.write(
            table(
                [
                    (
                        r.serial,
                        r.officer_id or "-",
                        r.enrolled_at,
                        r.enrolled_by,
                        r.revoked_at or "",
                        r.bound_at or "",
                    )
                    for r in rows
                ],
                ["serial", "officer", "enrolled", "by", "revoked", "bound"],
            )
            + "\n"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    _check_serial(args.serial)
    cfg = context.load_config(args.config, args.log_level)
    with context.reader(cfg) as store:
        data = history.device_history(store, args.serial, cfg)
    if args.json:
        emit_json(data)
    else:
        sys.stdout.write(render.device_history(data))
    return 0
