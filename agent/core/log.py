"""structlog set-up: JSON lines for the journal, a readable console on a terminal.

Events are named `area.past_tense` (`file.sealed`, `device.refused`) with the same keys
everywhere (device_serial, file_id, sha256, state, attempt, error_kind). Nothing logged here may
carry evidence content, key material or a raw camera file name: names go through display_name().
When test hooks are armed (agent.core.testhooks) every line says so (`test_hooks=[...]`), and
setup() names once the hooks that were set but ignored (`hooks.ignored`) or armed (`hooks.armed`).
Under systemd, where stderr is the journal's stream, each line starts with its syslog priority
(`<4>` for a warning, sd-daemon(3)) so that `journalctl -p warning` finds it; on a terminal or a
plain pipe lines carry no such prefix.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO, cast

import structlog

from agent.core import testhooks

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# syslog(3) priorities of structlog's method names, as sd-daemon(3) prefixes: "<3>" error,
# "<4>" warning, "<6>" info, "<7>" debug. journald reads the prefix off each line of a stream
# (systemd.exec(5) SyslogLevelPrefix=, on by default) and stores the line at that priority.
_PRIORITIES = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "info": 6,
    "debug": 7,
}

_configured = False
_hooks_reported = False


def _announcer(names: tuple[str, ...]) -> Any:
    """A processor that puts the armed test hooks on every event: no line of a hooked process
    can pass for a production one."""

    def announce(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        event["test_hooks"] = list(names)
        return event

    return announce


def on_journal(out: TextIO, environ: Mapping[str, str] = os.environ) -> bool:
    """True when `out` is the stream systemd connected to the journal: $JOURNAL_STREAM holds
    that stream's "device:inode" (systemd.exec(5)); a child whose stderr was redirected
    elsewhere inherits the variable but not the stream, hence the comparison."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(out.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or no file descriptor (io.StringIO)
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def _prefixed(render: Any) -> Any:
    """The renderer with each line led by its sd-daemon(3) priority prefix."""

    def prefix(logger: Any, method: str, event: dict[str, Any]) -> str:
        return f"<{_PRIORITIES.get(method, 6)}>{render(logger, method, event)}"

    return prefix


class _Stderr:
    """Whatever sys.stderr is when a line is written."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def is_configured() -> bool:
    return _configured


def setup(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once per process. Logs go to stderr; stdout is for command output."""
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    hooks = testhooks.current()
    if hooks.armed:
        processors.append(_announcer(hooks.armed))
    render: Any
    if console:
        render = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        processors.append(structlog.processors.format_exc_info)
        render = structlog.processors.JSONRenderer()
    processors.append(_prefixed(render) if on_journal(out) else render)
    global _configured  # noqa: PLW0603 - logging is process-wide by nature
    _configured = True
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        # sys.stderr looked up at every line, not once here: while `dockagent import` draws its
        # progress bars (agent.cli.progressbar) they stand in for it and print the lines above.
        logger_factory=structlog.PrintLoggerFactory(out if stream else cast(TextIO, _Stderr())),
        cache_logger_on_first_use=False,
    )
    _report_hooks(hooks)


def _report_hooks(hooks: testhooks.Hooks) -> None:
    global _hooks_reported  # noqa: PLW0603 - once per process, like the set-up
    if _hooks_reported:
        return
    _hooks_reported = True
    logger = get("dockagent")
    if hooks.ignored:
        logger.warning(
            "hooks.ignored",
            variables=list(hooks.ignored),
            reason=f"test hooks take effect only with {testhooks.ARM}=1 outside systemd",
        )
    if hooks.armed:
        logger.warning("hooks.armed", variables=list(hooks.armed))


def get(name: str) -> Any:
    return structlog.get_logger(name)
