"""Named crash points for the fault tests: kill -9 of this very process at a chosen step.

arm(crash=(step, N)) makes the N-th hit(step) SIGKILL the process, as a power cut would;
arm(stall=(step, N)) hangs the calling thread forever instead (the watchdog tests' stuck worker).
Only the composition root arms them, from armed test hooks ($DOCKAGENT_CRASH_AT and
$DOCKAGENT_STALL_AT, agent.core.testhooks); this module reads no environment. Unarmed, hit()
returns after two comparisons; STEPS lists the pipeline's steps, REBUILD_STEPS those of
`dockagent rebuild` and PURGE_STEPS those of a purge. This module must not import anything
of the agent.
"""

from __future__ import annotations

import os
import signal
import threading

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

# The step of a purge between the archive's fsync and the unlink of the sidecars archived
# (agent.custody.archive), apart too: tests/faults/test_purge_archive.py.
PURGE_STEPS = ("purge.archived",)


_TARGET: tuple[str, int] | None = None
_STALL: tuple[str, int] | None = None
_seen: dict[str, int] = {}


def arm(crash: tuple[str, int] | None = None, stall: tuple[str, int] | None = None) -> None:
    """(step, N): crash (or stall) at the N-th hit of step; None leaves that one inert."""
    global _TARGET, _STALL
    _TARGET, _STALL = crash, stall
    _seen.clear()


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
