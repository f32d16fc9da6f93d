"""Frozen records passed between stages, and the file state machine.

Pure data: no I/O, no SQL, no logging. Everything above may import this; it imports nothing
of the agent.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

# A camera serial, in DEVICE.INF and on USB (camera-layout.md): 1-32 of A-Z a-z 0-9 -.
SERIAL_PATTERN = re.compile(r"[A-Za-z0-9-]{1,32}\Z")  # use with fullmatch


class FileState(enum.StrEnum):
    DISCOVERED = "discovered"  # seen on the camera, not yet copied
    COPYING = "copying"  # claimed by a copy worker
    STAGED = "staged"  # durable in staging, sha256 of the camera read recorded
    SEALED = "sealed"  # signed custody record committed, sidecar written
    UPLOADING = "uploading"
    CONFIRMED = "confirmed"
    HELD = "held"  # permanent problem, a technician acts
    CORRUPT = "corrupt"  # staged copy no longer matches its hash
    FAILED = "failed"  # could not be read from the camera; reason on the row, retried next dock


# DESIGN.md "File states"; FAILED is ours: a camera read that failed permanently for this dock
# (e.g. the file changed while read) stays visible as data instead of looping.
ALLOWED_TRANSITIONS: dict[FileState, frozenset[FileState]] = {
    FileState.DISCOVERED: frozenset({FileState.COPYING}),
    FileState.COPYING: frozenset({FileState.STAGED, FileState.DISCOVERED, FileState.FAILED}),
    # A failed file that changed on the camera (size or time) is listed anew.
    FileState.FAILED: frozenset({FileState.COPYING, FileState.DISCOVERED}),
    FileState.STAGED: frozenset({FileState.SEALED, FileState.CORRUPT}),
    FileState.SEALED: frozenset({FileState.UPLOADING, FileState.CORRUPT}),
    FileState.UPLOADING: frozenset({FileState.CONFIRMED, FileState.SEALED, FileState.HELD}),
    FileState.CONFIRMED: frozenset(),
    FileState.HELD: frozenset({FileState.SEALED}),
    FileState.CORRUPT: frozenset(),
}

# The states by group, so no module lists them by hand (and no two lists disagree).

# Held by the station (or beyond): the signed record is committed, whatever became of the
# upload since. A held upload is still evidence in custody; only the sink refused it. What a
# technician reads as "sealed" (`dockagent devices`), and what a wipe after sealing asks for.
CUSTODY_STATES = frozenset(
    {FileState.SEALED, FileState.UPLOADING, FileState.CONFIRMED, FileState.HELD}
)
# In staging, and no sink has confirmed it yet: what would be lost with this station's disk.
AWAITING_UPLOAD = frozenset(
    {FileState.STAGED, FileState.SEALED, FileState.UPLOADING, FileState.HELD}
)
# The upload queue: sealed rows waiting, rows being sent, rows a technician must release.
UPLOAD_QUEUE = frozenset({FileState.SEALED, FileState.UPLOADING, FileState.HELD})
# What `dockagent verify` checks against the chain: every row in custody, and rows found corrupt.
CHECKED_BY_VERIFY = CUSTODY_STATES | {FileState.CORRUPT}
# Files not copied yet, which a copy worker may claim.
AWAITING_COPY = (FileState.DISCOVERED, FileState.FAILED)


def transition_allowed(old: FileState, new: FileState) -> bool:
    return new in ALLOWED_TRANSITIONS[old]


# ---- dock sessions -----------------------------------------------------------------------


class SessionOutcome(enum.StrEnum):
    """How a dock session ended, as its row says (`sessions.outcome`)."""

    RUNNING = "running"  # opened, still taking the camera in (the column's default)
    COMPLETE = "complete"  # every file listed is in custody
    INCOMPLETE = "incomplete"  # ended with files not in custody; the problems say which
    FAILED = "failed"  # ended by an error before the files were taken in
    INTERRUPTED = "interrupted"  # the station stopped while it ran (set at the next start)
    REBUILT = "rebuilt"  # restored by `dockagent rebuild` from the signed records

    @classmethod
    def read(cls, text: str) -> SessionOutcome:
        """The outcome a row holds. A value this version does not know (written by a newer
        agent, or by hand) is kept as an outcome of its own, equal to its text and known to no
        test of a member, so a reader shows what the row says instead of failing on it."""
        try:
            return cls(text)
        except ValueError:
            unknown = str.__new__(cls, text)
            unknown._name_ = "UNKNOWN"
            unknown._value_ = text
            return unknown


# ---- end of dock sessions ----------------------------------------------------------------


class FileKind(enum.StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    PHOTO = "photo"
    OTHER = "other"


class WipePolicy(enum.StrEnum):
    NEVER = "never"
    AFTER_SEAL = "after_seal"
    AFTER_CONFIRM = "after_confirm"


@dataclass(frozen=True)
class DeviceInfo:
    """What DEVICE.INF says about a camera (camera-layout.md)."""

    serial: str
    vendor: str = ""
    model: str = ""
    firmware: str = ""
    officer_id: str = ""
    unit: str = ""
    # From a vendor SCSI device record (agent.devices.dialects), when the camera gives one:
    # names as the camera holds them, and its charge in percent (None: not known).
    officer_name: str = ""
    unit_name: str = ""
    battery_pct: int | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A regular file found on a camera volume, identified as it was when listed."""

    rel_path: bytes  # path below the volume root, as raw bytes
    size: int
    mtime_ns: int
    dev: int
    ino: int
    kind: FileKind
    recorded_start: str  # camera-local wall time "YYYY-MM-DDThh:mm:ss" or ""
    recorded_end: str  # camera-local wall time from mtime, or ""
    segment: int | None
    important: bool
    wipeable: bool  # a recording below the record directory (never metadata or logs)
    # Added with camera profile format 2 (agent.camera.profile_classify):
    channel: str = ""  # the lens of a multi-channel camera the name says ("F", "R"...), or ""
    partner_of: bytes = b""  # a partner file's clip (`<stem>.MOV` of `<stem>.THM`), or b""
    note: str = ""  # why the profile classified it so, for a person ("" for a recording)
    marked_by: str = ""  # what made it important: "folder", "suffix", "sidecar", or ""


