"""dockagent(1): the manual page, generated from the parser (`python -m agent.cli.manual`).

argparse-manpage writes the page from the same argparse tree that parses the command line:
every command and option with its help, then EXAMPLES of each command and the EXIT STATUS
table (agent.cli.helptext, the epilogs of --help). scripts/install and
scripts/gen-manpages run it; this module only prints roff text.
"""

from __future__ import annotations

import argparse
import sys

from argparse_manpage.manpage import Manpage  # type: ignore[import-untyped]

from agent import __version__
from agent.cli import helptext
from agent.cli.main import build_parser

SEE_ALSO = (
    r"\fBjournalctl\fR(1), \fBsystemd.exec\fR(5), \fBsysexits.h\fR(3head), "
    "/opt/dockagent/README.md"
)


def _exit_status() -> str:
    # man-pages(7): EXIT STATUS lists each value with its meaning, one tagged paragraph each.
    return "\n".join(f".TP\n.B {code}\n{_roff(meaning)}" for code, meaning in helptext.ALL)


def _examples() -> str:
    """Each command's examples, as lines to type (no filling, ASCII hyphens)."""
    out: list[str] = []
    for words, entry in helptext.HELP.items():
        out += [f".SS {_roff(' '.join(('dockagent', words)).strip())}", ".nf"]
        out += [_roff(line) for line in entry.examples]
        out.append(".fi")
    return "\n".join(out)


def _roff(text: str) -> str:
    """Text safe as a roff line: no leading control character, backslashes escaped, and
    hyphens that stay hyphen-minus (groff_man(7)), so an example can be copied as typed."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def page(date: str | None = None) -> str:
    """The roff source of dockagent(1)."""
    parser: argparse.ArgumentParser = build_parser([])
    # The epilog's examples and exit statuses get sections of their own below.
    parser.epilog = None
    man = Manpage(
        parser,
        {
            "project_name": "dockagent",
            "version": __version__,
            "manual_title": "dockagent manual",
            "manual_section": 1,
            "description": "body-worn-camera evidence custody on a collection station",
            **({"date": date} if date else {}),
        },
        format="single-commands-section",
    )
    man.add_section("examples", "=", _examples())
    man.add_section("exit status", "=", _exit_status())
    man.add_section("see also", "=", SEE_ALSO)
    return str(man)


def main() -> int:
    sys.stdout.write(page())
    return 0


if __name__ == "__main__":
    sys.exit(main())
