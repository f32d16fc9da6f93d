"""`dockagent profile check FILE` and `dockagent profile try PROFILE PATH`: a camera profile
checked, and what it makes of a camera or a directory, before a station relies on it.

`check` loads profile files and prints a one-line summary of each (exit 0), or one line per
mistake `FILE:LINE: key: problem` (exit 78, as the daemon refuses to start on it). `try`
walks PATH with the scan every dock uses (agent.camera.scan: O_NOFOLLOW, nothing followed,
nothing opened but directories and the identity file) and prints each file's
classification, the entries not taken and the files ignored, with the identity the profile
reads and its clock and battery methods. It copies, writes and records nothing: no
database, no staging, no key.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from agent.camera import identity, profile, scan
from agent.camera.profile import Profile
from agent.camera.volume import open_root
from agent.cli import context
from agent.cli.output import canonical, emit_json, table
from agent.core.errors import EX_CONFIG, AgentError, ConfigError
from agent.core.model import Candidate, ScanResult, display_name


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("profile", help="check a camera profile, or try one on a camera")
    verbs = p.add_subparsers(dest="verb", required=True)
    check = verbs.add_parser("check", help="check camera profile files")
    check.add_argument("files", nargs="+", metavar="FILE", help="a profile's TOML file")
    check.set_defaults(func=run_check)
    try_ = verbs.add_parser(
        "try", help="show how a profile classifies a camera's files (copies nothing)"
    )
    try_.add_argument("profile", help="a profile name, or a profile file (path or *.toml)")
    try_.add_argument("path", help="a mounted camera, or a directory laid out like one")
    try_.add_argument("--json", action="store_true", help="print a machine-readable report")
    try_.set_defaults(func=run_try)


def run_check(args: argparse.Namespace) -> int:
    """Each file: its summary line, or one line per mistake; 78 when any file has one."""
    status = 0
    for file in args.files:
        try:
            prof = profile.load_file(Path(file))
        except ConfigError as exc:
            mistakes = exc.fields.get("mistakes") or (exc.message,)
            for line in mistakes:
                sys.stdout.write(f"{display_name(str(line))}\n")
            status = EX_CONFIG
            continue
        sys.stdout.write(f"{display_name(file)}: {summary(prof)}\n")
    return status


def summary(prof: Profile) -> str:
    """A profile in one line: what it is, how the camera is reached and named."""
    layout = prof.layout
    return (
        f"camera profile {prof.name} (format {prof.format}) is valid: transport "
        f"{prof.transport}, identity from {', '.join(prof.identity)}, clock {prof.clock.method}, "
        f"battery {prof.battery.source}, {len(layout.roots)} roots, "
        f"{len(layout.names)} name patterns"
    )


def _load(args: argparse.Namespace) -> Profile:
    name: str = args.profile
    if "/" in name or name.endswith(".toml"):
        return profile.load_file(Path(name))
    try:
        profile_dir = context.load_config(args.config, args.log_level).devices.profile_dir
    except ConfigError:
        if args.config or os.environ.get("DOCKAGENT_CONFIG"):
            raise
        # Off a station (no configuration at all): the shipped profiles are the ones there are.
        profile_dir = ""
    return profile.load(name, profile_dir)


def run_try(args: argparse.Namespace) -> int:
    prof = _load(args)
    with open_root(args.path) as root_fd:
        vfs = os.fstatvfs(root_fd)
        result = scan.scan_volume(root_fd, prof, vfs.f_blocks * vfs.f_frsize)
        try:
            who = identity.read_identity(root_fd, prof, args.path)
            named = {"serial": who.serial, "officer": who.officer_id, "problem": ""}
        except AgentError as exc:
            named = {"serial": "", "officer": "", "problem": exc.message}
    report = _report(prof, result, named)
    if args.json:
        emit_json({**report, "identity": canonical(report["identity"])})
    else:
        _print(report)
    return 0


def _file(c: Candidate) -> dict[str, Any]:
    return {
        "file": display_name(c.rel_path),
        "size": c.size,
        "kind": c.kind.value,
        "recorded_start": c.recorded_start,
        "segment": c.segment,
        "channel": c.channel,
        "important": c.important,
        "marked_by": c.marked_by,
        "partner_of": display_name(c.partner_of) if c.partner_of else "",
        "recording": c.wipeable,
        "note": c.note,
    }


def _report(prof: Profile, result: ScanResult, named: dict[str, str]) -> dict[str, Any]:
    return {
        "profile": prof.name,
        "format": prof.format,
        "transport": prof.transport,
        "identity": {"sources": list(prof.identity), "file": prof.identity_file, **named},
        "clock": {"method": prof.clock.method, "path": prof.clock.path},
        "battery": {"source": prof.battery.source, "path": prof.battery.path},
        "files": [_file(c) for c in result.candidates],
        "ignored": [{"file": display_name(p.rel_path), "reason": p.reason} for p in result.ignored],
        "not_taken": [
            {"file": display_name(p.rel_path), "reason": p.reason} for p in result.problems
        ],
    }


def _print(report: dict[str, Any]) -> None:
    out = sys.stdout
    ident = report["identity"]
    who = (
        f"serial {ident['serial']} officer {ident['officer'] or '-'}"
        if ident["serial"]
        else f"none: {ident['problem']}"
    )
    out.write(
        f"profile {report['profile']} (format {report['format']}), transport "
        f"{report['transport']}\nidentity from {', '.join(ident['sources'])}: {who}\n"
        f"clock {report['clock']['method']}, battery {report['battery']['source']}\n"
    )
    rows = [
        [
            f["file"],
            f["kind"] if f["recording"] else f"{f['kind']} (not a recording)",
            f["recorded_start"] or "-",
            "-" if f["segment"] is None else f["segment"],
            f["channel"] or "-",
            f["marked_by"] or "-",
            f"partner of {f['partner_of']}" if f["partner_of"] else f["note"],
        ]
        for f in report["files"]
    ]
    headers = ["FILE", "KIND", "START", "SEGMENT", "CHANNEL", "IMPORTANT BY", "NOTE"]
    out.write(table(rows, headers) + "\n")
    for entry in report["ignored"]:
        out.write(f"IGNORED    {entry['file']}: {entry['reason']}\n")
    for entry in report["not_taken"]:
        out.write(f"NOT TAKEN  {entry['file']}: {entry['reason']}\n")
