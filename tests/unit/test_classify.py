"""agent.core.errors.classify: the one place that decides whether retrying may succeed.

Retryable: what passes with time or the next dock (a locked database, full staging, a camera
pulled out, a network that comes back). Permanent: what retrying the same work cannot change
(refused, mismatched, corrupt, a bug): retrying it would loop, or hide a loss.
"""

from __future__ import annotations

import errno
import sqlite3

import pytest

from agent.core import errors
from agent.core.errors import ErrorKind, classify

RETRYABLE = ErrorKind.RETRYABLE
PERMANENT = ErrorKind.PERMANENT


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (errors.StoreBusy(path="/data/dockagent.db"), RETRYABLE),
        (errors.StagingFull(path="/data/staging", free=0, needed=1), RETRYABLE),
        (errors.StagingRanOut(path="/data/staging", file="A.MP4", detail="", sealed=3), RETRYABLE),
        (errors.AlreadyRunning(path="/data/lock", pid=1), RETRYABLE),
        (errors.UploadRetryable(server="tus", problem="503"), RETRYABLE),
        (errors.UploadLost(server="tus", problem="reset"), RETRYABLE),
        (errors.UploadConflict(server="tus", problem="409"), RETRYABLE),
        (errors.UploadGone(server="tus", problem="410"), RETRYABLE),
        (errors.UploadTlsFailed(server="tus", problem="expired"), RETRYABLE),
        (errors.UploadRefused(server="tus", problem="401"), PERMANENT),
        (errors.UploadMismatch(server="tus", problem="other bytes"), PERMANENT),
        (
            errors.UploadUnconfirmable(server="tus", wanted="verified", problem="no digest"),
            PERMANENT,
        ),
        (errors.StagedCopyChanged(path="x", actual="a", expected="b"), PERMANENT),
        (errors.ConfigError(where="[sync]", problem="bad"), PERMANENT),
        (errors.StoreCorrupt(), PERMANENT),
        (errors.CameraRefused(path="/media/cam", problem="not enrolled"), PERMANENT),
        (
            errors.TransitionRefused(file_id=1, old="sealed", new="copying", actual="sealed"),
            PERMANENT,
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.value,
)
def test_the_agents_own_errors_carry_their_kind(exc: BaseException, kind: ErrorKind) -> None:
    assert classify(exc) is kind


@pytest.mark.parametrize(
    "code",
    [
        errno.EAGAIN,
        errno.EINTR,
        errno.EBUSY,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ETIMEDOUT,
        errno.ENODEV,
        errno.ENXIO,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EIO,
    ],
    ids=errno.errorcode.get,
)
def test_os_errors_that_pass_with_time_or_the_next_dock_are_retryable(code: int) -> None:
    assert classify(OSError(code, "x")) is RETRYABLE


@pytest.mark.parametrize(
    "code",
    [errno.EACCES, errno.EPERM, errno.ENOENT, errno.ELOOP, errno.EROFS, errno.EINVAL],
    ids=errno.errorcode.get,
)
def test_os_errors_retrying_cannot_change_are_permanent(code: int) -> None:
    assert classify(OSError(code, "x")) is PERMANENT


def test_timeouts_and_broken_connections_are_retryable() -> None:
    assert classify(TimeoutError()) is RETRYABLE
    assert classify(ConnectionResetError()) is RETRYABLE
    assert classify(BrokenPipeError()) is RETRYABLE


def test_a_locked_database_is_retryable_other_database_errors_are_not() -> None:
    assert classify(sqlite3.OperationalError("database is locked")) is RETRYABLE
    assert classify(sqlite3.OperationalError("no such table: files")) is PERMANENT
    assert classify(sqlite3.DatabaseError("database disk image is malformed")) is PERMANENT


def test_anything_else_is_permanent() -> None:
    assert classify(ValueError("bad")) is PERMANENT
    assert classify(KeyError("x")) is PERMANENT
    assert classify(OSError("no errno")) is PERMANENT
