"""The one error hierarchy of the agent, and the one place where failures are classified.

Each fatal error's docstring is its message template and each class carries its exit code
(sysexits(3) numbers, so systemd's RestartPreventExitStatus= can single out config errors).
Per-file problems are not raised to the top: they become a state and a reason on the row.
This module imports nothing from the agent.
"""

from __future__ import annotations

import enum
import errno
import sqlite3
from typing import Any

# sysexits(3)
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78

# Outcomes that are not errors of the agent but findings about the evidence.
EXIT_INCOMPLETE = 3  # an import left files of the camera unsealed (reasons on the rows)
EXIT_VERIFY_FAILED = 4  # verify found a problem with staged evidence or the chain
EXIT_REBUILD_INCOMPLETE = 5  # rebuild could not make the chain whole (each gap is named)


class ErrorKind(enum.Enum):
    RETRYABLE = "retryable"
    PERMANENT = "permanent"


class AgentError(Exception):
    """An error of the agent."""

    exit_code = EX_SOFTWARE
    kind = ErrorKind.PERMANENT

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        template = (type(self).__doc__ or "").strip().splitlines()[0]
        try:
            message = template.format(**fields)
        except (KeyError, IndexError):
            message = f"{template} {fields!r}"
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class SourceChanged(AgentError):
    """{detail}"""

    # A camera file that changed under the copy (the camera still writing it, a clock reset
    # reusing its name) is taken again at the next pass: retrying may succeed.
    kind = ErrorKind.RETRYABLE


class ConfigError(AgentError):
    """configuration {where}: {problem}"""

    exit_code = EX_CONFIG


class StoreCorrupt(AgentError):
    """the database {path} is damaged ({detail}); refusing to run. The evidence in staging and its signed sidecars are not touched: run `dockagent rebuild` to rebuild the database from them (or restore it from a backup)."""  # noqa: E501

    exit_code = EX_DATAERR


class StoreMissing(AgentError):
    """the database {path} is {detail}, but this data directory was initialised before (marker {marker}); refusing to start with an empty queue over lost state. Run `dockagent rebuild` to rebuild it from the signed sidecars (or restore it from a backup)."""  # noqa: E501

    exit_code = EX_DATAERR


class StoreBehind(AgentError):
    """the database {path} lacks committed changes: {detail}. It was restored from an old copy or copied without its -wal file; refusing to run over lost state. Run `dockagent rebuild` to rebuild it from the signed sidecars."""  # noqa: E501

    exit_code = EX_DATAERR


class ChainDamaged(AgentError):
    """the custody chain in the database {path} is damaged at record {seq} ({problem}); refusing to run. `dockagent verify` names every problem; run `dockagent rebuild` to rebuild the database from the signed sidecars."""  # noqa: E501

    exit_code = EX_DATAERR


class StoreMismatch(AgentError):
    """the database {path} belongs to another data directory (store id {found}, expected {expected}); refusing to run."""  # noqa: E501

    exit_code = EX_DATAERR


class StoreTooNew(AgentError):
    """the database {path} has schema version {found}, newer than this agent understands ({supported}); upgrade dockagent."""  # noqa: E501

    exit_code = EX_DATAERR


class StoreBusy(AgentError):
    """the database {path} is locked by another process for too long; try again."""

    exit_code = EX_TEMPFAIL
    kind = ErrorKind.RETRYABLE


class TransitionRefused(AgentError):
    """file {file_id}: refused transition {old} -> {new} (row is {actual})"""

    exit_code = EX_SOFTWARE


class StationKeyError(AgentError):
    """station key {path}: {problem}"""

    exit_code = EX_CONFIG


class CameraUnreadable(AgentError):
    """camera at {path}: {problem}"""

    exit_code = EX_NOINPUT


class CameraRefused(AgentError):
    """camera at {path} refused: {problem}"""

    exit_code = EX_NOPERM


class StagingFull(AgentError):
    """staging {path} has {free} bytes free above the reserve, the camera needs {needed}; nothing was copied and nothing was wiped. Free space (or wait for uploads to be confirmed and purged) and import again."""  # noqa: E501

    exit_code = EX_TEMPFAIL
    kind = ErrorKind.RETRYABLE


class StagingRanOut(StagingFull):
    """staging {path} ran out of space while copying {file} ({detail}); {sealed} files of this import were sealed before it and are held, the others were not copied and nothing was wiped. Free space (or wait for uploads to be confirmed and purged) and import again."""  # noqa: E501


class AlreadyRunning(AgentError):
    """another dockagent process holds {path} (pid {pid}); try again when it has finished."""

    exit_code = EX_TEMPFAIL
    kind = ErrorKind.RETRYABLE


class UsageError(AgentError):
    """{problem}"""

    exit_code = EX_USAGE


class ForeignConfig(AgentError):
    """{problem}"""

    # A command that moves custody under another configuration than the station's own
    # (agent.core.config.station): not permitted without root's explicit override.
    exit_code = EX_NOPERM


