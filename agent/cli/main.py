"""The `dockagent` command: parse, dispatch, and turn every AgentError into its exit code.

Each command group lives in its own module and uses the same policy and store as the daemon.
This is the composition root of every process, the daemon's too (`dockagent run`): the clocks
and crash points are installed here, once, from the test hooks when a test armed them
(agent.core.testhooks), and no module below reads them from the environment.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Mapping
from typing import NoReturn

from agent import __version__, store
from agent.cli import helptext
from agent.core import crashpoints, log, testhooks, wallclock
from agent.core.errors import (
    EX_IOERR,
    EX_TEMPFAIL,
    EX_USAGE,
    AgentError,
    StoreCorrupt,
    describe,
)
from agent.health import clock

# Each command's module, imported only when that command runs: importing them all (requests,
# sqlite-utils, the ledger) cost about half a second at every start of the CLI.
COMMANDS: dict[str, str] = {
    "import": "agent.cli.importing",
    "verify": "agent.cli.verifying",
    "status": "agent.cli.inspecting",
    "queue": "agent.cli.inspecting",
    "devices": "agent.cli.devices",
    "key": "agent.cli.keycmd",
    "run": "agent.cli.running",
    "sync": "agent.cli.syncing",
    "retry": "agent.cli.syncing",
    "ledger": "agent.cli.ledger",
    "report": "agent.cli.report",
    "assign": "agent.cli.assign",
    "doctor": "agent.cli.doctor",
    "metrics": "agent.cli.metricscmd",
    "rebuild": "agent.cli.rebuild",
    "profile": "agent.cli.profilecmd",
    "screen": "agent.cli.screencmd",
    "completion": "agent.cli.completion",
}
_GLOBAL_WITH_VALUE = ("--config", "--log-level")


def _command_of(argv: list[str]) -> str | None:
    """The sub-command word of argv, skipping the global options before it."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; every usage error of dockagent exits 64 (EX_USAGE,
    sysexits(3)), a UsageError's too. Sub-command parsers are made of this class as well
    (add_subparsers defaults parser_class to the parent's type)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dockagent",
        description="Body-worn-camera evidence custody on a collection station.",
        formatter_class=helptext.Formatter,
    )
    parser.add_argument(
        "--config", help="configuration file (default: $DOCKAGENT_CONFIG or embedded defaults)"
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log events from this level up, on stderr (default: [log] level of the configuration)",
    )
    parser.add_argument(
        "--foreign-config",
        action="store_true",
        help="root only: let a command that moves custody (sync, retry, import, run, rebuild) "
        "run under another configuration than the station's own; it is signed into the chain",
    )
    parser.add_argument("--version", action="version", version=f"dockagent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, title="commands")
    command = _command_of(argv if argv is not None else sys.argv[1:])
    wanted = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in wanted:
        importlib.import_module(name).add(sub)
    helptext.annotate(parser)
    return parser


def compose(environ: Mapping[str, str]) -> None:
    """Install this process's wall clock, station clock and crash points: the real ones, or the
    test hooks' when armed. Raises ConfigError where armed hooks are refused."""
    hooks = testhooks.load(environ)
    testhooks.install(hooks)
    wallclock.install(wallclock.WallClock(hooks.wall_offset_file))
    crashpoints.arm(hooks.crash_at, hooks.stall_at)
    synced = hooks.station_synchronised
    clock.install(None if synced is None else clock.FixedClock(synced))


def main(argv: list[str] | None = None) -> int:
    # Staging, the database and the key are private: 0700 directories and 0600 files,
    # whatever the caller's umask (systemd's UMask=0077 says the same for the service).
    os.umask(0o077)
    args = build_parser(argv).parse_args(argv)
    try:
        try:
            compose(os.environ)
            return int(args.func(args))
        except store.DatabaseError as exc:
            # Damage found after the open's checks (a page no check read): refuse as at open.
            if not store.is_damage(exc):
                raise
            raise StoreCorrupt(path="of this station", detail=str(exc)) from exc
    except AgentError as exc:
        if log.is_configured():
            log.get("dockagent").error(
                "command.failed", command=args.command, error=exc.message, error_kind=exc.kind.value
            )
        sys.stderr.write(f"dockagent: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`dockagent queue | head`): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        sys.stderr.write(f"dockagent: {describe(exc)}{where}\n")
        # A full staging disk passes (uploads are confirmed and purged): try again later, as
        # for StagingFull. Seen with ENOSPC injected into a sidecar write (syscall fault tests).
        return EX_TEMPFAIL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else EX_IOERR
    except store.StoreError as exc:
        # SQLite failed a statement or a COMMIT (an fsync that returned EIO, a full disk) and
        # rolled the transaction back. A message and an exit code, not a traceback and exit 1:
        # nothing of the failed step is trusted, and the next command's recovery takes it up.
        name = getattr(exc, "sqlite_errorname", type(exc).__name__)
        sys.stderr.write(
            f"dockagent: the database failed: {exc} ({name}); the step in progress was not "
            "recorded. Run the command again (it recovers what was interrupted).\n"
        )
        return EX_TEMPFAIL if store.is_disk_full(exc) else EX_IOERR


if __name__ == "__main__":
    sys.exit(main())
