"""The store: the only module that speaks SQL.

SQLite through sqlite-utils, schema applied with sqlite-utils migrations, WAL with
synchronous=FULL on every connection (NORMAL lost committed rows in a simulated power cut),
and state transitions that name the state they expect. It refuses to open a damaged database,
and refuses to create a fresh one where a data directory shows that one existed before.
It does no file I/O on evidence and makes no policy decisions.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from agent.errors import (
    StoreBusy,
    StoreCorrupt,
    StoreMismatch,
    StoreMissing,
    StoreTooNew,
    TransitionRefused,
)
from agent.model import Candidate, FileState, transition_allowed

MIGRATIONS = Migrations("dockagent")


@MIGRATIONS(name="0001_initial")
def _m0001(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            device_serial TEXT NOT NULL,
            officer_id TEXT NOT NULL DEFAULT '',
            vendor TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT '',
            firmware TEXT NOT NULL DEFAULT '',
            unit TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL,
            docked_at TEXT NOT NULL,
            ended_at TEXT,
            outcome TEXT NOT NULL DEFAULT 'running',
            files_found INTEGER NOT NULL DEFAULT 0,
            files_new INTEGER NOT NULL DEFAULT 0,
            files_sealed INTEGER NOT NULL DEFAULT 0,
            bytes_copied INTEGER NOT NULL DEFAULT 0,
            problems INTEGER NOT NULL DEFAULT 0,
            wipe_state TEXT NOT NULL DEFAULT '',
            wipe_detail TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            last_session_id INTEGER NOT NULL REFERENCES sessions(id),
            device_serial TEXT NOT NULL,
            camera_path BLOB NOT NULL,
            camera_name TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            kind TEXT NOT NULL,
            recorded_start TEXT NOT NULL DEFAULT '',
            recorded_end TEXT NOT NULL DEFAULT '',
            segment INTEGER,
            important INTEGER NOT NULL DEFAULT 0,
            wipeable INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            sha256 TEXT,
            staged_path TEXT,
            record_seq INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            claimed_by TEXT,
            discovered_at TEXT NOT NULL,
            staged_at TEXT,
            sealed_at TEXT,
            wipe_started_at TEXT,
            wiped_at TEXT,
            updated_at TEXT NOT NULL,
            UNIQUE (device_serial, camera_path, size, mtime_ns)
        );
        CREATE INDEX files_state ON files(state);
        CREATE INDEX files_device_path ON files(device_serial, camera_path);
        CREATE TABLE records (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            file_id INTEGER REFERENCES files(id),
            body TEXT NOT NULL,
            record_hash TEXT NOT NULL UNIQUE,
            prev_hash TEXT NOT NULL,
            signature TEXT NOT NULL,
            key_id TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX records_file ON records(file_id) WHERE kind = 'file';
        -- The custody chain is append-only: the agent never rewrites a record.
        CREATE TRIGGER records_no_update BEFORE UPDATE ON records
            BEGIN SELECT RAISE(ABORT, 'custody records are append-only'); END;
        CREATE TRIGGER records_no_delete BEFORE DELETE ON records
            BEGIN SELECT RAISE(ABORT, 'custody records are append-only'); END;
        """
    )