class ProblemKind(enum.StrEnum):
    """What went wrong with one file, for code to test; the reason beside it is for a person.

    Kept on the file row (`reason_kind`, beside `reason`) and on an import's problems (`kind`).
    """

    NOT_TAKEN = "not_taken"  # the scan found an entry that is not a regular file we can take
    READ_FAILED = "read_failed"  # the camera read failed (permanently, for this dock)
    SOURCE_CHANGED = "source_changed"  # the file changed while it was read
    CAMERA_GONE = "camera_gone"  # the camera left while the file was copied
    STAGING_FULL = "staging_full"  # the station ran out of staging space
    SHUTTING_DOWN = "shutting_down"  # the station stopped before copying it
    STAGING_WRITE_FAILED = "staging_write_failed"  # the station could not make the copy durable
    COPY_INTERRUPTED = "copy_interrupted"  # a copy claimed by a process that is gone
    CORRUPT = "corrupt"  # the staged copy no longer matches the hash read from the camera
    UPLOAD_INTERRUPTED = "upload_interrupted"
    UPLOAD_DEFERRED = "upload_deferred"  # retried after a backoff
    UPLOAD_HELD = "upload_held"  # refused for good; a technician acts
    UPLOAD_UNCONFIRMABLE = "upload_unconfirmable"  # the sink cannot confirm at the level asked
    CHANGED_ON_CAMERA = "changed_on_camera"  # not wiped: the camera's file is not the one held
    WIPE_FAILED = "wipe_failed"  # not wiped: the camera refused the removal
    OTHER = "other"  # a reason written without a kind


# Problems that are the station's, not the camera's: they are no device fault.
STATION_SIDE = frozenset(
    {ProblemKind.STAGING_FULL, ProblemKind.SHUTTING_DOWN, ProblemKind.STAGING_WRITE_FAILED}
)


@dataclass(frozen=True)
class Problem:
    """One finding about one file or record, as data: a kind other code can test, and a reason
    a person reads. The one shape of a per-file or per-record problem (verify, scan, rows)."""

    kind: str  # changed_bytes | missing_file | missing_record | chain_broken | bad_signature | ...
    detail: str
    file_id: int | None = None
    seq: int | None = None
    camera_name: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class ScanProblem:
    """Something on the volume that is not a regular file we can take, with the reason."""

    rel_path: bytes
    reason: str


@dataclass(frozen=True)
class ScanResult:
    # In path order; the scan's is a compact agent.camera.listing.Listing.
    candidates: Sequence[Candidate]
    problems: tuple[ScanProblem, ...]
    dirs: int
    # Files the camera profile ignores (its `layout.ignore`), each with the reason: accounted
    # for, not evidence; never copied, never wiped.
    ignored: tuple[ScanProblem, ...] = ()


@dataclass(frozen=True)
class StagedCopy:
    """A durable copy in staging and the hash of what was read from the camera."""

    staged_rel: str  # path below the staging root
    sha256: str
    size: int
    # Where the copy is encrypted to the central key (age): the SHA-256 and size of the bytes
    # written, which differ from the camera's above. None: the copy is the camera's bytes.
    stored_sha256: str | None = None
    stored_size: int | None = None

    @property
    def file_size(self) -> int:
        """The size of the staged file itself."""
        return self.size if self.stored_size is None else self.stored_size


@dataclass
class ImportSummary:
    """What one import (dock session) did; the CLI prints it and the exit code follows it."""

    session_id: int
    device_serial: str
    officer_id: str
    source: str
    files_found: int = 0
    files_new: int = 0
    files_already_held: int = 0
    files_sealed: int = 0
    bytes_copied: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    wipe: dict[str, object] = field(default_factory=dict)
    # Files the camera's profile ignores (`layout.ignore`): accounted for, not evidence.
    ignored: list[dict[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems

    def add_problem(self, file: str, reason: str, kind: ProblemKind) -> None:
        """A file of this import that is not sealed: its name, the reason, and its kind."""
        self.problems.append({"file": file, "reason": reason, "kind": kind.value})


_BIDI_AND_CONTROL = {"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"}


def display_name(raw: bytes | str) -> str:
    """Render a hostile file name safely for logs and terminals.

    Undecodable bytes become \\xNN, control characters, bidi overrides and other invisible
    format characters become \\uXXXX, and a backslash is doubled, so the result shows every
    byte of the original and cannot move a terminal's cursor or reorder text.
    """
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in _BIDI_AND_CONTROL:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)
