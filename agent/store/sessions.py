"""Queries of dock sessions: one row per camera dock, opened when it docks, closed at its end.

SessionRow is built from the database in one place (SessionRow.from_row), and callers ask by
name (sessions_before, sessions_of_camera, docked_sessions, ...) instead of passing SQL. What an
outcome means, and when a session may be wiped, is decided above the store, not here.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.core.model import SessionOutcome
from agent.store.base import StoreBase, not_found


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A row of `sessions`, with the columns of every migration (schema.py)."""

    id: int
    device_serial: str
    source: str
    docked_at: str
    officer_id: str = ""
    vendor: str = ""
    model: str = ""
    firmware: str = ""
    unit: str = ""
    ended_at: str | None = None
    outcome: SessionOutcome = SessionOutcome.RUNNING
    files_found: int = 0
    files_new: int = 0
    files_sealed: int = 0
    bytes_copied: int = 0
    problems: int = 0
    wipe_state: str = ""
    wipe_detail: str = ""
    # 0002_devices
    profile: str = ""
    undocked_at: str | None = None
    usb_serial: str = ""
    # 0007_identity_binding: what was checked of the camera's identity
    identity_check: str = ""
    # 0012_scsi_unlock: what a vendor SCSI unlock found (JSON), '' when there was none
    unlock: str = ""
    # 0015_screen_port_path: the physical USB port it was docked in (udev ID_PATH)
    port_path: str = ""

    @classmethod
    def from_row(cls, row: sqlite3.Row, prefix: str = "") -> SessionRow:
        """The row as the database holds it (`prefix`: its columns' names in a join). A column
        a database from before its migration lacks takes the column's default; an outcome this
        version does not know is kept as its text (SessionOutcome.read)."""
        present = set(row.keys())
        values: dict[str, Any] = {
            name: row[prefix + name] for name in SESSION_COLUMNS if prefix + name in present
        }
        values["outcome"] = SessionOutcome.read(
            str(values.get("outcome", SessionOutcome.RUNNING.value))
        )
        return cls(**values)

    def columns(self) -> dict[str, object]:
        """Every column by name, as the row is written (agent.rebuild restores it so)."""
        return {name: getattr(self, name) for name in SESSION_COLUMNS}


SESSION_COLUMNS = tuple(f.name for f in dataclasses.fields(SessionRow))
# What open_session and update_session may set: every column but the key.
_WRITABLE = frozenset(SESSION_COLUMNS) - {"id"}


def _checked(fields: Mapping[str, object]) -> dict[str, object]:
    unknown = set(fields) - _WRITABLE
    if unknown:
        raise ValueError(f"not a sessions column: {sorted(unknown)}")
    outcome = fields.get("outcome")
    if outcome is not None and not isinstance(outcome, SessionOutcome):
        raise TypeError(f"a session's outcome is a SessionOutcome, not {outcome!r}")
    return dict(fields)


class SessionQueries(StoreBase):
    def open_session(self, fields: Mapping[str, object]) -> int:
        """A new session row (outcome running) with these columns; returns its id."""
        return self.insert_row("sessions", _checked(fields))

    def update_session(self, session_id: int, fields: Mapping[str, object]) -> None:
        self.update_row("sessions", session_id, _checked(fields))

    def session(self, session_id: int) -> SessionRow:
        # A plain SELECT: sqlite-utils' Table.get() runs PRAGMA table_info (twice) every call.
        row = self.conn.execute("SELECT * FROM sessions WHERE id=?", (session_id,)).fetchone()
        if row is None:
            raise not_found("sessions", session_id)
        return SessionRow.from_row(row)

    def _sessions(self, where: str = "", args: tuple[object, ...] = ()) -> list[SessionRow]:
        sql = "SELECT * FROM sessions" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return [SessionRow.from_row(r) for r in self.conn.execute(sql, args)]

    def all_sessions(self) -> list[SessionRow]:
        return self._sessions()

    def sessions_before(self, docked_at: str) -> list[SessionRow]:
        """Sessions docked before `docked_at` (station UTC text), by id."""
        return self._sessions("docked_at < ?", (docked_at,))

    def recent_sessions(self, limit: int, since: str = "") -> list[SessionRow]:
        """The `limit` sessions docked last, from `since` (station UTC text) when given, oldest
        first: what `status` lists, read from the index on docked_at however long the history."""
        rows = self.conn.execute(
            "SELECT * FROM sessions WHERE docked_at >= ? ORDER BY docked_at DESC, id DESC LIMIT ?",
            (since, max(0, int(limit))),
        ).fetchall()
        return [SessionRow.from_row(r) for r in reversed(rows)]

    def previous_docks(self, serials: Iterable[str], before: str) -> dict[str, str]:
        """Each camera's last docking before `before` (station UTC text), one index probe per
        camera: where the ledger counts a first listed dock's handovers from."""
        out: dict[str, str] = {}
        for serial in sorted(set(serials)):
            row = self.conn.execute(
                "SELECT MAX(docked_at) FROM sessions WHERE device_serial=? AND docked_at < ?",
                (serial, before),
            ).fetchone()
            if row is not None and row[0] is not None:
                out[serial] = str(row[0])
        return out

    def sessions_of_camera(self, serial: str) -> list[SessionRow]:
        return self._sessions("device_serial=?", (serial,))

    def last_unlock(self, serial: str) -> tuple[str, str] | None:
        """(what its last vendor unlock read, as JSON; when it docked) of the camera's newest
        session that has one; None when none has (by the sessions_device index)."""
        row = self.conn.execute(
            "SELECT unlock, docked_at FROM sessions WHERE device_serial=? AND unlock != '' "
            "ORDER BY docked_at DESC, id DESC LIMIT 1",
            (serial,),
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def previous_session(self, serial: str, session_id: int) -> SessionRow | None:
        """The camera's last session before `session_id` (one probe of sessions_device)."""
        row = self.conn.execute(
            "SELECT * FROM sessions WHERE device_serial=? AND id<? "
            "ORDER BY docked_at DESC, id DESC LIMIT 1",
            (serial, session_id),
        ).fetchone()
        return None if row is None else SessionRow.from_row(row)

    def docked_sessions(self) -> list[SessionRow]:
        """Sessions whose camera has not been unplugged yet."""
        return self._sessions("undocked_at IS NULL")

    def interrupt_running_sessions(self, now: str) -> int:
        # The outcome as a literal: only then may SQLite read the partial index sessions_running
        # (https://www.sqlite.org/partialindex.html), not every session of the history.
        cur = self.conn.execute(
            f"UPDATE sessions SET outcome=?, ended_at=? WHERE outcome='{SessionOutcome.RUNNING}'",
            (SessionOutcome.INTERRUPTED.value, now),
        )
        return cur.rowcount

    def mark_undocked(self, session_id: int, now: str) -> None:
        self.conn.execute(
            "UPDATE sessions SET undocked_at=? WHERE id=? AND undocked_at IS NULL",
            (now, session_id),
        )

    def undock_all(self, now: str) -> int:
        """At daemon start nothing is docked yet: present devices open new sessions."""
        cur = self.conn.execute(
            "UPDATE sessions SET undocked_at=? WHERE undocked_at IS NULL", (now,)
        )
        return cur.rowcount
