"""The typed rows the store hands out: a file row, a row it cannot read, counts per state.

A `files` row becomes a FileRow in one place (file_row), with the columns of the latest
migration (schema.py) and their types; a column a database not yet migrated lacks takes the
default its migration gives it. A value no agent writes (a state that is no FileState, a size
that is not a number) is never guessed at: file_row raises ValueError naming it,
checked_file_row turns that into StoreCorrupt for a reader, and the store's all_files into an
UnreadableFile for `dockagent verify`, which names damage. No SQL is run and nothing written here.
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import MISSING, dataclass, fields
from typing import TypeVar

from agent.core.errors import StoreCorrupt
from agent.core.model import FileKind, FileState, ProblemKind

_E = TypeVar("_E", bound=enum.Enum)
# The fields of a FileRow kept in the file_classes table, not in files (0013).
CLASS_FIELDS = ("channel", "partner_of", "class_note")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRow:
    """One row of `files`, as of the latest migration. Defaults are the schema's DEFAULTs (and
    NULL for a nullable column), so a row built here is the row an INSERT of it would make."""

    # 0001_initial
    id: int
    session_id: int
    last_session_id: int  # the latest dock session that saw it on the camera
    device_serial: str
    camera_path: bytes  # below the volume root, raw bytes as the camera holds them
    camera_name: str  # camera_path made safe to show (model.display_name)
    size: int
    mtime_ns: int
    kind: FileKind
    recorded_start: str = ""
    recorded_end: str = ""
    segment: int | None = None
    important: bool = False
    wipeable: bool = False
    state: FileState
    reason: str = ""
    sha256: str | None = None
    staged_path: str | None = None  # below the staging root
    record_seq: int | None = None
    attempts: int = 0
    claimed_by: str | None = None
    discovered_at: str
    staged_at: str | None = None
    sealed_at: str | None = None
    wipe_started_at: str | None = None
    wiped_at: str | None = None
    updated_at: str
    # 0003_uploads
    upload_sink: str | None = None
    upload_url: str | None = None
    upload_expires_at: str | None = None
    upload_offset: int = 0
    upload_checksummed: bool = True
    upload_started_at: str | None = None
    upload_progress_at: str | None = None
    upload_attempts: int = 0
    next_attempt_at: str | None = None
    last_error: str = ""
    confirmed_at: str | None = None
    confirm_level: str | None = None
    sink_ref: str | None = None
    purged_at: str | None = None
    # 0004_health
    clock_drift_s: int | None = None
    recorded_start_corrected: str = ""
    recorded_end_corrected: str = ""
    time_basis: str = ""
    retention_class: str = ""
    # 0005_confirm_boot_clock
    confirmed_clock: str | None = None
    confirmed_boottime_s: float | None = None
    # 0006_reason_kind: None where no reason is written
    reason_kind: ProblemKind | None = None
    # 0013_profiles_file_classification: in the file_classes table (CLASS_FIELDS), filled by
    # Store.classified(); file_row() leaves them empty.
    channel: str = ""
    partner_of: bytes | None = None  # the camera path of the clip a partner file belongs to
    class_note: str = ""
    # 0018_age_sealed_copies: the staged copy's own hash and size where it is encrypted
    stored_sha256: str | None = None
    stored_size: int | None = None
    # 0021_reupload_unprovable_uploads: uploads complete but unprovable, sent again since
    unprovable_uploads: int = 0

    @property
    def staged_sha256(self) -> str | None:
        """The SHA-256 of the bytes staging holds: the ciphertext's, or the camera's."""
        return self.stored_sha256 or self.sha256

    @property
    def staged_size(self) -> int:
        """The size of the bytes staging holds: the ciphertext's, or the camera's."""
        return self.size if self.stored_size is None else self.stored_size

    def columns(self) -> dict[str, object]:
        """The row as the table holds it: enums as their values, flags as 0 or 1."""
        out: dict[str, object] = {}
        for f in fields(self):
            if f.name in CLASS_FIELDS:
                continue  # the file_classes table's
            value = getattr(self, f.name)
            if isinstance(value, bool):
                value = int(value)
            elif f.name == "reason_kind":
                value = "" if value is None else value.value
            elif isinstance(value, FileKind | FileState):
                value = value.value
            out[f.name] = value
        return out


@dataclass(frozen=True, slots=True)
class UnreadableFile:
    """A file row holding a value no agent writes (a damaged or hand-edited database)."""

    id: int
    camera_name: str
    state: str  # the state column as it is, known or not
    detail: str  # which column holds what


@dataclass(frozen=True, slots=True)
class StateCount:
    """How many files (and bytes) of one camera or session are in one state."""

    key: str
    state: str  # as the column holds it: a damaged row's state is counted, not hidden
    files: int
    bytes: int


_DEFAULTS: dict[str, object] = {
    f.name: f.default for f in fields(FileRow) if f.default is not MISSING
}


class _Columns:
    """Typed reads of one sqlite3.Row; a column it lacks is the migration's default."""

    def __init__(self, row: sqlite3.Row) -> None:
        self.row = row
        self.names = set(row.keys())

    def _raw(self, name: str) -> object:
        if name in self.names:
            return self.row[name]
        if name in _DEFAULTS:
            return _DEFAULTS[name]
        raise ValueError(f"the column {name} is missing")

    def _bad(self, name: str, value: object) -> ValueError:
        return ValueError(f"{name} holds {value!r}")

    def text(self, name: str) -> str:
        value = self._raw(name)
        if isinstance(value, str):
            return value
        raise self._bad(name, value)

    def text_or_none(self, name: str) -> str | None:
        value = self._raw(name)
        return None if value is None else self.text(name)

    def number(self, name: str) -> int:
        value = self._raw(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self._bad(name, value)

    def number_or_none(self, name: str) -> int | None:
        return None if self._raw(name) is None else self.number(name)

    def flag(self, name: str) -> bool:
        value = self._raw(name)
        if isinstance(value, bool):
            return value
        return bool(self.number(name))

    def real_or_none(self, name: str) -> float | None:
        value = self._raw(name)
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            return None if value is None else float(value)
        raise self._bad(name, value)

    def blob(self, name: str) -> bytes:
        value = self._raw(name)
        if isinstance(value, bytes):
            return value
        raise self._bad(name, value)

    def choice(self, name: str, kind: type[_E]) -> _E:
        value = self._raw(name)
        try:
            return kind(value)
        except ValueError:
            raise self._bad(name, value) from None

    def choice_or_none(self, name: str, kind: type[_E]) -> _E | None:
        """An enum column whose empty text means none (reason_kind)."""
        return None if self._raw(name) in ("", None) else self.choice(name, kind)


def file_row(row: sqlite3.Row) -> FileRow:
    """The one place a `files` row becomes a FileRow; ValueError names a value no agent writes."""
    c = _Columns(row)
    return FileRow(
        id=c.number("id"),
        session_id=c.number("session_id"),
        last_session_id=c.number("last_session_id"),
        device_serial=c.text("device_serial"),
        camera_path=c.blob("camera_path"),
        camera_name=c.text("camera_name"),
        size=c.number("size"),
        mtime_ns=c.number("mtime_ns"),
        kind=c.choice("kind", FileKind),
        recorded_start=c.text("recorded_start"),
        recorded_end=c.text("recorded_end"),
        segment=c.number_or_none("segment"),
        important=c.flag("important"),
        wipeable=c.flag("wipeable"),
        state=c.choice("state", FileState),
        reason=c.text("reason"),
        sha256=c.text_or_none("sha256"),
        staged_path=c.text_or_none("staged_path"),
        record_seq=c.number_or_none("record_seq"),
        attempts=c.number("attempts"),
        claimed_by=c.text_or_none("claimed_by"),
        discovered_at=c.text("discovered_at"),
        staged_at=c.text_or_none("staged_at"),
        sealed_at=c.text_or_none("sealed_at"),
        wipe_started_at=c.text_or_none("wipe_started_at"),
        wiped_at=c.text_or_none("wiped_at"),
        updated_at=c.text("updated_at"),
        upload_sink=c.text_or_none("upload_sink"),
        upload_url=c.text_or_none("upload_url"),
        upload_expires_at=c.text_or_none("upload_expires_at"),
        upload_offset=c.number("upload_offset"),
        upload_checksummed=c.flag("upload_checksummed"),
        upload_started_at=c.text_or_none("upload_started_at"),
        upload_progress_at=c.text_or_none("upload_progress_at"),
        upload_attempts=c.number("upload_attempts"),
        next_attempt_at=c.text_or_none("next_attempt_at"),
        last_error=c.text("last_error"),
        confirmed_at=c.text_or_none("confirmed_at"),
        confirm_level=c.text_or_none("confirm_level"),
        sink_ref=c.text_or_none("sink_ref"),
        purged_at=c.text_or_none("purged_at"),
        clock_drift_s=c.number_or_none("clock_drift_s"),
        recorded_start_corrected=c.text("recorded_start_corrected"),
        recorded_end_corrected=c.text("recorded_end_corrected"),
        time_basis=c.text("time_basis"),
        retention_class=c.text("retention_class"),
        confirmed_clock=c.text_or_none("confirmed_clock"),
        confirmed_boottime_s=c.real_or_none("confirmed_boottime_s"),
        reason_kind=c.choice_or_none("reason_kind", ProblemKind),
        stored_sha256=c.text_or_none("stored_sha256"),
        stored_size=c.number_or_none("stored_size"),
        unprovable_uploads=c.number("unprovable_uploads"),
    )


def checked_file_row(row: sqlite3.Row, db_path: object) -> FileRow:
    """file_row, for a reader that cannot go on past a damaged row: StoreCorrupt names it."""
    try:
        return file_row(row)
    except ValueError as exc:
        raise StoreCorrupt(path=str(db_path), detail=f"file {row['id']}: {exc}") from None


def unreadable_file(row: sqlite3.Row, problem: ValueError) -> UnreadableFile:
    """What can be said of a row file_row refused: its id, its name and its state as held."""
    return UnreadableFile(
        id=int(row["id"]),
        camera_name=str(row["camera_name"]),
        state=str(row["state"]),
        detail=str(problem),
    )
