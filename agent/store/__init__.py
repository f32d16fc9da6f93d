"""The store: the only package that speaks SQL.

SQLite through sqlite-utils, schema applied with sqlite-utils migrations (schema.py), one
module of queries per domain; rows are handed out typed (rows.py) and asked for by name, never
by a caller's SQL. Opening refuses a damaged database, and refuses to create a fresh one where
the data directory shows that one existed before. A reader who may not write the data
directory (a technician of the station's group) gets the same checks over a read-only
connection that writes nothing (agent.store.readonly). No file I/O on evidence here and no
policy decisions.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
import weakref
from pathlib import Path

from agent.core import durable
from agent.core.errors import StoreBusy, StoreCorrupt, StoreMismatch, StoreMissing, StoreTooNew
from agent.store import readonly
from agent.store.base import (
    DB_MODE,
    DatabaseError,
    StoreError,
    _connect,
    _fsync_dir,
    _write_marker,
    check_length,
    is_damage,
    is_disk_full,
)
from agent.store.custody import CustodyQueries, RecordRow
from agent.store.devices import (
    DeviceQueries,
    DeviceRow,
    ExplanationRow,
    OfficerRow,
    RefusalRow,
)
from agent.store.files import FileQueries
from agent.store.health import HealthQueries
from agent.store.healthrows import (
    AssignmentRow,
    CameraEvent,
    FaultRow,
    FileStats,
    HealthRow,
    LedgerRow,
    Recording,
)
from agent.store.progress import CopyProgress, ProgressQueries, UploadProgress
from agent.store.restore import RestoreQueries, salvage_records
from agent.store.rows import FileRow, StateCount, UnreadableFile
from agent.store.schema import MIGRATIONS
from agent.store.screen import DockProgress, ScreenQueries, UploadTrouble
from agent.store.service import OldestUnconfirmed, ServiceQueries
from agent.store.sessions import SessionQueries, SessionRow
from agent.store.sinkstate import SinkQueries, SinkState, SinkUpload
from agent.store.tokens import TokenQueries, TokenRow
from agent.store.uploads import UploadQueries
from agent.store.verified import VerifiedHead, VerifiedQueries

__all__ = [
    "MIGRATIONS",
    "DatabaseError",
    "FileRow",
    "RecordRow",
    "StateCount",
    "Store",
    "StoreError",
    "UnreadableFile",
    "is_damage",
    "is_disk_full",
    "salvage_records",
]
# The rows of sessions, health and devices.
__all__ += [
    "AssignmentRow",
    "CameraEvent",
    "DeviceRow",
    "ExplanationRow",
    "FaultRow",
    "FileStats",
    "HealthRow",
    "LedgerRow",
    "OfficerRow",
    "OldestUnconfirmed",
    "Recording",
    "RefusalRow",
    "SessionRow",
    "SinkState",
    "SinkUpload",
    "TokenRow",
    "VerifiedHead",
]
# What the bay status screen reads (agent.store.screen).
__all__ += ["DockProgress", "UploadTrouble"]
# How far a docked camera's copy and uploads are.
__all__ += ["CopyProgress", "UploadProgress"]


class Store(
    CustodyQueries,
    FileQueries,
    SessionQueries,
    DeviceQueries,
    UploadQueries,
    HealthQueries,
    ServiceQueries,
    RestoreQueries,
    VerifiedQueries,
    SinkQueries,
    ScreenQueries,
    ProgressQueries,
    TokenQueries,
):
    """The station's database. One instance per thread."""

    MARKER = "store.id"
    # Where `dockagent rebuild` builds the database that replaces a damaged one.
    REPLACEMENT = "dockagent.db.rebuild"

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
        if not create and not readonly.may_write(data_dir):
            return cls._open_read_only(path, expected, marker)
        try:
            conn = _connect(path)
            store = cls(conn, path)
            check_length(conn, path)
            store._check_identity(expected, marker)
            if create:
                store._migrate()
            else:
                store._check_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupt(path=str(path), detail=str(exc)) from exc
        return store

    @classmethod
    def open_read_only(cls, data_dir: Path) -> Store:
        """The store over a read-only connection (`mode=ro`, agent.store.readonly) whoever
        the caller is, for a process that must never write (the bay status screen): the same
        checks as any reader's, no marker restored, no migration, nothing written."""
        path = data_dir / "dockagent.db"
        marker = data_dir / cls.MARKER
        expected = marker.read_text().strip() if marker.exists() else ""
        if not (path.exists() and path.stat().st_size > 0):
            raise StoreMissing(
                path=str(path),
                detail="empty" if path.exists() else "missing",
                marker=str(marker) if expected else "none: nothing imported yet",
            )
        return cls._open_read_only(path, expected, marker)

    @classmethod
    def _open_read_only(cls, path: Path, expected: str, marker: Path) -> Store:
        """For a reader who may not write the data directory (agent.store.readonly): the same
        checks, and nothing written: no marker restored, no migration."""
        try:
            conn, scratch = readonly.connect(path)
            store = cls(conn, path)
            if scratch is not None:
                weakref.finalize(store, shutil.rmtree, scratch, ignore_errors=True)
            check_length(conn, path if scratch is None else scratch / path.name)
            store._check_identity(expected, marker, restore=False)
            store._check_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupt(path=str(path), detail=str(exc)) from exc
        return store

    def check_whole(self) -> None:
        """PRAGMA quick_check: every page read, so its cost grows with the database (half a
        second at 200,000 files). Not at every open (each open checks the header, the store
        id and the newest records): the daemon runs it after it is ready and daily
        (agent.runtime.store_check), a full `verify` and `rebuild` before they begin, `doctor`
        the full integrity_check on a small database or with --full. StoreCorrupt on damage."""
        try:
            result = self.conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreCorrupt(path=str(self.path), detail=str(exc)) from exc
        if result != "ok":
            # One line per damaged page: a big file's report runs to megabytes.
            lines = str(result).splitlines()
            shown = "; ".join(line[:200] for line in lines[:3])
            more = f" (and {len(lines) - 3} more lines)" if len(lines) > 3 else ""
            raise StoreCorrupt(path=str(self.path), detail=shown + more)

    @classmethod
    def create_replacement(cls, data_dir: Path) -> Store:
        """An empty store under a temporary name, to be filled and then put in place of the
        database in data_dir by replace_live (agent.rebuild only).

        It carries the data directory's store id (a new one only where no marker names one),
        so the marker is right whichever of the two databases is in place when a crash comes.
        A leftover of an interrupted build is discarded: it was built from what is kept
        elsewhere, and is built again from it.
        """
        durable.make_dirs(data_dir)  # its name made durable too (fsync(2) NOTES)
        marker = data_dir / cls.MARKER
        store_id = marker.read_text().strip() if marker.exists() else ""
        return cls._build(data_dir / cls.REPLACEMENT, store_id or uuid.uuid4().hex)

    def replace_live(self) -> None:
        """Put this replacement, complete and durable, in place of dockagent.db (one rename).

        The database it replaces must already be kept under another name, and its -wal and
        -shm gone from beside it (SQLite would apply a -wal it finds to whatever database bears
        its name). Closes this store; the marker names its id afterwards.
        """
        path = self.path.parent / "dockagent.db"
        for suffix in ("-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                # Another process opened the old database meanwhile (readers take no lock).
                raise StoreBusy(path=str(path))
        store_id = self.meta("store_id") or ""
        self._put_in_place(path)
        marker = path.parent / self.MARKER
        if not marker.exists() or marker.read_text().strip() != store_id:
            _write_marker(marker, store_id)

    @classmethod
    def _initialise(cls, data_dir: Path, path: Path, marker: Path) -> Store:
        """Build the database under a temporary name and move it into place when complete.

        A kill at any moment leaves either no database (and a leftover to discard) or a whole
        one; the marker is written last, and re-derived from the database if it is missing.
        """
        durable.make_dirs(data_dir)  # its name made durable too (fsync(2) NOTES)
        store_id = uuid.uuid4().hex
        cls._build(data_dir / "dockagent.db.init", store_id)._put_in_place(path)
        _write_marker(marker, store_id)
        return cls(_connect(path), path)

    @classmethod
    def _build(cls, building: Path, store_id: str) -> Store:
        """A new database at `building` with the schema and `store_id`; leftovers discarded."""
        for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
            leftover.unlink(missing_ok=True)
        store = cls(_connect(building), building)
        # SQLite creates the file (under the umask); its mode is set here, before any -wal or
        # -shm of the placed database exists, which take the database file's mode.
        os.chmod(building, DB_MODE)
        store._migrate()
        store.conn.execute("INSERT INTO meta(key, value) VALUES ('store_id', ?)", (store_id,))
        return store

    def _put_in_place(self, path: Path) -> None:
        """Checkpoint, close, fsync, rename to path, fsync the directory."""
        building = self.path
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()
        fd = os.open(building, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(building, path)
        for leftover in (Path(f"{building}-wal"), Path(f"{building}-shm")):
            leftover.unlink(missing_ok=True)
        _fsync_dir(path.parent)

    def _check_identity(self, expected: str, marker: Path, *, restore: bool = True) -> None:
        row = None
        if self.has_table("meta"):
            row = self.conn.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()
        if row is None or not self.has_table("files"):
            if expected:
                raise StoreMissing(path=str(self.path), detail="without tables", marker=str(marker))
            raise sqlite3.DatabaseError("the database has no store identity")
        if not expected:
            # The marker is written after the database is complete: a kill in between, or a
            # marker removed by hand. The database is whole, so the marker can be restored
            # (by a writer: a reader of the group leaves it to the next one).
            if restore:
                _write_marker(marker, str(row[0]))
        elif row[0] != expected:
            raise StoreMismatch(path=str(self.path), found=row[0], expected=expected)

    def _check_schema(self) -> None:
        known = set(MIGRATIONS.names())
        applied = set(MIGRATIONS.applied_names(self.conn))
        if applied - known:
            raise StoreTooNew(
                path=str(self.path), found=sorted(applied - known)[-1], supported=sorted(known)[-1]
            )

    def _migrate(self) -> None:
        self._check_schema()
        # Nothing pending (every open but the first after an upgrade): sqlite-utils, which
        # applies them, is not even imported.
        if set(MIGRATIONS.names()) <= set(MIGRATIONS.applied_names(self.conn)):
            return
        MIGRATIONS.apply(self.db)
