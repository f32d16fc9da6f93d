"""`dockagent metrics [--output FILE]`: the Prometheus metrics the daemon writes, on demand.

The same snapshot (agent.reporting.metrics) as the daemon's periodic file: printed, or written
whole to FILE for node_exporter's textfile collector. Read-only on the store; needs no daemon.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli import context
from agent.reporting import metrics


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("metrics", help="print the Prometheus metrics (or write them to a file)")
    p.add_argument("--output", help="replace this file atomically instead of printing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    with context.reader(cfg) as store:
        text = metrics.render(metrics.collect(store))
    if args.output:
        metrics.write(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0
