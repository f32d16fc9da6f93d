"""Every `--help` ends with examples to copy and what each exit status means, and a usage
error still exits 64 (EX_USAGE, sysexits(3)) under every command."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import helptext
from agent.cli.main import COMMANDS, build_parser
from agent.core.errors import EX_USAGE

REPO = Path(__file__).resolve().parents[2]
PARSERS = {" ".join(words): p for words, p in helptext.commands(build_parser([]))}


def test_every_command_has_its_help_entry() -> None:
    assert set(COMMANDS) <= set(PARSERS)
    assert set(PARSERS) == set(helptext.HELP)


@pytest.mark.parametrize("words", sorted(PARSERS))
def test_help_shows_examples_and_exit_statuses(words: str) -> None:
    text = PARSERS[words].format_help()
    examples = text[text.index("\nexamples:\n") : text.index("\nexit status:\n")]
    typed = [line.strip() for line in examples.splitlines()[2:] if line.strip()]
    assert typed, words
    # Each example is a command line of this command that the parser takes as it is (or the
    # systemctl that starts the service); a pipe or a redirection is the shell's.
    for line in typed:
        if line.startswith("systemctl "):
            continue
        argv = shlex.split(re.split(r" [|>] ", line)[0])
        assert argv[0] == "dockagent", line
        args = build_parser(argv[1:]).parse_args(argv[1:])
        assert callable(getattr(args, "func", None)), line
        own = PARSERS[words].get_default("func")
        if own is not None and words:
            assert args.func is own, line  # an example of this very command
        elif words:
            assert args.command == words.split(maxsplit=1)[0], line
    statuses = text[text.index("\nexit status:\n") :]
    codes = [int(c) for c in re.findall(r"^  (\d+) +\S", statuses, re.MULTILINE)]
    assert 0 in codes and EX_USAGE in codes, words
    # The table keeps its lines (RawDescriptionHelpFormatter), one status a line.
    assert re.search(rf"^  {EX_USAGE}  usage error", statuses, re.MULTILINE)


def test_top_level_help_lists_every_exit_status() -> None:
    text = PARSERS[""].format_help()
    for code, _ in helptext.ALL:
        assert re.search(rf"^  {code} +\S", text, re.MULTILINE), code


def test_descriptions_of_one_line_are_still_wrapped() -> None:
    text = PARSERS["devices enroll"].format_help()
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("argv", [["--bogus"], ["status", "--bogus"], ["devices", "enroll", "-x"]])
def test_a_usage_error_exits_64(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", *argv],
        capture_output=True, text=True, check=False, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == EX_USAGE, proc.stderr
    assert "usage: dockagent" in proc.stderr
