"""Retry timing: how long each wait is, and when each waiting file may be tried again.

Two kinds of wait. Within one attempt, a failure that passes in seconds is retried after a
short, jittered wait (short_wait_s), never sooner than the server's Retry-After; whether a
failure is worth that is agent.core.errors.classify's decision first (worth_a_short_retry only
adds the timing: the error's own short_retry flag and a Retry-After within the short range).
Between attempts, a deferred file waits a jittered exponential backoff (backoff_s).

A deferred file's backoff is measured with agent.core.wallclock.monotonic(), which a step of the
station's wall clock cannot move: a clock set back two days does not stall it, one set forward
does not fire it early. The wall-clock due time on the row (next_attempt_at) is for people and
restarts only: a due time without monotonic history here (after a restart, or written by
another process) counts from the moment it is first seen, clamped to between 0 and the longest
backoff, so a wrong clock can stall a file for at most that long. No SQL and no I/O here, and
no random source: the caller draws the jitter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from agent.core import wallclock
from agent.core.errors import ErrorKind, classify

# A short retry waits at most this long; a longer Retry-After defers the file instead.
SHORT_WAIT_MAX_S = 30.0
# First long backoff after a failed attempt; doubles per attempt up to retry_max_delay_s.
BACKOFF_BASE_S = 30.0
# The short waits' jitter is drawn from [0, SHORT_JITTER_S).
SHORT_JITTER_S = 0.5


def worth_a_short_retry(exc: BaseException) -> bool:
    """Whether to retry within seconds, inside the same attempt (else: defer or hold)."""
    if classify(exc) is not ErrorKind.RETRYABLE:
        return False
    if not getattr(exc, "short_retry", True):
        return False
    after = getattr(exc, "retry_after", None)
    return after is None or after <= SHORT_WAIT_MAX_S


def short_wait_s(attempt: int, retry_after: float | None, jitter_s: float) -> float:
    """Exponential backoff with jitter (0.5 s, 1 s, 2 s, ... plus `jitter_s`), but never
    sooner than the server's Retry-After (RFC 9110 section 10.2.3). `attempt` counts from 1."""
    step = 0.5 * 2.0 ** min(16, attempt - 1)
    return max(float(retry_after or 0.0), min(SHORT_WAIT_MAX_S, step) + jitter_s)


def backoff_s(attempts: int, retry_after: float | None, cap_s: float, unit: float) -> float:
    """The wait before a deferred file's next attempt: doubling from BACKOFF_BASE_S up to
    `cap_s`, scaled by 0.5 + unit/2 (`unit` drawn from [0, 1): full jitter would allow ~0, so
    half is kept), never below the server's Retry-After (itself capped)."""
    delay = min(cap_s, BACKOFF_BASE_S * 2.0 ** min(30, max(0, attempts - 1)))
    delay *= 0.5 + unit / 2
    return max(delay, min(cap_s, retry_after or 0.0))


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
