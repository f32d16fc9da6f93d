"""`dockagent completion bash|zsh`: the shell's completion script, generated from the parser.

shtab writes the script from the same argparse tree that parses the command line, so every
command, sub-command, option and choice completes as it is parsed and none is listed by hand.
The arguments that name files or directories are marked here for the shell's own file
completion. This module only prints; it changes nothing on the station.
"""

from __future__ import annotations

import argparse
import sys

import shtab

from agent.cli import helptext
from agent.cli.main import build_parser

SHELLS = ("bash", "zsh")

# Arguments completed as paths: (command words, destination) -> "file" or "directory".
_PATHS: dict[tuple[tuple[str, ...], str], str] = {
    ((), "config"): "file",
    (("import",), "path"): "directory",
    (("devices", "enroll"), "csv"): "file",
    (("metrics",), "output"): "file",
    (("doctor",), "root"): "directory",
    (("profile", "check"), "files"): "file",
    (("profile", "try"), "path"): "directory",
}


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "completion",
        help="print the shell completion script (bash or zsh)",
        description="Print the completion script of dockagent for the shell. scripts/install "
        "puts the bash one where bash-completion finds it.",
    )
    p.add_argument("shell", choices=SHELLS, help="the shell the script is for")
    p.set_defaults(func=run)


def script(shell: str) -> str:
    """The completion script for `shell`, of every command."""
    parser = build_parser([])
    for words, each in helptext.commands(parser):
        for action in each._actions:  # argparse lists the arguments only here
            kind = _PATHS.get((words, action.dest))
            if kind is not None:
                action.complete = shtab.FILE if kind == "file" else shtab.DIRECTORY  # type: ignore[attr-defined]
    return shtab.complete(parser, shell=shell)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return 0
