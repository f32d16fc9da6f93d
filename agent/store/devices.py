"""Queries about cameras as devices: enrolment, refusals, the officers who hold them by badge,
and supervisors' explanations of findings (what is docked now: sessions.py).

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
    # 0017_ledger_officers: the officer's name and unit (a recorder's device record fields)
    officer_name: str = ""
    unit_id: str = ""
    unit_name: str = ""

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


@dataclass(frozen=True, slots=True)
class OfficerRow:
    """An officer by badge number (`officers`): name and unit, as the ledger last gave them."""

    badge: str
    name: str
    unit_id: str
    unit_name: str
    updated_at: str
    updated_by: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> OfficerRow:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True, slots=True)
class ExplanationRow:
    """A supervisor's written explanation of a file's finding (`explanations`), the latest."""

    file_id: int
    text: str
    explained_at: str
    explained_by: str
    record_seq: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ExplanationRow:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


class DeviceQueries(StoreBase):
    def enroll(
        self,
        serial: str,
        officer_id: str,
        by: str,
        now: str,
        *,
        officer_name: str = "",
        unit_id: str = "",
        unit_name: str = "",
    ) -> None:
        """Enrol, or enrol again: a new enrolment forgets the camera's binding, so it is bound
        anew at its next dock (how a reformatted camera is taken back; an audited action)."""
        self.conn.execute(
            "INSERT INTO devices(serial, officer_id, enrolled_at, enrolled_by, officer_name, "
            "unit_id, unit_name) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT(serial) DO UPDATE SET officer_id=excluded.officer_id, "
            "enrolled_at=excluded.enrolled_at, enrolled_by=excluded.enrolled_by, "
            "officer_name=excluded.officer_name, unit_id=excluded.unit_id, "
            "unit_name=excluded.unit_name, revoked_at=NULL, revoked_by=NULL, bound_at=NULL",
            (serial, officer_id, now, by, officer_name, unit_id, unit_name),
        )

    def update_holder(
        self, serial: str, officer_id: str, officer_name: str, unit_id: str, unit_name: str
    ) -> None:
        """An enrolled camera's officer, name and unit change; its binding stays (the camera
        itself did not change hands with the station, only with officers)."""
        self.conn.execute(
            "UPDATE devices SET officer_id=?, officer_name=?, unit_id=?, unit_name=? "
            "WHERE serial=?",
            (officer_id, officer_name, unit_id, unit_name, serial),
        )

    def device(self, serial: str) -> DeviceRow | None:
        """A serial's enrolment, revoked or not; None if it was never enrolled."""
        row = self.conn.execute("SELECT * FROM devices WHERE serial=?", (serial,)).fetchone()
        return None if row is None else DeviceRow.from_row(row)

    def device_known(self, serial: str) -> bool:
        """Whether the station knows a serial: enrolled once, or seen at a dock."""
        row = self.conn.execute(
            "SELECT EXISTS(SELECT 1 FROM devices WHERE serial=?) "
            "OR EXISTS(SELECT 1 FROM sessions WHERE device_serial=?)",
            (serial, serial),
        ).fetchone()
        return bool(row[0])

    def ledger_ready(self) -> bool:
        """Whether migration 0017_ledger_officers was applied (a reader never migrates)."""
        return self.has_table("officers")

    def save_officer(
        self, badge: str, name: str, unit_id: str, unit_name: str, by: str, now: str
    ) -> None:
        self.conn.execute(
            "INSERT INTO officers(badge, name, unit_id, unit_name, updated_at, updated_by) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(badge) DO UPDATE SET name=excluded.name, "
            "unit_id=excluded.unit_id, unit_name=excluded.unit_name, "
            "updated_at=excluded.updated_at, updated_by=excluded.updated_by",
            (badge, name, unit_id, unit_name, now, by),
        )

    def officer(self, badge: str) -> OfficerRow | None:
        """One officer by badge (None when the roster does not name it, or not yet migrated)."""
        if not badge or not self.ledger_ready():
            return None
        row = self.conn.execute("SELECT * FROM officers WHERE badge=?", (badge,)).fetchone()
        return OfficerRow.from_row(row) if row is not None else None

    def officers(self) -> dict[str, OfficerRow]:
        """Every officer by badge (none on a database not yet migrated)."""
        if not self.ledger_ready():
            return {}
        rows = self.conn.execute("SELECT * FROM officers ORDER BY badge")
        return {str(r["badge"]): OfficerRow.from_row(r) for r in rows}

    def file_exists(self, file_id: int) -> bool:
        row = self.conn.execute("SELECT 1 FROM files WHERE id=?", (file_id,)).fetchone()
        return row is not None

    def save_explanation(
        self, file_id: int, text: str, by: str, now: str, record_seq: int | None
    ) -> None:
        self.conn.execute(
            "INSERT INTO explanations(file_id, text, explained_at, explained_by, record_seq) "
            "VALUES (?,?,?,?,?) ON CONFLICT(file_id) DO UPDATE SET text=excluded.text, "
            "explained_at=excluded.explained_at, explained_by=excluded.explained_by, "
            "record_seq=excluded.record_seq",
            (file_id, text, now, by, record_seq),
        )

    def explanations(self) -> dict[int, ExplanationRow]:
        """The latest explanation of each file (none on a database not yet migrated)."""
        if not self.ledger_ready():
            return {}
        rows = self.conn.execute("SELECT * FROM explanations")
        return {int(r["file_id"]): ExplanationRow.from_row(r) for r in rows}

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
