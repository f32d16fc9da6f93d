"""`dockagent run`: start the daemon (systemd runs this)."""

from __future__ import annotations

import argparse

from agent.cli import context
from agent.runtime import daemon


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the daemon: take docked cameras in as they arrive")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg, station = context.custody_config(args)
    if station is not None:
        with context.writer(cfg) as ctx:
            context.note_foreign(ctx, station, "run")
    return daemon.run(cfg)
