"""Queries of camera health and the ledger: dock health rows, camera log events, faults,
officer assignments, and the health columns of file rows.

Every table here is history: rows are added, and a session's health row is filled in as the
dock proceeds; nothing is deleted. No analysis or policy lives here, only SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agent.store.base import StoreBase
from agent.store.healthrows import (
    HEALTH_COLUMNS,
    RECORDING_COLUMNS,
    AssignmentRow,
    CameraEvent,
    FaultRow,
    FileStats,
    HealthRow,
    LedgerRow,
    Recording,
)
from agent.store.sessions import SessionRow

_HEALTH_COLUMNS = frozenset(
    {
        "camera_connect_at",
        "clock_drift_s",
        "clock_detail",
        "station_clock",
        "station_synced",
        "station_esterror_us",
        "clock_correction",
        "clock_correction_detail",
        "correction_check",
        "correction_check_detail",
        "drift_rate_s_per_day",
        "drift_flagged",
        "drift_trend",
        "officer_on_camera",
        "officer",
        "officer_source",
        "officer_mismatch",
        "battery_verdict",
        "battery",
        "system_log",
        "storage_free_bytes",
        "storage_capacity_bytes",
        "readiness",
        "readiness_reasons",
        "readiness_at",
        "readiness_final",
    }
)
_FILE_HEALTH_COLUMNS = frozenset(
    {
        "clock_drift_s",
        "recorded_start_corrected",
        "recorded_end_corrected",
        "time_basis",
        "retention_class",
    }
)


class HealthQueries(StoreBase):
    # ---- dock health -----------------------------------------------------------------------

    def open_health(self, session_id: int, serial: str, docked_at: str, now: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO session_health(session_id, device_serial, docked_at, "
            "updated_at) VALUES (?,?,?,?)",
            (session_id, serial, docked_at, now),
        )

    def update_health(self, session_id: int, now: str, **fields: Any) -> None:
        unknown = set(fields) - _HEALTH_COLUMNS
        if unknown:
            raise ValueError(f"not a session_health column: {sorted(unknown)}")
        values = [json.dumps(v) if isinstance(v, dict | list) else v for v in fields.values()]
        sets = ", ".join(f"{name}=?" for name in fields)
        self.conn.execute(
            f"UPDATE session_health SET {sets}, updated_at=? WHERE session_id=?",
            [*values, now, session_id],
        )

    def health(self, session_id: int) -> HealthRow | None:
        row = self.conn.execute(
            "SELECT * FROM session_health WHERE session_id=?", (session_id,)
        ).fetchone()
        return None if row is None else HealthRow.from_row(row)

    def last_health(self, serial: str, before_session: int) -> HealthRow | None:
        """The camera's newest health row before a session (its last dock), or None."""
        row = self.conn.execute(
            "SELECT * FROM session_health WHERE device_serial=? AND session_id < ? "
            "ORDER BY docked_at DESC, session_id DESC LIMIT 1",
            (serial, before_session),
        ).fetchone()
        return None if row is None else HealthRow.from_row(row)

    def trend_history(self, serial: str, before_session: int, limit: int) -> list[HealthRow]:
        """The camera's health rows before a session, oldest first, from the last one whose
        clock correction took (its clock's current setting), at most the newest `limit`: what
        a dock's drift trend needs, never every dock the camera ever had."""
        took = self.conn.execute(
            "SELECT docked_at, session_id FROM session_health WHERE device_serial=? "
            "AND session_id < ? AND correction_check='took' "
            "ORDER BY docked_at DESC, session_id DESC LIMIT 1",
            (serial, before_session),
        ).fetchone()
        sql = "SELECT * FROM session_health WHERE device_serial=? AND session_id < ?"
        args: list[Any] = [serial, before_session]
        if took is not None:
            sql += " AND (docked_at > ? OR (docked_at = ? AND session_id >= ?))"
            args += [took[0], took[0], took[1]]
        rows = self.conn.execute(
            sql + " ORDER BY docked_at DESC, session_id DESC LIMIT ?", [*args, limit]
        ).fetchall()
        return [HealthRow.from_row(r) for r in reversed(rows)]

    def health_history(self, serial: str, before_session: int | None = None) -> list[HealthRow]:
        """Health rows of one camera, oldest first (optionally only those before a session)."""
        sql = "SELECT * FROM session_health WHERE device_serial=?"
        args: list[Any] = [serial]
        if before_session is not None:
            sql += " AND session_id < ?"
            args.append(before_session)
        rows = self.conn.execute(sql + " ORDER BY docked_at, session_id", args)
        return [HealthRow.from_row(r) for r in rows]

    def health_ready(self) -> bool:
        """Whether migration 0004_health was applied (a reader never migrates the database)."""
        return self.has_table("session_health")

    def latest_health(self) -> list[HealthRow]:
        """Each camera's health at its most recent dock (none on a database not yet migrated)."""
        if not self.health_ready():
            return []
        # A loose index scan (session_health_latest): one probe per camera for the next serial
        # and one for its last dock, instead of a pass over every dock of the history.
        rows = self.conn.execute(
            "WITH RECURSIVE cams(serial) AS ("
            " SELECT MIN(device_serial) FROM session_health"
            " UNION ALL SELECT (SELECT MIN(device_serial) FROM session_health"
            "  WHERE device_serial > cams.serial) FROM cams WHERE cams.serial IS NOT NULL) "
            "SELECT h.* FROM cams JOIN session_health h ON h.session_id = (SELECT MAX(session_id)"
            " FROM session_health WHERE device_serial = cams.serial) "
            "WHERE cams.serial IS NOT NULL ORDER BY h.device_serial"
        )
        return [HealthRow.from_row(r) for r in rows]

    def ledger_rows(
        self, *, since: str | None = None, camera: str | None = None
    ) -> list[LedgerRow]:
        """Sessions with their health records, oldest docking first: those docked from `since`
        (station UTC text), of one camera when given."""
        health = ", ".join(f"h.{name} AS h_{name}" for name in HEALTH_COLUMNS)
        sql = (
            f"SELECT s.*, {health} FROM sessions s "
            "LEFT JOIN session_health h ON h.session_id = s.id"
        )
        clauses: list[str] = []
        args: list[str] = []
        if since:
            clauses.append("s.docked_at >= ?")
            args.append(since)
        if camera:
            clauses.append("s.device_serial = ?")
            args.append(camera)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [
            LedgerRow(
                SessionRow.from_row(r),
                None if r["h_session_id"] is None else HealthRow.from_row(r, prefix="h_"),
            )
            for r in self.conn.execute(sql + " ORDER BY s.docked_at, s.id", args)
        ]

    def session_file_stats(self, session_id: int) -> FileStats:
        """Files first taken in a session: count, bytes, recorded span (raw and corrected)."""
        row = self.conn.execute(
            "SELECT COUNT(*) AS files, COALESCE(SUM(size), 0) AS bytes, "
            "MIN(NULLIF(recorded_start, '')) AS first_raw, "
            "MAX(NULLIF(recorded_end, '')) AS last_raw, "
            "MIN(NULLIF(recorded_start_corrected, '')) AS first_corrected, "
            "MAX(NULLIF(recorded_end_corrected, '')) AS last_corrected "
            "FROM files WHERE session_id=?",
            (session_id,),
        ).fetchone()
        return FileStats.from_row(row)

    def recordings(
        self,
        *,
        camera: str | None = None,
        ingested_since: str | None = None,
        sessions: Sequence[int] | None = None,
    ) -> list[Recording]:
        """File rows with a recording time, with their first session's docking and officer, by
        camera: of one camera when given; from `ingested_since` (station UTC text) when given,
        those staged since then or, not staged yet, first docked since then; first taken in
        one of `sessions` when given. Each filter is read from an index, not the history."""
        from_session = ("docked_at", "officer_on_camera")
        file_columns = ", ".join(f"f.{c}" for c in RECORDING_COLUMNS if c not in from_session)
        sql = (
            f"SELECT {file_columns}, s.docked_at, s.officer_id AS officer_on_camera "
            "FROM files f JOIN sessions s ON s.id = f.session_id "
            "WHERE f.recorded_start != ''"
        )
        args: list[str] = []
        if camera:
            sql += " AND (f.device_serial = ?)"
            args.append(camera)
        if ingested_since:
            # Two indexed ranges instead of one OR over every row: staged since then, or not
            # staged and first docked since then.
            sql += (
                " AND f.id IN (SELECT id FROM files WHERE staged_at >= ?"
                " UNION ALL SELECT u.id FROM sessions us JOIN files u ON u.session_id = us.id"
                " WHERE us.docked_at >= ? AND u.staged_at IS NULL)"
            )
            args += [ingested_since, ingested_since]
        if sessions is not None:
            sql += " AND f.session_id IN (SELECT value FROM json_each(?))"
            args.append(json.dumps(sorted({int(i) for i in sessions})))
        rows = self.conn.execute(sql + " ORDER BY f.device_serial, f.id", args)
        return [Recording.from_row(r) for r in rows]

    def recording_spans(
        self, sessions: Sequence[int], camera: str | None = None
    ) -> list[tuple[int, str, str]]:
        """(first session, raw camera start, raw camera end) of the files with a recording time
        first taken in one of `sessions` (of one camera when given), in recordings()'s order:
        what a ledger sums per dock, without building whole rows (thousands for a ledger of
        many docks)."""
        sql = (
            "SELECT f.session_id, f.recorded_start, f.recorded_end "
            "FROM files f JOIN sessions s ON s.id = f.session_id "
            "WHERE f.recorded_start != '' AND f.session_id IN (SELECT value FROM json_each(?))"
        )
        args: list[str] = [json.dumps(sorted({int(i) for i in sessions}))]
        if camera:
            sql += " AND (f.device_serial = ?)"
            args.append(camera)
        rows = self.conn.execute(sql + " ORDER BY f.device_serial, f.id", args)
        return [(int(r[0]), str(r[1]), str(r[2] or "")) for r in rows]

    # ---- file rows -------------------------------------------------------------------------

    def set_file_health(self, file_id: int, **fields: Any) -> None:
        unknown = set(fields) - _FILE_HEALTH_COLUMNS
        if unknown:
            raise ValueError(f"not a file health column: {sorted(unknown)}")
        sets = ", ".join(f"{name}=?" for name in fields)
        self.conn.execute(f"UPDATE files SET {sets} WHERE id=?", [*fields.values(), file_id])

    # ---- camera log events -----------------------------------------------------------------

    def add_camera_event(
        self,
        serial: str,
        session_id: int,
        camera_time: str,
        corrected_time: str,
        event: str,
        fields: dict[str, str],
        line: str,
    ) -> bool:
        """Keep one log line; False when this camera's line was already kept at a past dock."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO camera_events(device_serial, session_id, camera_time, "
            "corrected_time, event, fields, line) VALUES (?,?,?,?,?,?,?)",
            (serial, session_id, camera_time, corrected_time, event, json.dumps(fields), line),
        )
        return cur.rowcount == 1

    def known_event_lines(self, serial: str, event: str) -> dict[str, int]:
        """Lines of one event kind already kept for a camera, with the session that saw them."""
        rows = self.conn.execute(
            "SELECT line, session_id FROM camera_events WHERE device_serial=? AND event=?",
            (serial, event),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def camera_events(
        self, events: Sequence[str], *, docked_since: str | None = None
    ) -> list[CameraEvent]:
        """Kept log lines of these event kinds, by camera; of sessions docked from
        `docked_since` (station UTC text) when given."""
        marks = ",".join("?" for _ in events)
        sql = (
            "SELECT e.*, s.docked_at, s.officer_id AS officer_on_camera FROM camera_events e "
            f"JOIN sessions s ON s.id = e.session_id WHERE e.event IN ({marks})"
        )
        args = list(events)
        if docked_since:
            # From the sessions docked since then (sessions_docked) to their events
            # (camera_events_session), not from every event of these kinds ever kept.
            sql = (
                "SELECT e.*, s.docked_at, s.officer_id AS officer_on_camera FROM sessions s "
                "CROSS JOIN camera_events e ON e.session_id = s.id "
                f"WHERE s.docked_at >= ? AND e.event IN ({marks})"
            )
            args = [docked_since, *events]
        rows = self.conn.execute(sql + " ORDER BY e.device_serial, e.id", args)
        return [CameraEvent.from_row(r) for r in rows]

    # ---- faults ----------------------------------------------------------------------------

    def add_fault(
        self,
        serial: str,
        session_id: int | None,
        at: str,
        source: str,
        code: str,
        severity: str,
        detail: str,
        camera_time: str = "",
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO faults(device_serial, session_id, at, source, code, severity, detail, "
            "camera_time) VALUES (?,?,?,?,?,?,?,?)",
            (serial, session_id, at, source, code, severity, detail, camera_time),
        )
        return int(cur.lastrowid or 0)

    def faults(
        self,
        *,
        since: str | None = None,
        camera: str | None = None,
        session_id: int | None = None,
    ) -> list[FaultRow]:
        """Faults in the order they were registered: from `since` (station UTC text), of one
        camera, of one session, as far as each is given."""
        clauses: list[str] = []
        args: list[object] = []
        for clause, value in (
            ("at >= ?", since or None),
            ("device_serial = ?", camera or None),
            ("session_id = ?", session_id),
        ):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(f"SELECT * FROM faults{where} ORDER BY at, id", args)
        return [FaultRow.from_row(r) for r in rows]

    def faults_of_sessions(self, session_ids: Sequence[int]) -> list[FaultRow]:
        """The faults of these sessions, in the order they were registered (faults_session)."""
        rows = self.conn.execute(
            "SELECT * FROM faults WHERE session_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY at, id",
            (json.dumps(sorted({int(i) for i in session_ids})),),
        )
        return [FaultRow.from_row(r) for r in rows]

    def dock_faults(self, session_id: int, first_session: int) -> list[FaultRow]:
        """The faults of one dock: its session's, and the camera log faults of the session that
        first read this dock's log (a retry of the same dock registers them only once)."""
        rows = self.conn.execute(
            "SELECT * FROM faults WHERE session_id=? OR (session_id=? AND source='camera_log') "
            "ORDER BY at, id",
            (session_id, first_session),
        )
        return [FaultRow.from_row(r) for r in rows]

    def fault_counts(self) -> dict[int, int]:
        rows = self.conn.execute(
            "SELECT session_id, COUNT(*) FROM faults WHERE session_id IS NOT NULL "
            "GROUP BY session_id"
        )
        return {int(r[0]): int(r[1]) for r in rows}

    # ---- officer assignments ---------------------------------------------------------------

    def add_assignment(
        self, serial: str, officer: str, previous: str, at: str, by: str, record_seq: int | None
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO assignments(device_serial, officer_id, previous_officer, assigned_at, "
            "assigned_by, record_seq) VALUES (?,?,?,?,?,?)",
            (serial, officer, previous, at, by, record_seq),
        )
        return int(cur.lastrowid or 0)

    def assignments(self, serial: str | None = None) -> list[AssignmentRow]:
        """Handovers, oldest first (of one camera when given)."""
        sql = "SELECT * FROM assignments"
        args: list[Any] = []
        if serial is not None:
            sql += " WHERE device_serial=?"
            args.append(serial)
        rows = self.conn.execute(sql + " ORDER BY assigned_at, id", args)
        return [AssignmentRow.from_row(r) for r in rows]

    def assignment_at(self, serial: str, at: str) -> AssignmentRow | None:
        """The assignment in force for a camera at station time `at` (ISO UTC), if any."""
        row = self.conn.execute(
            "SELECT * FROM assignments WHERE device_serial=? AND assigned_at <= ? "
            "ORDER BY assigned_at DESC, id DESC LIMIT 1",
            (serial, at),
        ).fetchone()
        return None if row is None else AssignmentRow.from_row(row)

    def audit_records(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT seq, body, created_at FROM records WHERE kind='audit' ORDER BY seq"
        )
        out = []
        for r in rows:
            body = json.loads(r["body"])
            out.append({"seq": r["seq"], "created_at": r["created_at"], **body})
        return out
