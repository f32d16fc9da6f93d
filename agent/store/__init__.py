"""The store: the only package that speaks SQL.

SQLite through sqlite-utils, schema applied with sqlite-utils migrations (schema.py), one
module of queries per domain. Opening refuses a damaged database, and refuses to create a fresh
one where the data directory shows that one existed before. No file I/O on evidence here and no
policy decisions.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

from agent import durable
from agent.errors import StoreCorrupt, StoreMismatch, StoreMissing, StoreTooNew
from agent.store.base import _connect, _fsync_dir, _write_marker
from agent.store.custody import CustodyQueries, RecordRow
from agent.store.devices import DeviceQueries
from agent.store.health import HealthQueries
from agent.store.restore import RestoreQueries, salvage_records
from agent.store.schema import MIGRATIONS
from agent.store.service import ServiceQueries
from agent.store.uploads import UploadQueries

__all__ = ["MIGRATIONS", "RecordRow", "Store", "salvage_records"]


class Store(
    CustodyQueries, DeviceQueries, UploadQueries, HealthQueries, ServiceQueries, RestoreQueries
):
    """The station's database. One instance per thread."""

    MARKER = "store.id"

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
    def create_fresh(cls, data_dir: Path) -> Store:
        """A new, empty store where the old database was moved aside (agent.rebuild only):
        a new store id, and the marker rewritten to name it."""
        path = data_dir / "dockagent.db"
        if path.exists():
            raise FileExistsError(f"{path} still exists; move it aside first")
        return cls._initialise(data_dir, path, data_dir / cls.MARKER)

    @classmethod
    def _initialise(cls, data_dir: Path, path: Path, marker: Path) -> Store:
        """Build the database under a temporary name and move it into place when complete.

        A kill at any moment leaves either no database (and a leftover to discard) or a whole
        one; the marker is written last, and re-derived from the database if it is missing.
        """
        durable.make_dirs(data_dir)  # its name made durable too (fsync(2) NOTES)
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
