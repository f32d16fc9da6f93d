"""Retry timing (agent.sync.schedule): which failures are retried within seconds, and how long
the short waits and the backoffs between attempts are."""

from __future__ import annotations

import errno

import pytest

from agent.core.errors import (
    UploadConflict,
    UploadMismatch,
    UploadRefused,
    UploadRetryable,
    UploadTlsFailed,
)
from agent.sync.schedule import (
    BACKOFF_BASE_S,
    SHORT_WAIT_MAX_S,
    backoff_s,
    short_wait_s,
    worth_a_short_retry,
)


def _retryable(after: float | None) -> UploadRetryable:
    exc = UploadRetryable(server="tus", problem="PATCH answered 503")
    exc.retry_after = after
    return exc


def test_only_a_passing_failure_within_the_short_range_is_retried_in_seconds() -> None:
    assert worth_a_short_retry(_retryable(None))
    assert worth_a_short_retry(_retryable(SHORT_WAIT_MAX_S))
    assert not worth_a_short_retry(_retryable(SHORT_WAIT_MAX_S + 1))  # deferred instead
    assert worth_a_short_retry(UploadConflict(server="tus", problem="409"))
    assert worth_a_short_retry(OSError(errno.ECONNRESET, "reset"))
    # A certificate problem is retryable, but not within seconds.
    assert not worth_a_short_retry(UploadTlsFailed(server="tus", problem="expired"))
    assert not worth_a_short_retry(UploadRefused(server="tus", problem="403"))
    assert not worth_a_short_retry(UploadMismatch(server="tus", problem="digest"))
    assert not worth_a_short_retry(ValueError("bug"))


def test_short_waits_double_and_never_undercut_retry_after() -> None:
    assert [short_wait_s(n, None, 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert short_wait_s(1, None, 0.25) == 0.75
    assert short_wait_s(40, None, 0.0) == SHORT_WAIT_MAX_S
    assert short_wait_s(1, 7.0, 0.4) == 7.0


@pytest.mark.parametrize(("unit", "factor"), [(0.0, 0.5), (0.5, 0.75), (0.999, 0.9995)])
def test_backoff_doubles_to_the_cap_and_keeps_at_least_half(unit: float, factor: float) -> None:
    cap = 3600.0
    assert backoff_s(1, None, cap, unit) == pytest.approx(BACKOFF_BASE_S * factor)
    assert backoff_s(3, None, cap, unit) == pytest.approx(4 * BACKOFF_BASE_S * factor)
    assert backoff_s(0, None, cap, unit) == pytest.approx(BACKOFF_BASE_S * factor)
    assert backoff_s(500, None, cap, unit) == pytest.approx(cap * factor)


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    assert backoff_s(1, 600.0, 3600.0, 0.0) == 600.0
    assert backoff_s(1, 10_000.0, 3600.0, 0.0) == 3600.0
    assert backoff_s(1, 1.0, 3600.0, 0.0) == BACKOFF_BASE_S / 2
