"""`python -m tests.soak`: the soak's command line (scripts/soak runs it after preparing the
checkout). Exit 0: passed; 1: failed; 2: bad arguments. The report goes to --report as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
from pathlib import Path

import tests.soak as package
from tests.soak.plan import Settings, log
from tests.soak.report import print_report
from tests.soak.run import Soak
from tests.soak.station import REPO


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soak", description=(package.__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (minimum)")
    parser.add_argument("--sessions", type=int, default=300, help="dock sessions (minimum)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "soak-out",
        help="output directory, made anew (default: soak-out)",
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="JSON report (default: OUT/report.json)"
    )
    parser.add_argument("--cameras", type=int, default=4, help="cameras docking at once")
    parser.add_argument("--fault-rate", type=float, default=0.25, help="share of faulty docks")
    parser.add_argument(
        "--rotate-logs",
        action="store_true",
        help="cameras start new SYSTEM.LOG and BATTERY.CSV at every dock, as real ones rotate "
        "(default: the logs grow for the whole run)",
    )
    return parser


def _usage_error(args: argparse.Namespace) -> str:
    if args.duration <= 0 or args.sessions < 1 or not 1 <= args.cameras <= 32:
        return "--duration > 0, --sessions >= 1, 1 <= --cameras <= 32"
    if not 0 <= args.fault_rate <= 1:
        return "--fault-rate must be between 0 and 1"
    return ""


def _settings(args: argparse.Namespace) -> Settings:
    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    return Settings(
        duration_s=args.duration,
        sessions=args.sessions,
        seed=seed,
        out=out,
        report=(args.report or out / "report.json").resolve(),
        cameras=args.cameras,
        fault_rate=args.fault_rate,
        rotate_logs=args.rotate_logs,
        warmup_sessions=min(20, args.sessions // 4),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = _usage_error(args)
    if problem:
        print(f"soak: {problem}", file=sys.stderr)
        return 2
    settings = _settings(args)
    log(
        f"{settings.duration_s:.0f} s and {settings.sessions} sessions at least, "
        f"{settings.cameras} cameras, seed {settings.seed}, output in {settings.out}"
    )
    soak = Soak(settings)
    # SIGTERM (e.g. a test's timeout) ends the run through the same clean-up as an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        report = soak.run()
    finally:
        soak.shutdown()
    settings.report.parent.mkdir(parents=True, exist_ok=True)
    settings.report.write_text(json.dumps(report, indent=1) + "\n")
    print_report(report)
    print(f"  report: {settings.report}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
