"""structlog set-up: JSON lines for the journal, a readable console on a terminal.

Events are named `area.past_tense` (`file.sealed`, `device.refused`) with the same keys
everywhere (device_serial, file_id, sha256, state, attempt, error_kind). Nothing logged here may
carry evidence content, key material or a raw camera file name: names go through display_name().
When test hooks are armed (agent.core.testhooks) every line says so (`test_hooks=[...]`), and
setup() names once the hooks that were set but ignored (`hooks.ignored`) or armed (`hooks.armed`).
Under systemd, where stderr is the journal's stream, each line starts with its syslog priority
(`<4>` for a warning, sd-daemon(3)) so that `journalctl -p warning` finds it; on a terminal or a
plain pipe lines carry no such prefix.

structlog is imported at a process's first log event, not at set-up: the commands that only
look (status, queue, ledger, report) mostly log nothing, and structlog's import (asyncio,
logging, json) was a sixth of their start-up.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, TextIO, cast

from agent.core import testhooks


def _import_structlog() -> ModuleType:
    """structlog, without rich's tracebacks.

    structlog.dev and structlog.tracebacks import rich when it is installed (it is, for the
    progress bars of `dockagent import`), and rich imports pygments: a third of the start-up of
    every command, for a traceback renderer no line of ours uses (exceptions are rendered plain
    on a console, as JSON for the journal). A None in sys.modules makes their guarded
    `import rich` fail as if rich were absent (Python reference, "The module cache": a None
    value raises ModuleNotFoundError), and the entry goes at once, so rich imports as usual
    afterwards. Where rich is already loaded structlog is imported as it is.
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return importlib.import_module("structlog")
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module("structlog")
    finally:
        del sys.modules["rich"]


# The logging module's level numbers (logging.DEBUG ... logging.ERROR), without importing it.
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

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
_structlog: ModuleType | None = None
# setup()'s configuration, applied when structlog is imported (at the first event).
_pending: Callable[[ModuleType], None] | None = None
_lock = threading.Lock()  # the daemon's threads may log their first events at once


def _lib() -> ModuleType:
    """structlog, imported and configured as setup() said at the first call."""
    global _structlog, _pending  # noqa: PLW0603 - logging is process-wide by nature
    with _lock:
        if _structlog is None:
            _structlog = _import_structlog()
        if _pending is not None:
            configure, _pending = _pending, None
            configure(_structlog)
        return _structlog


class _Logger:
    """structlog's logger of one name, looked up at its first use (see the module's doc)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._real: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._real is None:
            self._real = _lib().get_logger(self._name)
        return getattr(self._real, attr)


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
    colors = out.isatty()
    hooks = testhooks.current()

    journal = on_journal(out)

    def configure(structlog: ModuleType) -> None:
        processors: list[Any] = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ]
        if hooks.armed:
            processors.append(_announcer(hooks.armed))
        render: Any
        if console:
            render = structlog.dev.ConsoleRenderer(
                colors=colors, exception_formatter=structlog.dev.plain_traceback
            )
        else:
            processors.append(structlog.processors.format_exc_info)
            render = structlog.processors.JSONRenderer()
        processors.append(_prefixed(render) if journal else render)
        structlog.configure(
            processors=processors,
            wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, 20)),
            # sys.stderr looked up at every line, not once here: while `dockagent import` draws
            # its progress bars (agent.cli.progressbar) they stand in for it and print the lines
            # above.
            logger_factory=structlog.PrintLoggerFactory(out if stream else cast(TextIO, _Stderr())),
            cache_logger_on_first_use=False,
        )

    global _configured, _pending  # noqa: PLW0603 - logging is process-wide by nature
    _configured = True
    with _lock:
        _pending = configure
    if _structlog is not None:
        _lib()
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
    return _Logger(name)
