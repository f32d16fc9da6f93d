"""The fast builder of `scripts/bench history`: many docks taken in by one long-lived process.

Each dock is still the product's own `dockagent import` and `dockagent sync --once` (the CLI's
`main()` with the same arguments), so every record, signature and chain link is real; only the
interpreter's start-up (~0.5 s a command, most of a 50-file dock's cost) is paid once instead
of once per dock. Run by scripts/bench_history.py as its own process, with the agent of
--agent-root on PYTHONPATH; prints one line per checkpoint of progress.

The station's wall clock follows the docks: before each one the builder sets the agent's test
offset of the wall clock ($DOCKAGENT_TEST_WALL_OFFSET_FILE) so that the station's own times
(docked, staged, sealed, confirmed, purged) are the dock's simulated time, ten minutes apart,
as a real station's would be; built in real time, a year's history would all fall on "today"
and every `--since` would read all of it.

Test and demo tooling only; it writes nothing outside the station's work directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAMERAS = 20


def camera(serial: str, seed: int, files: int, docked: datetime, root: Path) -> None:
    from scripts.simulator.cameras import CameraSpec, write_camera  # noqa: PLC0415

    spec = CameraSpec(
        serial=serial,
        seed=seed,
        days=1,
        files_per_day=files,
        file_size=2048,
        split_every=0,
        other_files=0,
        first_day=(docked - timedelta(days=1)).date(),
        docked_at=docked.replace(tzinfo=None),
    )
    write_camera(spec, root)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--first", type=int, required=True)
    ap.add_argument("--stop", type=int, required=True)
    ap.add_argument("--per-session", type=int, required=True)
    ap.add_argument("--sync-every", type=int, default=10)
    ap.add_argument("--last", type=int, required=True, help="the last session number of the build")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from agent.cli.main import main  # noqa: PLC0415

    def dockagent(*argv: str) -> int:
        return main(["--config", args.config, "--log-level", "warning", *argv])

    work = Path(args.work)
    offset_file = work / "wall-offset"
    os.environ["DOCKAGENT_TEST_HOOKS"] = "1"
    os.environ["DOCKAGENT_TEST_WALL_OFFSET_FILE"] = str(offset_file)
    now = datetime.now(UTC)
    failures = 0
    started = time.monotonic()
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        for n in range(args.first, args.stop):
            cam = work / "cam"
            shutil.rmtree(cam, ignore_errors=True)
            docked = now - timedelta(minutes=10 * (args.last - n))
            camera(f"HIST{n % CAMERAS:04d}", 1000 + n, args.per_session, docked, cam)
            offset_file.write_text(f"{(docked - datetime.now(UTC)).total_seconds():.3f}\n")
            failures += dockagent("import", str(cam)) != 0
            if (n + 1) % args.sync_every == 0:
                failures += dockagent("sync", "--once") != 0
            if (n + 1) % 200 == 0:
                rate = (n + 1 - args.first) / (time.monotonic() - started)
                print(
                    f"  built {n + 1} sessions ({rate:.1f}/s, {failures} failed)",
                    file=sys.stderr,
                    flush=True,
                )
        failures += dockagent("sync", "--once") != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
