"""structlog set-up: JSON lines for the journal, a readable console on a terminal.

Events are named `area.past_tense` (`file.sealed`, `device.refused`) with the same keys
everywhere (device_serial, file_id, sha256, state, attempt, error_kind). Nothing logged here may
carry evidence content, key material or a raw camera file name: names go through display_name().
When test hooks are armed (agent.core.testhooks) every line says so (`test_hooks=[...]`), and
setup() names once the hooks that were set but ignored (`hooks.ignored`) or armed (`hooks.armed`).
"""

from __future__ import annotations

import importlib
import logging
import sys
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


structlog = _import_structlog()

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
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
    if console:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
        )
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
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
