"""Queries about cameras as devices: enrolment and refusals (what is docked now: sessions.py).

Technician actions recorded here are also written to the audit chain by their callers.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass

from agent.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A camera serial's enrolment (`devices`); revoked_at set once it was revoked."""

    serial: str
    officer_id: str
    profile: str
    enrolled_at: str
    enrolled_by: str
    revoked_at: str | None
    revoked_by: str | None
    # 0007_identity_binding: when this station's binding was written to the camera
    bound_at: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DeviceRow:
        present = set(row.keys())
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls) if f.name in present})

    def as_dict(self) -> dict[str, object]:
        """Every column by name (`dockagent devices enrolled --json`)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class RefusalRow:
    """A device the station refused (`refusals`): when, seen by which source, and why."""

    id: int
    at: str
    source: str
    identity: str
    reason: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RefusalRow:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def as_dict(self) -> dict[str, object]:
        """Every column by name (`dockagent devices --refused --json`)."""
        return dataclasses.asdict(self)


class DeviceQueries(StoreBase):
    def enroll(self, serial: str, officer_id: str, by: str, now: str) -> None:
        """Enrol, or enrol again: a new enrolment forgets the camera's binding, so it is bound
        anew at its next dock (how a reformatted camera is taken back; an audited action)."""
        self.conn.execute(
            "INSERT INTO devices(serial, officer_id, enrolled_at, enrolled_by) VALUES (?,?,?,?) "
            "ON CONFLICT(serial) DO UPDATE SET officer_id=excluded.officer_id, "
            "enrolled_at=excluded.enrolled_at, enrolled_by=excluded.enrolled_by, "
            "revoked_at=NULL, revoked_by=NULL, bound_at=NULL",
            (serial, officer_id, now, by),
        )

    def mark_bound(self, serial: str, now: str) -> None:
        """The camera now carries this station's binding; every later dock must show it."""
        self.conn.execute(
            "UPDATE devices SET bound_at=? WHERE serial=? AND bound_at IS NULL", (now, serial)
        )

    def revoke(self, serial: str, by: str, now: str) -> bool:
        cur = self.conn.execute(
            "UPDATE devices SET revoked_at=?, revoked_by=? WHERE serial=? AND revoked_at IS NULL",
            (now, by, serial),
        )
        return cur.rowcount == 1

    def enrolled(self) -> dict[str, DeviceRow]:
        """Active enrolments by serial."""
        rows = self.conn.execute("SELECT * FROM devices WHERE revoked_at IS NULL ORDER BY serial")
        return {str(r["serial"]): DeviceRow.from_row(r) for r in rows}

    def device_rows(self) -> list[DeviceRow]:
        rows = self.conn.execute("SELECT * FROM devices ORDER BY serial")
        return [DeviceRow.from_row(r) for r in rows]

    def add_refusal(self, source: str, identity: str, reason: str, now: str) -> None:
        self.conn.execute(
            "INSERT INTO refusals(at, source, identity, reason) VALUES (?,?,?,?)",
            (now, source, identity, reason),
        )

    def refusals(self, limit: int = 100) -> list[RefusalRow]:
        """The newest `limit` refusals, newest first."""
        rows = self.conn.execute("SELECT * FROM refusals ORDER BY id DESC LIMIT ?", (limit,))
        return [RefusalRow.from_row(r) for r in rows]
