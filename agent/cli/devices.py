"""`dockagent devices`: what is docked now, enrolment (one camera or a roster CSV), and what
was refused.

Reads the same store the daemon writes; enrol/revoke are technician actions, signed into the
chain as audit records (agent.custody.audit); enrolling a camera to another officer is a
handover (agent.reporting.enrolment). Device identities and roster files are hostile input and
are shown escaped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import context, render
from agent.cli.output import canonical, emit_json, table
from agent.cli.words import _, size, value, when
from agent.core import log
from agent.core.errors import AgentError, InputRefused, UnknownDevice, UsageError
from agent.core.model import CUSTODY_STATES, SERIAL_PATTERN, SessionOutcome, display_name
from agent.core.operator import current_operator
from agent.core.wallclock import utc_now
from agent.custody import audit
from agent.reporting import enrolment, history, roster
from agent.store import CopyProgress, SessionRow, Store

_log = log.get(__name__)


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("devices", help="docked cameras, enrolment, refused devices")
    p.add_argument("--json", action="store_true")
    p.add_argument("--refused", action="store_true", help="list refused devices instead")
    p.set_defaults(func=run_list)
    dsub = p.add_subparsers(dest="devices_command")
    e = dsub.add_parser(
        "enroll",
        help="allow a camera serial, or every camera of a roster CSV (audited)",
        description="Enrol one camera (SERIAL), or a roster: --csv FILE with the columns serial, "
        "officer badge number, officer name, unit number, unit name (a first row naming them "
        "is skipped; UTF-8 with or without BOM, or GBK). A roster is enrolled whole or not at "
        "all: exit 65 and one line per bad row when any row is bad. A camera already enrolled "
        "keeps its binding; a camera enrolled to another officer than before is a handover.",
    )
    e.add_argument("serial", nargs="?")
    e.add_argument("--officer", default="", help="officer (badge number) the camera is issued to")
    e.add_argument("--name", default="", help="the officer's name")
    e.add_argument("--unit-id", default="", help="the officer's unit number")
    e.add_argument("--unit-name", default="", help="the officer's unit name")
    e.add_argument("--csv", metavar="FILE", help="enrol every camera of this roster CSV")
    e.set_defaults(func=run_enroll)
    r = dsub.add_parser("revoke", help="stop accepting a camera serial (audited)")
    r.add_argument("serial")
    r.set_defaults(func=run_revoke)
    ls = dsub.add_parser("enrolled", help="list enrolled serials")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_enrolled)
    show = dsub.add_parser(
        "show",
        help="a camera's docks, drift and battery trends, handovers",
        description="A camera's history. Exits 66 (EX_NOINPUT, sysexits(3)) for a serial the "
        "station does not know (never enrolled, never docked): there is no such camera to show, "
        "which is not the same as a known camera with nothing to show yet.",
    )
    show.add_argument("serial")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)


def enroll(
    ctx: context.Context, serial: str, officer: str, holder: enrolment.Holder | None = None
) -> enrolment.Outcome:
    """Enrol one camera anew (its binding forgotten); a handover if its officer changed."""
    holder = holder or enrolment.Holder(serial, officer)
    now = utc_now()
    who = current_operator()
    outcome = enrolment.Outcome()
    with ctx.store.transaction():
        enrolment.enroll(
            ctx.store,
            ctx.key,
            ctx.config.station_id,
            holder,
            now,
            who,
            keep_binding=False,
            outcome=outcome,
        )
    _log.info(
        "device.enrolled",
        device_serial=holder.serial,
        officer_id=holder.officer_id,
        operator=who,
        handovers=outcome.handovers,
    )
    return outcome


def warn_reprogram(outcome: enrolment.Outcome) -> None:
    """Each camera now enrolled to a badge its own device record does not name: it will be
    refused at its next dock until reprogrammed (stderr, and the log)."""
    for warning in outcome.warnings:
        _log.warning(
            "device.reprogram_needed",
            device_serial=warning.serial,
            officer_id=warning.officer_id,
            officer_on_camera=warning.on_camera,
        )
        sys.stderr.write(f"dockagent: warning: {warning.message()}\n")


def record_refusal(ctx: context.Context, source: str, identity: str, exc: AgentError) -> None:
    ctx.store.add_refusal(source, identity, exc.message, utc_now())
    _log.warning("device.refused", source=source, identity=identity, reason=exc.message)


def _check_serial(serial: str) -> None:
    if not SERIAL_PATTERN.fullmatch(serial):
        raise UsageError(
            problem=f"{display_name(serial)!r} is not a camera serial (1-32 of A-Z a-z 0-9 -)"
        )


def _holder(args: argparse.Namespace) -> enrolment.Holder:
    _check_serial(args.serial)
    fields = [args.officer, args.name, args.unit_id, args.unit_name]
    cells = [args.serial, *fields] if args.officer else None
    problems = roster.row_problems(cells) if cells else []
    if not args.officer and any(fields):
        problems = ["--name and --unit-* need --officer"]
    if problems:
        raise UsageError(problem="; ".join(problems))
    return enrolment.Holder(args.serial, *fields)


def run_enroll(args: argparse.Namespace) -> int:
    if args.csv is not None:
        if args.serial is not None or args.officer or args.name or args.unit_id or args.unit_name:
            raise UsageError(problem="give either --csv FILE or a SERIAL and its officer")
        return _enroll_roster(args)
    if args.serial is None:
        raise UsageError(problem="give a camera SERIAL, or --csv FILE for a roster")
    holder = _holder(args)
    cfg = context.load_config(args.config, args.log_level)
    with context.technician(cfg) as ctx:
        outcome = enroll(ctx, holder.serial, holder.officer_id, holder)
    warn_reprogram(outcome)
    sys.stdout.write(
        f"enrolled {args.serial}"
        + (f" (officer {args.officer})" if args.officer else "")
        + ("; a handover from the officer before" if outcome.handovers else "")
        + "\n"
    )
    return 0


def _read_roster(path: str) -> roster.Roster:
    try:
        with open(path, "rb") as f:
            data = f.read(roster.MAX_BYTES + 1)  # bounded: never the whole of a huge file
    except OSError as exc:
        raise UsageError(problem=f"cannot read {display_name(path)!r}: {exc.strerror}") from exc
    try:
        parsed = roster.parse(data)
    except roster.RosterUnreadable as exc:
        raise InputRefused(problem=f"{display_name(path)}: {exc}; nothing enrolled") from exc
    if parsed.problems:
        raise InputRefused(
            problem=f"{display_name(path)} (read as {parsed.encoding}): "
            f"{len(parsed.problems)} bad rows; nothing enrolled\n  " + "\n  ".join(parsed.problems)
        )
    return parsed


def _enroll_roster(args: argparse.Namespace) -> int:
    parsed = _read_roster(args.csv)
    cfg = context.load_config(args.config, args.log_level)
    who = current_operator()
    with context.technician(cfg) as ctx:
        try:
            outcome = enrolment.enroll_roster(
                ctx.store, ctx.key, cfg.station_id, parsed.rows, utc_now(), who
            )
        except InputRefused as exc:
            raise InputRefused(problem=f"{display_name(args.csv)}: {exc.message}") from exc
    warn_reprogram(outcome)
    _log.info(
        "devices.roster_enrolled",
        cameras=len(parsed.rows),
        enrolled=outcome.enrolled,
        updated=outcome.updated,
        handovers=outcome.handovers,
        operator=who,
    )
    sys.stdout.write(
        f"{len(parsed.rows)} cameras in {display_name(args.csv)} (read as {parsed.encoding}): "
        f"{outcome.enrolled} enrolled, {outcome.updated} updated, {outcome.unchanged} unchanged, "
        f"{outcome.handovers} handovers\n"
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
    officers = store.officers()
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
                "officer_name": officers[s.officer_id].name if s.officer_id in officers else "",
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
    return _("{percent} of {total}").format(percent=f"{done * 100 // total} %", total=size(total))


def _verdict(session: SessionRow) -> str:
    """The session's verdict as JSON says it (English: a machine's reader may match it)."""
    if session.outcome == SessionOutcome.RUNNING:
        return "taking in"
    if session.outcome == SessionOutcome.COMPLETE:
        return f"complete; wipe: {session.wipe_state or '-'}" + (
            f" ({session.wipe_detail})" if session.wipe_detail else ""
        )
    return f"{session.outcome}: {session.problems} problems; see dockagent queue"


def _verdict_text(session: SessionRow | None) -> str:
    """The verdict in the station's language, for the table."""
    if session is None:
        return "-"
    if session.outcome == SessionOutcome.RUNNING:
        return _("taking in")
    if session.outcome == SessionOutcome.COMPLETE:
        wipe, detail = session.wipe_state or "-", session.wipe_detail
        shown = _("complete; wipe: {wipe}").format(wipe=value(wipe))
        return shown + (f" ({detail})" if detail else "")
    return _("{outcome}: {problems} problems; see dockagent queue").format(
        outcome=value(session.outcome), problems=session.problems
    )


