"""Examples and exit statuses at the foot of every `--help`, and so of dockagent(1).

One table of what each command's exit codes mean (the numbers come from agent.core.errors, the
one place that gives them), attached as the epilog of the top-level parser and of each
sub-command's once the command modules have added them. Text only: nothing here parses,
runs or imports a command module.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence

from agent.core.errors import (
    EX_CONFIG,
    EX_DATAERR,
    EX_IOERR,
    EX_NOINPUT,
    EX_NOPERM,
    EX_TEMPFAIL,
    EX_USAGE,
    EXIT_INCOMPLETE,
    EXIT_REBUILD_INCOMPLETE,
    EXIT_VERIFY_FAILED,
)

Exit = tuple[int, str]

USAGE: Exit = (EX_USAGE, "usage error: an unknown option, a missing or malformed argument")
CONFIG: Exit = (EX_CONFIG, "configuration error (the message names the key)")
DAMAGED: Exit = (EX_DATAERR, "the database is damaged or not this station's: run dockagent rebuild")
IOERR: Exit = (EX_IOERR, "I/O error on the station's disk: run the command again")
BUSY: Exit = (EX_TEMPFAIL, "try again later: staging full, or another dockagent holds the data")
FOREIGN: Exit = (
    EX_NOPERM,
    "another configuration than the station's own, without root's --foreign-config",
)
UNKNOWN_CAMERA: Exit = (EX_NOINPUT, "a camera serial the station does not know")

# What every command may answer besides its own codes.
_LOOKING = (USAGE, DAMAGED, IOERR, CONFIG)
_CUSTODY = (USAGE, DAMAGED, IOERR, BUSY, FOREIGN, CONFIG)

# Every exit status of dockagent, for the top-level --help and the manual page.
ALL: tuple[Exit, ...] = (
    (0, "done; for import: every file of the camera is sealed"),
    (1, "doctor: some check is yellow"),
    (2, "doctor: some check is red"),
    (EXIT_INCOMPLETE, "import left files unsealed, or sync left files held (each is named)"),
    (EXIT_VERIFY_FAILED, "verify found problems (each is named)"),
    (EXIT_REBUILD_INCOMPLETE, "rebuild could not make the chain whole (each gap is named)"),
    USAGE,
    (EX_DATAERR, "the database is damaged, or a roster has bad rows: run dockagent rebuild"),
    (EX_NOINPUT, "the camera could not be read, or a serial the station does not know"),
    IOERR,
    (EX_TEMPFAIL, "try again later: staging full, uploads deferred, or the data directory busy"),
    (EX_NOPERM, "not an acceptable camera, or a foreign configuration without --foreign-config"),
    CONFIG,
    (130, "interrupted (Ctrl-C)"),
)


class Help:
    """A command's examples and its exit statuses."""

    def __init__(self, examples: Sequence[str], exits: Sequence[Exit]) -> None:
        self.examples = tuple(examples)
        self.exits = tuple(sorted(dict(exits).items()))

    def epilog(self) -> str:
        lines = ["examples:", *(f"  {e}" for e in self.examples), "", "exit status:"]
        lines += [f"  {code:<4}{meaning}" for code, meaning in self.exits]
        return "\n".join(lines)


def _done(what: str, *exits: Exit, common: Sequence[Exit] = _LOOKING) -> list[Exit]:
    return [(0, what), *exits, *common]


