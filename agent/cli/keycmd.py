"""`dockagent key show`: the station's public key, for enrolment at the central server."""

from __future__ import annotations

import argparse
import sys

from agent.cli import context
from agent.cli.output import emit_json
from agent.custody import keys


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("key", help="the station signing key")
    ksub = p.add_subparsers(dest="key_command", required=True)
    show = ksub.add_parser("show", help="print the public key (creates the key on first use)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    key = keys.load_or_create(cfg.key_path)
    pem = keys.public_pem(key.public)
    if args.json:
        emit_json({"key_id": key.key_id, "public_key_pem": pem, "path": str(cfg.key_path)})
    else:
        sys.stdout.write(f"key id: {key.key_id}\n{pem}")
    return 0