def run_list(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    with context.reader(cfg) as store:
        if args.refused:
            refused = store.refusals()
            if args.json:
                emit_json({"refused": [canonical(r.as_dict(), at="refused_at") for r in refused]})
            else:
                sys.stdout.write(
                    table(
                        [(when(r.at), r.source, r.identity, r.reason) for r in refused],
                        [_("when"), _("source"), _("device"), _("reason")],
                    )
                    + "\n"
                )
            return 0
        docked = docked_now(store)
        verdicts = {s.id: s for s in store.docked_sessions()} if not args.json else {}
    if args.json:
        emit_json({"docked": [canonical(d) for d in docked]})
        return 0
    if not docked:
        sys.stdout.write(_("no camera docked") + "\n")
        return 0
    sys.stdout.write(
        table(
            [
                (
                    d["device_serial"],
                    d["profile"],
                    " ".join(x for x in (d["officer_id"], display_name(d["officer_name"])) if x)
                    or "-",
                    d["session_id"],
                    f"{d['files_sealed']}/{d['files_found']}",
                    _bytes(d["copy"]["bytes_done"], d["copy"]["bytes_total"]),
                    _bytes(d["upload"]["bytes_done"], d["upload"]["bytes_total"]),
                    f"{value(d['readiness']['verdict'])} ({when(d['readiness']['judged_at'])})",
                    _verdict_text(verdicts.get(d["session_id"])),
                )
                for d in docked
            ],
            [
                _("camera"),
                _("profile"),
                _("officer"),
                _("session"),
                _("sealed"),
                _("copied"),
                _("uploaded"),
                _("readiness (judged)"),
                _("verdict"),
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
        emit_json({"enrolled": [canonical(r.as_dict()) for r in rows]})
    else:
        sys.stdout.write(
            table(
                [
                    (
                        r.serial,
                        r.officer_id or "-",
                        display_name(r.officer_name) or "-",
                        display_name(r.unit_name or r.unit_id) or "-",
                        when(r.enrolled_at),
                        r.enrolled_by,
                        when(r.revoked_at, empty=""),
                        when(r.bound_at, empty=""),
                    )
                    for r in rows
                ],
                [
                    _("serial"),
                    _("officer"),
                    _("name"),
                    _("unit"),
                    _("enrolled"),
                    _("by"),
                    _("revoked"),
                    _("bound"),
                ],
            )
            + "\n"
        )
    return 0


def _history_document(data: dict[str, Any]) -> dict[str, Any]:
    """devices show --json: the camera's rows under README "JSON output" names."""
    doc = canonical(data)
    for key in ("docks", "assignments"):
        doc[key] = [canonical(row) for row in data.get(key, [])]
    doc["faults"] = [canonical(row, at="recorded_at") for row in data.get("faults", [])]
    return doc


def run_show(args: argparse.Namespace) -> int:
    _check_serial(args.serial)
    cfg = context.load_config(args.config, args.log_level)
    with context.reader(cfg) as store:
        if not store.device_known(args.serial):
            raise UnknownDevice(serial=args.serial)
        data = history.device_history(store, args.serial, cfg)
    if args.json:
        emit_json(_history_document(data))
    else:
        sys.stdout.write(render.device_history(data))
    return 0
