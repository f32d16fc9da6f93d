"""Named crash points for the fault tests: kill -9 of this very process at a chosen step.

`DOCKAGENT_CRASH_AT=step` (or `step:N`, the N-th time) makes hit(step) SIGKILL the process, as a
power cut would; `DOCKAGENT_STALL_AT=step[:N]` hangs the calling thread forever instead (the
watchdog tests' stuck worker). Unset, hit() returns after two comparisons; STEPS lists the
pipeline's steps and REBUILD_STEPS those of `dockagent rebuild`.
This module must not import anything of the agent.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "DOCKAGENT_CRASH_AT"
STALL_ENV = "DOCKAGENT_STALL_AT"

STEPS = (
    "import.session_opened",
    "import.registered",
    "copy.claimed",
    "copy.first_chunk",
    "staging.temp_synced",
    "staging.linked",
    "copy.published",
    "copy.staged",
    "seal.committed",
    "seal.sidecar_written",
    "wipe.intent",
    "wipe.unlinked",
)
# The steps of `dockagent rebuild`, apart: an import never reaches them (the crash tests of the
# pipeline run every step of STEPS against an import). tests/faults/test_corrupt_state.py.
REBUILD_STEPS = (
    "rebuild.kept",
    "rebuild.built",
    "rebuild.set_aside",
    "rebuild.replaced",
)


def _parse(value: str) -> tuple[str, int]:
    name, _, count = value.partition(":")
    return name, int(count) if count else 1


_TARGET = _parse(os.environ[ENV]) if os.environ.get(ENV) else None
_STALL = _parse(os.environ[STALL_ENV]) if os.environ.get(STALL_ENV) else None
_seen: dict[str, int] = {}


def hit(step: str) -> None:
    if _STALL is not None and _STALL[0] == step:
        _stall(step)
    if _TARGET is None or _TARGET[0] != step:
        return
    _seen[step] = _seen.get(step, 0) + 1
    if _seen[step] == _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def _stall(step: str) -> None:
    _seen[f"stall:{step}"] = _seen.get(f"stall:{step}", 0) + 1
    if _STALL is not None and _seen[f"stall:{step}"] == _STALL[1]:
        threading.Event().wait()  # never set: this thread hangs as a stuck read would
