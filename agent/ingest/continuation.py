"""The health side of a dock session taken up again, for the wipe once every file is confirmed.

One physical dock is one session: its first pass read the camera's logs, measured its clock,
wrote TIME.TXT if due and assessed its readiness (agent.health.dock). Taking the session up
again must not do any of that a second time (a second health row, a second clock correction, a
readiness overwritten by one that read nothing), so this stands in for the dock's checks and
keeps only what the later pass adds: its wipe refusals as faults of the session, and the
retention class of a file that appeared since. No camera I/O of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from agent.core.model import ImportSummary
from agent.health.dock import DockCheck
from agent.store import Store


class DockHealth(Protocol):
    """What the import pipeline asks of a dock's health checks, at its three points."""

    def docked(self, root_fd: int) -> None: ...
    def scanned(self, file_ids: Sequence[int]) -> None: ...
    def wants_clock_write(self) -> bool: ...
    def finished(self, root_fd: int, summary: ImportSummary) -> None: ...
    def failed(self, exc: BaseException) -> None: ...


class ContinuedDock:
    def __init__(self, check: DockCheck, store: Store) -> None:
        self.check = check
        self.store = store

    def docked(self, root_fd: int) -> None:
        """Read at the session's first pass; nothing is read or written again."""

    def scanned(self, file_ids: Sequence[int]) -> None:
        # A file that appeared since the first pass still gets its retention class; its times
        # say they are uncorrected (no drift is measured on this pass).
        if file_ids:
            self.check.scanned(file_ids)

    def wants_clock_write(self) -> bool:
        return False  # the first pass decided the clock correction

    def finished(self, root_fd: int, summary: ImportSummary) -> None:
        refused = summary.wipe.get("refused")
        if not isinstance(refused, list) or not refused:
            return
        info = self.check.info
        with self.store.transaction():
            for item in refused:
                self.store.add_fault(
                    info.serial,
                    self.check.session_id,
                    self.check.now(),
                    "wipe",
                    "wipe_refused",
                    "warning",
                    f"{item.get('file')}: {item.get('reason')}",
                )

    def failed(self, exc: BaseException) -> None:
        """A pass that raised is recorded on the session (why nothing was wiped)."""
