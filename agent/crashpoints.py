"""Named crash points for the fault tests: kill -9 of this very process at a chosen step.

`DOCKAGENT_CRASH_AT=step` (or `step:N`, the N-th time the step is reached) makes hit(step)
send SIGKILL to the current process, exactly as a power cut or an OOM kill would end it.
Unset, hit() costs one dict lookup. Steps are listed in STEPS so tests can iterate them.
This module must not import anything of the agent.
"""

from __future__ import annotations

import os
import signal

ENV = "DOCKAGENT_CRASH_AT"

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


def _parse(value: str) -> tuple[str, int]:
    name, _, count = value.partition(":")
    return name, int(count) if count else 1


_TARGET = _parse(os.environ[ENV]) if os.environ.get(ENV) else None
_seen: dict[str, int] = {}


def hit(step: str) -> None:
    if _TARGET is None or _TARGET[0] != step:
        return
    _seen[step] = _seen.get(step, 0) + 1
    if _seen[step] == _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
