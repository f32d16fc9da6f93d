"""Queries about cameras as devices: enrolment, refusals, and what is docked now.

Technician actions recorded here are also written to the audit chain by their callers.
"""

from __future__ import annotations

from typing import Any

from agent.store.base import StoreBase


class DeviceQueries(StoreBase):
    def enroll(self, serial: str, officer_id: str, by: str, now: str) -> None:
        self.conn.execute(
            "INSERT INTO devices(serial, officer_id, enrolled_at, enrolled_by) VALUES (?,?,?,?) "
            "ON CONFLICT(serial) DO UPDATE SET officer_id=excluded.officer_id, "
            "enrolled_at=excluded.enrolled_at, enrolled_by=excluded.enrolled_by, "
            "revoked_at=NULL, revoked_by=NULL",
            (serial, officer_id, now, by),
        )

    def revoke(self, serial: str, by: str, now: str) -> bool:
        cur = self.conn.execute(
            "UPDATE devices SET revoked_at=?, revoked_by=? WHERE serial=? AND revoked_at IS NULL",
            (now, by, serial),
        )
        return cur.rowcount == 1

    def enrolled(self) -> dict[str, dict[str, Any]]:
        """Active enrolments by serial."""
        rows = self.conn.execute("SELECT * FROM devices WHERE revoked_at IS NULL ORDER BY serial")
        return {str(r["serial"]): dict(r) for r in rows}

    def device_rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM devices ORDER BY serial")]

    def add_refusal(self, source: str, identity: str, reason: str, now: str) -> None:
        self.conn.execute(
            "INSERT INTO refusals(at, source, identity, reason) VALUES (?,?,?,?)",
            (now, source, identity, reason),
        )

    def refusals(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM refusals ORDER BY id DESC LIMIT ?", (limit,))
        return [dict(r) for r in rows]

    def docked_sessions(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM sessions WHERE undocked_at IS NULL ORDER BY id")
        return [dict(r) for r in rows]

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