@dataclass(frozen=True)
class RecordRow:
    seq: int
    kind: str
    file_id: int | None
    body: str
    record_hash: str
    prev_hash: str
    signature: str
    key_id: str


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; every transaction here is explicit
    # (BEGIN IMMEDIATE), and sqlite-utils nests its own work in savepoints inside it.
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.DatabaseError(f"journal_mode is {mode}, WAL required")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _write_marker(marker: Path, store_id: str) -> None:
    # The marker outlives the database: if the database later vanishes or is emptied, the
    # marker says state was lost instead of letting a fresh queue hide it.
    tmp = marker.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, store_id.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, marker)
    _fsync_dir(marker.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """One connection to the station's database; one per thread."""

    MARKER = "store.id"

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.path = path

    # ---- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path, *, create: bool) -> Store:
        """Open (or, with create, initialise) the store in data_dir; check it is ours and whole."""
        path = data_dir / "dockagent.db"
        marker = data_dir / cls.MARKER
        expected = marker.read_text().strip() if marker.exists() else ""
        exists = path.exists() and path.stat().st_size > 0
        if not exists:
            if expected:
                detail = "empty" if path.exists() else "missing"
                raise StoreMissing(path=str(path), detail=detail, marker=str(marker))
            if not create:
                raise StoreMissing(
                    path=str(path), detail="missing", marker="none: nothing imported yet"
                )
            return cls._initialise(data_dir, path, marker)
        try:
            conn = _connect(path)
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(str(result))
            store = cls(conn, path)
            store._check_identity(expected, marker)
            if create:
                store._migrate()
            else:
                store._check_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupt(path=str(path), detail=str(exc)) from exc
        return store

    @classmethod
    def _initialise(cls, data_dir: Path, path: Path, marker: Path) -> Store:
        """Build the database under a temporary name and move it into place when complete.

        A kill at any moment leaves either no database (and a leftover to discard) or a whole
        one; the marker is written last, and re-derived from the database if it is missing.
        """
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        building = data_dir / "dockagent.db.init"
        for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
            leftover.unlink(missing_ok=True)
        conn = _connect(building)
        store = cls(conn, building)
        store._migrate()
        store_id = uuid.uuid4().hex
        conn.execute("INSERT INTO meta(key, value) VALUES ('store_id', ?)", (store_id,))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        fd = os.open(building, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(building, path)
        for leftover in (Path(f"{building}-wal"), Path(f"{building}-shm")):
            leftover.unlink(missing_ok=True)
        _fsync_dir(data_dir)
        _write_marker(marker, store_id)
        return cls(_connect(path), path)

    def _check_identity(self, expected: str, marker: Path) -> None:
        tables = set(self.db.table_names())
        row = None
        if "meta" in tables:
            row = self.conn.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()
        if row is None or "files" not in tables:
            if expected:
                raise StoreMissing(path=str(self.path), detail="without tables", marker=str(marker))
            raise sqlite3.DatabaseError("the database has no store identity")
        if not expected:
            # The marker is written after the database is complete: a kill in between, or a
            # marker removed by hand. The database is whole, so the marker can be restored.
            _write_marker(marker, str(row[0]))
        elif row[0] != expected:
            raise StoreMismatch(path=str(self.path), found=row[0], expected=expected)

    def _check_schema(self) -> None:
        known = {m.name for m in MIGRATIONS._migrations}
        applied = {m.name for m in MIGRATIONS.applied(self.db)}
        if applied - known:
            raise StoreTooNew(
                path=str(self.path), found=sorted(applied - known)[-1], supported=sorted(known)[-1]
            )

    def _migrate(self) -> None:
        self._check_schema()
        MIGRATIONS.apply(self.db)

    def close(self) -> None:
        self.conn.close()

    # ---- transactions ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE: take the write lock up front so a transition cannot deadlock."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreBusy(path=str(self.path)) from exc
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- meta ------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    # ---- sessions --------------------------------------------------------------------------

    def open_session(self, fields: dict[str, Any]) -> int:
        table = self.db.table("sessions")
        table.insert(fields)
        return int(table.last_pk)  # type: ignore[arg-type]  # set by the insert just made

    def update_session(self, session_id: int, fields: dict[str, Any]) -> None:
        self.db.table("sessions").update(session_id, fields)

    def session(self, session_id: int) -> dict[str, Any]:
        return dict(self.db.table("sessions").get(session_id))

    def sessions(self, where: str = "", args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        sql = "SELECT * FROM sessions" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return [dict(r) for r in self.conn.execute(sql, args)]

    def interrupt_running_sessions(self, now: str) -> int:
        cur = self.conn.execute(
            "UPDATE sessions SET outcome='interrupted', ended_at=? WHERE outcome='running'", (now,)
        )
        return cur.rowcount

    # ---- files -----------------------------------------------------------------------------

    def register(
        self, session_id: int, serial: str, cand: Candidate, display: str, now: str
    ) -> tuple[int, FileState, bool]:
        """Record a file seen on a camera; returns (file_id, state, is_new).

        The same path with the same size and time is the same file (nothing new). A file not yet
        in custody whose size or time changed is the same row with a new identity; a file in
        custody that changed on the camera is a new version and gets a row of its own.
        """
        rows = self.conn.execute(
            "SELECT id, state, size, mtime_ns FROM files WHERE device_serial=? AND camera_path=?",
            (serial, cand.rel_path),
        ).fetchall()
        for row in rows:
            if row["size"] == cand.size and row["mtime_ns"] == cand.mtime_ns:
                self.conn.execute(
                    "UPDATE files SET last_session_id=? WHERE id=?", (session_id, row["id"])
                )
                return int(row["id"]), FileState(row["state"]), False
        fields = {
            "size": cand.size,
            "mtime_ns": cand.mtime_ns,
            "kind": cand.kind.value,
            "recorded_start": cand.recorded_start,
            "recorded_end": cand.recorded_end,
            "segment": cand.segment,
            "important": int(cand.important),
            "wipeable": int(cand.wipeable),
            "last_session_id": session_id,
            "updated_at": now,
        }
        for row in rows:
            if row["state"] in (FileState.DISCOVERED, FileState.FAILED):
                self.db.table("files").update(
                    row["id"], {**fields, "state": FileState.DISCOVERED.value, "reason": ""}
                )
                return int(row["id"]), FileState.DISCOVERED, False
        table = self.db.table("files")
        table.insert(
            {
                **fields,
                "session_id": session_id,
                "device_serial": serial,
                "camera_path": cand.rel_path,
                "camera_name": display,
                "state": FileState.DISCOVERED.value,
                "discovered_at": now,
            }
        )
        return int(table.last_pk), FileState.DISCOVERED, True  # type: ignore[arg-type]

    def transition(
        self, file_id: int, old: FileState | Sequence[FileState], new: FileState, **fields: Any
    ) -> None:
        """Move a row from `old` (one of) to `new`, refusing if the row is not where expected."""
        olds = (old,) if isinstance(old, FileState) else tuple(old)
        for state in olds:
            if not transition_allowed(state, new):
                raise TransitionRefused(file_id=file_id, old=state, new=new, actual="not checked")
        assignments = ["state=?"] + [f"{name}=?" for name in fields]
        values: list[Any] = [new.value, *fields.values()]
        marks = ",".join("?" for _ in olds)
        cur = self.conn.execute(
            f"UPDATE files SET {', '.join(assignments)} WHERE id=? AND state IN ({marks})",
            [*values, file_id, *(s.value for s in olds)],
        )
        if cur.rowcount != 1:
            actual = self.conn.execute("SELECT state FROM files WHERE id=?", (file_id,)).fetchone()
            raise TransitionRefused(
                file_id=file_id,
                old="|".join(s.value for s in olds),
                new=new.value,
                actual=actual[0] if actual else "missing",
            )

    def set_file(self, file_id: int, **fields: Any) -> None:
        """Update columns that are not the state (wipe marks, reasons)."""
        self.db.table("files").update(file_id, fields)

    def file(self, file_id: int) -> dict[str, Any]:
        return dict(self.db.table("files").get(file_id))

    def files(self, where: str = "", args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        sql = "SELECT * FROM files" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return [dict(r) for r in self.conn.execute(sql, args)]

    def state_counts(self, where: str = "", args: Sequence[Any] = ()) -> dict[str, int]:
        sql = "SELECT state, COUNT(*) FROM files" + (f" WHERE {where}" if where else "")
        sql += " GROUP BY state"
        return {str(r[0]): int(r[1]) for r in self.conn.execute(sql, args)}

    def counts_by(self, column: str) -> list[dict[str, Any]]:
        if column not in ("device_serial", "session_id", "last_session_id"):
            raise ValueError(column)
        sql = (
            f"SELECT {column} AS key, state, COUNT(*) AS n, SUM(size) AS bytes "
            f"FROM files GROUP BY {column}, state ORDER BY {column}, state"
        )
        return [dict(r) for r in self.conn.execute(sql)]

    # ---- custody records -------------------------------------------------------------------

    def chain_head(self) -> tuple[int, str] | None:
        row = self.conn.execute(
            "SELECT seq, record_hash FROM records ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def append_record(self, record: RecordRow, created_at: str) -> None:
        self.conn.execute(
            "INSERT INTO records(seq, kind, file_id, body, record_hash, prev_hash, signature, "
            "key_id, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                record.seq,
                record.kind,
                record.file_id,
                record.body,
                record.record_hash,
                record.prev_hash,
                record.signature,
                record.key_id,
                created_at,
            ),
        )

    def records(self) -> Iterator[RecordRow]:
        for r in self.conn.execute(
            "SELECT seq, kind, file_id, body, record_hash, prev_hash, signature, key_id "
            "FROM records ORDER BY seq"
        ):
            yield RecordRow(**dict(r))

    def record(self, seq: int) -> RecordRow | None:
        r = self.conn.execute(
            "SELECT seq, kind, file_id, body, record_hash, prev_hash, signature, key_id "
            "FROM records WHERE seq=?",
            (seq,),
        ).fetchone()
        return None if r is None else RecordRow(**dict(r))
