"""The `dockagent` command: parse, dispatch, and turn every AgentError into its exit code.

Each command group lives in its own module and uses the same policy and store as the daemon.
"""

from __future__ import annotations

import argparse
import os
import sys

from agent import __version__, log
from agent.cli import devices, importing, inspecting, keycmd, running, verifying
from agent.errors import AgentError, describe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dockagent", description="Body-worn-camera evidence custody on a collection station."
    )
    parser.add_argument(
        "--config", help="configuration file (default: $DOCKAGENT_CONFIG or embedded defaults)"
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--version", action="version", version=f"dockagent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (importing, verifying, inspecting, devices, keycmd, running):
        module.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Staging, the database and the key are private: 0700 directories and 0600 files,
    # whatever the caller's umask (systemd's UMask=0077 says the same for the service).
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except AgentError as exc:
        if log.is_configured():
            log.get("dockagent").error(
                "command.failed", command=args.command, error=exc.message, error_kind=exc.kind.value
            )
        sys.stderr.write(f"dockagent: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        sys.stderr.write(f"dockagent: {describe(exc)}\n")
        return 74


if __name__ == "__main__":
    sys.exit(main())
