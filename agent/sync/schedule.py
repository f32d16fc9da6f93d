"""When each file waiting for an upload retry may be tried again, on the monotonic clock.

A deferred file's backoff is measured with agent.core.wallclock.monotonic(), which a step of the
station's wall clock cannot move: a clock set back two days does not stall it, one set forward
does not fire it early. The wall-clock due time on the row (next_attempt_at) is for people and
restarts only: a due time without monotonic history here (after a restart, or written by
another process) counts from the moment it is first seen, clamped to between 0 and the longest
backoff, so a wrong clock can stall a file for at most that long. No SQL and no I/O here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from agent.core import wallclock


class RetrySchedule:
    """file id -> monotonic deadline of its next attempt; shared by the upload workers."""

    def __init__(
        self, max_wait_s: float, monotonic: Callable[[], float] = wallclock.monotonic
    ) -> None:
        self.max_wait_s = max_wait_s
        self.monotonic = monotonic
        self.lock = threading.Lock()
        self.deadlines: dict[int, float] = {}
        self.written: dict[int, str] = {}  # the next_attempt_at each deadline belongs to

    def defer(self, file_id: int, delay_s: float, due: str) -> None:
        """The file was deferred by `delay_s` seconds; `due` is what the row says."""
        with self.lock:
            self.deadlines[file_id] = self.monotonic() + max(0.0, delay_s)
            self.written[file_id] = due

    def forget(self, file_id: int) -> None:
        """The file waits no more (confirmed, held, or claimed again and deferred anew)."""
        with self.lock:
            self.deadlines.pop(file_id, None)
            self.written.pop(file_id, None)

    def adopt(self, waiting: Mapping[int, str], wall_now: datetime) -> None:
        """Bring the schedule in line with the rows that wait (id -> next_attempt_at): rows no
        longer waiting leave it, rows it has not scheduled (or whose due time was rewritten)
        get a deadline from their due time, clamped to [0, max_wait_s] from now."""
        with self.lock:
            now = self.monotonic()
            for file_id in list(self.deadlines):
                if file_id not in waiting:
                    del self.deadlines[file_id]
                    self.written.pop(file_id, None)
            for file_id, due in waiting.items():
                if self.written.get(file_id) == due:
                    continue
                self.deadlines[file_id] = now + self._clamped(due, wall_now)
                self.written[file_id] = due

    def _clamped(self, due: str, wall_now: datetime) -> float:
        try:
            seconds = (datetime.fromisoformat(due) - wall_now).total_seconds()
        except (TypeError, ValueError):
            return 0.0  # unreadable: due now rather than never
        return min(self.max_wait_s, max(0.0, seconds))

    def not_due(self) -> set[int]:
        with self.lock:
            now = self.monotonic()
            return {file_id for file_id, at in self.deadlines.items() if at > now}

    def seconds_to_next(self) -> float | None:
        """Until the earliest deadline (0.0 when one has passed); None when nothing waits."""
        with self.lock:
            if not self.deadlines:
                return None
            return max(0.0, min(self.deadlines.values()) - self.monotonic())