class UploadRetryable(AgentError):
    """upload to {server}: {problem}"""

    exit_code = EX_TEMPFAIL
    kind = ErrorKind.RETRYABLE
    # Seconds the server asked us to wait (Retry-After, RFC 9110 section 10.2.3), if it did.
    retry_after: float | None = None
    # Worth retrying within seconds (tenacity); False: only after a longer backoff.
    short_retry = True


class UploadLost(UploadRetryable):
    """upload to {server}: {problem}; the server may or may not hold the last chunk"""


class UploadGarbled(UploadLost):
    """upload to {server}: {problem}; the answer broke the protocol"""


class UploadConflict(UploadRetryable):
    """upload to {server}: {problem}"""


class UploadGone(UploadRetryable):
    """upload to {server}: {problem}; starting a new upload"""


class UploadUnprovable(UploadRetryable):
    """upload to {server}: {problem}; the upload was terminated and the file is sent again"""

    # A complete upload the server did not prove at confirm_level, by a server that has proven
    # others (it lost this one's Repr-Digest): a new upload may be proven. Not within seconds:
    # the file waits for the pool's backoff, and the bound on it is tus_sink's.
    short_retry = False


class UploadTlsFailed(UploadRetryable):
    """TLS with {server} failed: {problem}"""

    # A certificate problem does not pass in seconds; it waits for the server or the
    # configuration to be fixed, and the file is not at fault, so it is not held.
    short_retry = False


class UploadRefused(AgentError):
    """upload refused by {server}: {problem}"""

    exit_code = EX_UNAVAILABLE


class UploadMismatch(AgentError):
    """{server} holds something else than this file: {problem}"""

    exit_code = EX_DATAERR


class UploadUnconfirmable(AgentError):
    """{server} cannot confirm at level {wanted}: {problem}"""

    exit_code = EX_CONFIG


class StagedCopyChanged(AgentError):
    """staged copy {path} hashes {actual}, sealed as {expected}; not confirmed anywhere"""

    exit_code = EX_DATAERR


class TsaFailed(AgentError):
    """time-stamp authority {server}: {problem}"""

    # A TSA that cannot be reached or answers badly now may answer later: the chain head waits
    # for its token (the gap shows in status and doctor) and is asked for again.
    exit_code = EX_TEMPFAIL
    kind = ErrorKind.RETRYABLE


# errno values that describe a passing condition: the same operation may succeed later.
_RETRYABLE_ERRNOS = frozenset(
    {
        errno.EAGAIN,
        errno.EINTR,
        errno.EBUSY,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ETIMEDOUT,
        errno.ENODEV,  # device went away (camera unplugged): next dock retries
        errno.ENXIO,
        errno.ENOTCONN,  # FUSE daemon gone: camera unplugged
        errno.ESHUTDOWN,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EIO,  # a failed read on a camera is retried at the next dock; a fault is registered
    }
)


def classify(exc: BaseException) -> ErrorKind:
    """Decide once whether retrying the same work later may succeed.

    Every retry decision of the agent, short (seconds) or long (next dock), goes through here.
    """
    if isinstance(exc, AgentError):
        return exc.kind
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return ErrorKind.RETRYABLE
    if isinstance(exc, TimeoutError | ConnectionError):
        return ErrorKind.RETRYABLE
    if isinstance(exc, OSError) and exc.errno in _RETRYABLE_ERRNOS:
        return ErrorKind.RETRYABLE
    return ErrorKind.PERMANENT


def describe(exc: BaseException) -> str:
    """A one-line reason for a row or a message: the errno name where there is one."""
    if isinstance(exc, AgentError):
        return exc.message
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{name}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


class DeviceCommandRetryable(AgentError):
    """SCSI command {command} to {device}: {problem}"""

    # The device did not answer in time, was busy or not ready, or went away: the next dock
    # (or, for a read, one more try) may succeed.
    exit_code = EX_TEMPFAIL
    kind = ErrorKind.RETRYABLE


class DeviceCommandFailed(AgentError):
    """SCSI command {command} to {device}: {problem}"""

    # The device refused the command or answered with what the dialect cannot accept (wrong
    # length, garbage): the same command will get the same answer.
    exit_code = EX_IOERR


class UnlockRefused(CameraRefused):
    """camera at {path} refused: {problem}"""

    # The vendor unlock found a reason not to take the camera (password, SD card, identity):
    # nothing was taken or wiped. Never carries the device's password.


class UnlockFailed(CameraRefused):
    """camera at {path}: unlock failed ({verdict}): {problem}"""

    # What became of the vendor unlock after its attempts: the verdict says whether the last
    # failure was retryable (and how many attempts were made) or permanent (not retried).


class InputRefused(AgentError):
    """{problem}"""

    # sysexits(3) EX_DATAERR: the input data was incorrect in some way.
    exit_code = EX_DATAERR


class UnknownDevice(AgentError):
    """{serial} is not a camera this station knows (never enrolled, never docked)"""

    # sysexits(3) EX_NOINPUT: the input named does not exist.
    exit_code = EX_NOINPUT