# Keyed by the command's words after `dockagent` ("" for dockagent itself).
HELP: dict[str, Help] = {
    "": Help(
        [
            "dockagent status",
            "dockagent import /media/dockagent/CAM00123 --profile generic",
            "dockagent devices enroll CAM00123 --officer 10452",
            "dockagent sync --once",
            "dockagent verify --incremental",
            "dockagent status --json | jq .schema_version",
            "dockagent completion bash > /usr/local/share/bash-completion/completions/dockagent",
        ],
        ALL,
    ),
    "import": Help(
        [
            "dockagent import /media/dockagent/CAM00123",
            "dockagent import /media/dockagent/CAM00123 --profile jl-dv16 --enroll --json",
        ],
        _done(
            "every file of the camera is sealed",
            (EXIT_INCOMPLETE, "files left unsealed (each is listed with its reason)"),
            (EX_NOINPUT, "the camera could not be read"),
            (EX_NOPERM, "not an acceptable camera, or a foreign configuration"),
            common=_CUSTODY,
        ),
    ),
    "verify": Help(
        ["dockagent verify", "dockagent verify --incremental --json"],
        _done(
            "staged evidence, signatures and the chain check out",
            (EXIT_VERIFY_FAILED, "problems found (each is named)"),
        ),
    ),
    "status": Help(
        [
            "dockagent status",
            "dockagent status --limit 5 --since 2026-03-01",
            "dockagent status --json",
        ],
        _done("the counts were printed"),
    ),
    "queue": Help(
        ["dockagent queue", "dockagent queue --state held --json"],
        _done("the queue was printed"),
    ),
    "devices": Help(
        ["dockagent devices", "dockagent devices --refused --json"],
        _done("the list was printed"),
    ),
    "devices enroll": Help(
        [
            "dockagent devices enroll CAM00123 --officer 10452 --name 'Li Wei'",
            "dockagent devices enroll --csv roster.csv",
        ],
        _done(
            "enrolled",
            (EX_DATAERR, "the roster has bad rows or is not a roster: nothing enrolled"),
        ),
    ),
    "devices revoke": Help(["dockagent devices revoke CAM00123"], _done("revoked")),
    "devices enrolled": Help(
        ["dockagent devices enrolled", "dockagent devices enrolled --json"],
        _done("the list was printed"),
    ),
    "devices show": Help(
        ["dockagent devices show CAM00123", "dockagent devices show CAM00123 --json"],
        _done("the camera's history was printed", UNKNOWN_CAMERA),
    ),
    "key": Help(["dockagent key show"], _done("done")),
    "key show": Help(
        ["dockagent key show", "dockagent key show --json"], _done("the public key was printed")
    ),
    "run": Help(
        ["systemctl start dockagent", "dockagent --log-level debug run"],
        _done("stopped on SIGTERM", common=_CUSTODY),
    ),
    "sync": Help(
        ["dockagent sync --once", "dockagent sync --once --json"],
        _done(
            "every sealed file is confirmed",
            (EXIT_INCOMPLETE, "files are held (each is named)"),
            (EX_TEMPFAIL, "files to retry, outside the upload windows, or a sink still waiting"),
            common=_CUSTODY,
        ),
    ),
    "retry": Help(
        ["dockagent retry 42", "dockagent retry --held"],
        _done("the files will be sent at the next sync", common=_CUSTODY),
    ),
    "ledger": Help(
        [
            "dockagent ledger --since 2026-03-01 --officer 10452",
            "dockagent ledger --csv > ledger.csv",
            "dockagent ledger --faults --json",
        ],
        _done("the ledger was printed"),
    ),
    "report": Help(["dockagent report compliance --since 2026-03-01"], _done("done")),
    "report compliance": Help(
        [
            "dockagent report compliance --since 2026-03-01",
            "dockagent report compliance --files --csv > compliance.csv",
        ],
        _done("the report was printed"),
    ),
    "report explain": Help(
        ["dockagent report explain 42 'camera battery failed during the arrest'"],
        _done("the explanation is signed into the chain"),
    ),
    "assign": Help(
        ["dockagent assign CAM00123 10452", "dockagent assign CAM00123 10452 --json"],
        _done("assigned", UNKNOWN_CAMERA),
    ),
    "doctor": Help(
        ["dockagent doctor", "dockagent doctor --json", "dockagent doctor --root /mnt/image"],
        [
            (0, "every check is green"),
            (1, "some check is yellow"),
            (2, "some check is red"),
            USAGE,
        ],
    ),
    "metrics": Help(
        ["dockagent metrics", "dockagent metrics --output /run/dockagent/dockagent.prom"],
        _done("the metrics were printed or written"),
    ),
    "rebuild": Help(
        ["dockagent rebuild", "dockagent rebuild --force --json"],
        _done(
            "the database is whole again",
            (EXIT_REBUILD_INCOMPLETE, "the chain could not be made whole (each gap is named)"),
            common=_CUSTODY,
        ),
    ),
    "profile": Help(["dockagent profile check /etc/dockagent/profiles/*.toml"], _done("done")),
    "profile check": Help(
        ["dockagent profile check /etc/dockagent/profiles/bodycam.toml"],
        _done("every profile file is valid"),
    ),
    "profile try": Help(
        [
            "dockagent profile try generic /media/dockagent/CAM00123",
            "dockagent profile try ./bodycam.toml /srv/sample-camera --json",
        ],
        _done("the classification was printed", (EX_NOINPUT, "the camera could not be read")),
    ),
    "screen": Help(
        ["systemctl start dockagent-screen", "dockagent screen --bind 127.0.0.1 --port 8470"],
        _done("stopped"),
    ),
    "completion": Help(
        [
            "dockagent completion bash > /usr/local/share/bash-completion/completions/dockagent",
            "dockagent completion zsh > /usr/local/share/zsh/site-functions/_dockagent",
        ],
        [(0, "the script was printed"), USAGE],
    ),
}


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps a text of several lines (the epilog's examples and table) as written, and wraps a
    text of one line (descriptions) to the terminal as argparse does by default."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def commands(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser below `parser` (itself first) with its command words."""
    yield words, parser
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*words, name))


JSON_HELP = 'print one JSON document with "schema_version" (README "JSON output")'


def annotate(parser: argparse.ArgumentParser) -> None:
    """Give each parser of the tree its examples and exit statuses, where HELP has them, and
    every --json option the same help."""
    for words, each in commands(parser):
        entry = HELP.get(" ".join(words))
        each.formatter_class = Formatter
        if entry is not None:
            each.epilog = entry.epilog()
        for action in each._actions:  # argparse lists the options only here
            if "--json" in action.option_strings and not action.help:
                action.help = JSON_HELP
