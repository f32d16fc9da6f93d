"""The test hooks: read once from the environment, inert unless a test arms them.

The fault tests kill the process at a named step ($DOCKAGENT_CRASH_AT), hang a worker
($DOCKAGENT_STALL_AT), step the wall clock ($DOCKAGENT_TEST_WALL_OFFSET_FILE) and say whether the
station clock is synchronised ($DOCKAGENT_TEST_STATION_CLOCK). In a production process any of
them would forge a signed time, a clock decision or a crash, so they take effect only when
$DOCKAGENT_TEST_HOOKS=1 arms them, and arming is refused (exit 78) in a process systemd started
($INVOCATION_ID or $JOURNAL_STREAM, systemd.exec(5) "Environment Variables Set or Propagated by
the Service Manager") or the technician's wrapper started ($DOCKAGENT_WRAPPED, which the wrapper
sets after scrubbing the hooks). Unarmed, set hooks are only named in `hooks.ignored`.

The composition root (agent.cli.main) calls load() once and installs the values into the wall
clock, the crash points and the station clock; nothing else reads these variables. Every value is
bounded and checked here. This module decides nothing about evidence and logs nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.core import crashpoints
from agent.core.errors import ConfigError

ARM = "DOCKAGENT_TEST_HOOKS"
WRAPPED = "DOCKAGENT_WRAPPED"
CRASH_AT = "DOCKAGENT_CRASH_AT"
STALL_AT = "DOCKAGENT_STALL_AT"
WALL_OFFSET_FILE = "DOCKAGENT_TEST_WALL_OFFSET_FILE"
STATION_CLOCK = "DOCKAGENT_TEST_STATION_CLOCK"
HOOKS = (CRASH_AT, STALL_AT, WALL_OFFSET_FILE, STATION_CLOCK)
# systemd.exec(5): set by the service manager for every unit it runs. $NOTIFY_SOCKET is not one
# of them: the watchdog tests give a stalled test daemon a notify socket of their own.
SYSTEMD_MARKERS = ("INVOCATION_ID", "JOURNAL_STREAM")
_MAX_PATH = 4096  # PATH_MAX (limits.h)
_MAX_STEP = 64
_MAX_COUNT = 1_000_000
_STATION_CLOCK_STATES = {"synced": True, "unsynced": False}


@dataclass(frozen=True)
class Hooks:
    """The hooks in effect: all empty unless armed. `armed` names the switch and the hooks set;
    `ignored` names hooks that were set without the switch (names only, never values)."""

    armed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    crash_at: tuple[str, int] | None = None
    stall_at: tuple[str, int] | None = None
    wall_offset_file: str = ""
    station_synchronised: bool | None = None


def _refuse(problem: str) -> ConfigError:
    return ConfigError(where=f"${ARM}", problem=problem)


def _step(name: str, value: str) -> tuple[str, int]:
    step, _, count = value[: _MAX_STEP + 12].partition(":")
    if step not in crashpoints.STEPS + crashpoints.REBUILD_STEPS + crashpoints.PURGE_STEPS:
        raise _refuse(f"${name} names no crash point (agent/core/crashpoints.py)")
    if count and not (count.isascii() and count.isdigit() and 0 < int(count) <= _MAX_COUNT):
        raise _refuse(f"${name}: the count after ':' must be 1 to {_MAX_COUNT}")
    return step, int(count) if count else 1


def _refusal(environ: Mapping[str, str]) -> str | None:
    for marker in SYSTEMD_MARKERS:
        if environ.get(marker):
            return f"a process started by systemd (${marker} is set) never runs test hooks"
    if environ.get(WRAPPED):
        return f"the station's dockagent wrapper (${WRAPPED} is set) never runs test hooks"
    return None


def load(environ: Mapping[str, str]) -> Hooks:
    """The hooks of this process. ConfigError when armed where hooks are refused, or when an
    armed hook's value is malformed (a test with a typo must fail, not pass unhooked)."""
    present = tuple(name for name in HOOKS if environ.get(name))
    if environ.get(ARM) != "1":
        return Hooks(ignored=present)
    refusal = _refusal(environ)
    if refusal is not None:
        raise _refuse(f"test hooks are armed but {refusal}; unset {ARM}")
    wall = environ.get(WALL_OFFSET_FILE, "")
    if len(wall) > _MAX_PATH or "\0" in wall:
        raise _refuse(f"${WALL_OFFSET_FILE} is not a path")
    clock = environ.get(STATION_CLOCK, "")
    if clock and clock not in _STATION_CLOCK_STATES:
        raise _refuse(f"${STATION_CLOCK} must be 'synced' or 'unsynced'")
    crash, stall = environ.get(CRASH_AT, ""), environ.get(STALL_AT, "")
    return Hooks(
        armed=(ARM, *present),
        crash_at=_step(CRASH_AT, crash) if crash else None,
        stall_at=_step(STALL_AT, stall) if stall else None,
        wall_offset_file=wall,
        station_synchronised=_STATION_CLOCK_STATES.get(clock),
    )


_current = Hooks()


def install(hooks: Hooks) -> None:
    """Remember the hooks of this process (the log announces them on every line)."""
    global _current  # noqa: PLW0603 - the hooks are process-wide by nature
    _current = hooks


def current() -> Hooks:
    return _current
