"""The rows the health and ledger queries return (agent.store.health), each built in one place.

Frozen records of what the database holds, with the columns' defaults; JSON columns stay the
text they are stored as, with a method that reads them. `as_dict` gives the columns by name
where a command prints the row whole (ledger and history JSON, the fault register CSV). No
queries and no judgement of the values here.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.store.sessions import SessionRow

_Row = TypeVar("_Row")


def _build(cls: type[_Row], row: sqlite3.Row, prefix: str = "") -> _Row:
    """A row dataclass from the columns of the same names (`prefix`: their names in a join)."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]  # a dataclass
    return cls(**{name: row[prefix + name] for name in names})


@dataclass(frozen=True, slots=True)
class HealthRow:
    """A dock's health record (`session_health`): clock, officer, battery, storage, readiness."""

    session_id: int
    device_serial: str
    docked_at: str
    camera_connect_at: str = ""
    clock_drift_s: int | None = None
    clock_detail: str = ""
    station_clock: str = ""
    station_synced: int | None = None
    station_esterror_us: int | None = None
    clock_correction: str = ""
    clock_correction_detail: str = ""
    correction_check: str = ""
    correction_check_detail: str = ""
    drift_rate_s_per_day: float | None = None
    drift_flagged: int = 0
    drift_trend: str = ""
    officer_on_camera: str = ""
    officer: str = ""
    officer_source: str = ""
    officer_mismatch: str = ""
    battery_verdict: str = ""
    battery: str = "{}"  # JSON: BatteryReport.as_dict()
    system_log: str = "{}"  # JSON: ParsedLog.summary()
    storage_free_bytes: int | None = None
    storage_capacity_bytes: int | None = None
    readiness: str = ""
    readiness_reasons: str = "[]"  # JSON: a list of Reason.as_dict()
    updated_at: str = ""
    # When the verdict was last judged (at the dock, then again while the camera stayed
    # docked), and whether it is final (the camera was undocked).
    readiness_at: str = ""
    readiness_final: int = 0

    @classmethod
    def from_row(cls, row: sqlite3.Row, prefix: str = "") -> HealthRow:
        return _build(cls, row, prefix)

    def battery_report(self) -> dict[str, Any]:
        """The battery assessment kept at the dock ({} when none was kept)."""
        data: dict[str, Any] = json.loads(self.battery or "{}")
        return data

    def reasons(self) -> list[dict[str, Any]]:
        """The readiness reasons kept at the dock: severity, area, text."""
        data: list[dict[str, Any]] = json.loads(self.readiness_reasons or "[]")
        return data


HEALTH_COLUMNS = tuple(f.name for f in dataclasses.fields(HealthRow))


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """A dock session with its health record (None for a session that has none)."""

    session: SessionRow
    health: HealthRow | None


@dataclass(frozen=True, slots=True)
class FileStats:
    """The files first taken in a session: count, bytes, recorded span (raw and corrected)."""

    files: int
    bytes: int
    first_raw: str | None
    last_raw: str | None
    first_corrected: str | None
    last_corrected: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FileStats:
        return _build(cls, row)


@dataclass(frozen=True, slots=True)
class Recording:
    """A file row with a recording time, with its first session's docking and officer."""

    id: int
    session_id: int
    device_serial: str
    camera_name: str
    kind: str
    size: int
    state: str
    reason: str
    segment: int | None
    important: int
    recorded_start: str
    recorded_end: str
    recorded_start_corrected: str
    recorded_end_corrected: str
    clock_drift_s: int | None
    time_basis: str
    retention_class: str
    staged_at: str | None
    sealed_at: str | None
    sha256: str | None
    docked_at: str
    officer_on_camera: str  # the session's DEVICE.INF badge

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Recording:
        return _build(cls, row)


RECORDING_COLUMNS = tuple(f.name for f in dataclasses.fields(Recording))


@dataclass(frozen=True, slots=True)
class CameraEvent:
    """A camera log line kept once (`camera_events`), with its session's docking and officer."""

    id: int
    device_serial: str
    session_id: int
    camera_time: str
    corrected_time: str
    event: str
    fields: dict[str, str]  # the line's key=value fields
    line: str
    docked_at: str
    officer_on_camera: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CameraEvent:
        names = [f.name for f in dataclasses.fields(cls)]
        values = {name: row[name] for name in names}
        values["fields"] = json.loads(values["fields"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class FaultRow:
    """A fault registered at a dock (`faults`): what, how bad, found by which check."""

    id: int
    device_serial: str
    session_id: int | None
    at: str
    source: str
    code: str
    severity: str
    detail: str
    camera_time: str = ""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FaultRow:
        return _build(cls, row)

    def as_dict(self) -> dict[str, object]:
        """Every column by name (the fault register's JSON and CSV, a camera's history)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    """A handover (`assignments`): the camera's officer from `assigned_at` on, and who did it."""

    id: int
    device_serial: str
    officer_id: str
    previous_officer: str
    assigned_at: str
    assigned_by: str
    record_seq: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> AssignmentRow:
        return _build(cls, row)

    def as_dict(self) -> dict[str, object]:
        """Every column by name (the ledger's and a camera's history JSON)."""
        return dataclasses.asdict(self)
