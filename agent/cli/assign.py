"""`dockagent assign SERIAL OFFICER`: hand a camera over to an officer, from now on.

The handover time and the operating-system user are recorded, and the action is signed into
the custody chain as an audit record (agent.custody.audit). Takes the writer lock like every write.
"""

from __future__ import annotations

import argparse
import re
import sys

from agent.cli import context
from agent.cli.output import canonical, emit_json
from agent.core import log
from agent.core.errors import UsageError
from agent.core.model import SERIAL_PATTERN, display_name
from agent.core.wallclock import utc_now
from agent.reporting import handovers

_OFFICER = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_log = log.get(__name__)


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("assign", help="assign a camera to an officer (handover; audited)")
    p.add_argument("serial", help="camera serial")
    p.add_argument("officer", help="officer id (badge number)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not SERIAL_PATTERN.match(args.serial):
        raise UsageError(
            problem=f"{display_name(args.serial)!r} is not a camera serial (1-32 of A-Z a-z 0-9 -)"
        )
    if not _OFFICER.match(args.officer):
        raise UsageError(
            problem=f"{display_name(args.officer)!r} is not an officer id (1-32 of A-Z a-z 0-9 -)"
        )
    cfg = context.load_config(args.config, args.log_level)
    with context.writer(cfg) as ctx:
        result = handovers.assign(
            ctx.store, ctx.key, cfg.station_id, args.serial, args.officer, utc_now()
        )
    if result["changed"]:
        _log.info(
            "device.assigned",
            device_serial=args.serial,
            officer_id=args.officer,
            previous_officer=result["previous_officer"],
        )
    for warning in result["warnings"]:
        _log.warning(
            "device.reprogram_needed",
            device_serial=args.serial,
            officer_id=args.officer,
            officer_on_camera=warning["officer_on_camera"],
        )
        sys.stderr.write(f"dockagent: warning: {warning['message']}\n")
    if args.json:
        emit_json(canonical(result))
    elif result["changed"]:
        sys.stdout.write(
            f"{args.serial} assigned to {args.officer} at {result['assigned_at']} (UTC)"
            f" by {result['assigned_by']}; before: {result['previous_officer'] or '-'}\n"
        )
    else:
        sys.stdout.write(f"{args.serial} is already assigned to {args.officer}; nothing changed\n")
    return 0
