"""The connection every store part shares: pragmas, transactions, the meta table.

WAL with synchronous=FULL on every connection (NORMAL lost committed rows in a simulated power
cut); explicit BEGIN IMMEDIATE transactions, with work that must wait for the commit (files that
describe a committed record) run after it. No domain queries live here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import StoreBusy

if TYPE_CHECKING:
    import sqlite_utils

# The store's failures by the names the rest of the agent catches them under: only the store
# imports sqlite3 (the import contracts in pyproject.toml), so callers say store.DatabaseError.
DatabaseError = sqlite3.DatabaseError
StoreError = sqlite3.Error


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB: the file itself is damaged, not the statement."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary result code
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def is_disk_full(exc: sqlite3.Error) -> bool:
    return bool(getattr(exc, "sqlite_errorcode", 0) == sqlite3.SQLITE_FULL)


# How long a transaction waits for its turn among this process's threads before StoreBusy:
# as long as SQLite's busy_timeout (below) lets it wait for another process.
WRITER_WAIT_S = 30.0

# The threads of one process (the daemon's camera workers, its upload workers) queue here for
# the write lock before BEGIN IMMEDIATE. SQLite's busy handler makes a waiting connection sleep
# and retry, up to 100 ms a sleep (sqlite3.c, sqliteDefaultBusyCallback), so with 25 cameras
# committing at once each commit waited about 40 ms for a lock free most of that time: seconds
# of every camera's copy at USB speed. A thread waiting on this lock wakes as soon as the
# writer before it commits. Other processes (the CLI) still meet SQLite's own lock. One lock
# per database file, by its real path; reentrant, so a thread that opens a second connection
# inside a transaction meets SQLite's busy timeout as before instead of waiting on itself.
_WRITERS: dict[str, threading.RLock] = {}
_WRITERS_LOCK = threading.Lock()


def _writer_lock(path: Path) -> threading.RLock:
    key = os.path.realpath(path)
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(key, threading.RLock())


# The database and its marker may be read by the station's group (README "Who may run what");
# SQLite gives the -wal and -shm it creates the database file's mode.
DB_MODE = 0o640


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


def check_length(conn: sqlite3.Connection, path: Path) -> None:
    """The cheap check of every open: when no -wal holds newer pages, the database file is as
    long as SQLite says the database is (whole pages). A truncated file is refused here instead
    of at the first page a query misses; the pages' contents are PRAGMA quick_check's
    (Store.check_whole), and a file that is not a database fails the connection's first
    statement. Only os.stat looks at the file: opening and closing a descriptor of it would
    drop every POSIX lock SQLite holds on it in this process (fcntl(2), "Advisory record
    locking"; https://www.sqlite.org/howtocorrupt.html section 2.2). DatabaseError on a finding."""
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return  # the -wal holds pages the file does not have yet
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    size = os.stat(path).st_size
    if page_size < 512 or size % page_size or size < pages * page_size:
        raise sqlite3.DatabaseError(
            f"database disk image is malformed: {size} bytes, SQLite counts "
            f"{pages} pages of {page_size}"
        )


def _write_marker(marker: Path, store_id: str) -> None:
    # The marker outlives the database: if the database later vanishes or is emptied, the
    # marker says state was lost instead of letting a fresh queue hide it.
    tmp = marker.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, DB_MODE)
    try:
        os.fchmod(fd, DB_MODE)
        os.write(fd, store_id.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, marker)
    _fsync_dir(marker.parent)


def not_found(table: str, row_id: int) -> Exception:
    """sqlite-utils' NotFoundError for a row a caller named that is not there (the store's
    own plain SELECTs raise what its Table.get() would)."""
    from sqlite_utils.db import NotFoundError  # noqa: PLC0415 - only on the failure

    return NotFoundError(f"no row {row_id} in {table}")


def _values(fields: Mapping[str, object]) -> list[object]:
    # sqlite-utils stores a dict or list as its JSON text; so does the store.
    return [json.dumps(v) if isinstance(v, dict | list) else v for v in fields.values()]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StoreBase:
    """One connection to the station's database; one per thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        # What sqlite_utils.Database sets on the connection it wraps, set here for every
        # connection, wrapped or not: with it, rows a REPLACE deletes fire the delete triggers
        # (file_counts), https://www.sqlite.org/lang_conflict.html "REPLACE".
        conn.execute("PRAGMA recursive_triggers = ON")
        self._db: sqlite_utils.Database | None = None
        self._column_names: dict[str, frozenset[str]] = {}
        self.path = path
        self._after_commit: list[Callable[[], None]] = []
        self._writer = _writer_lock(path)

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over this connection, for the writes that use it (inserts, updates,
        migrations). Made at first use: importing sqlite-utils (click, dateutil, its plugins)
        cost a read command a quarter of its start-up, and reading needs none of it."""
        if self._db is None:
            import sqlite_utils  # noqa: PLC0415 - see the docstring

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def insert_row(self, table: str, fields: Mapping[str, object]) -> int:
        """INSERT one row of these columns; returns its id. What sqlite-utils' Table.insert
        does for the flat values the store writes, without importing sqlite-utils: a writing
        command (an import, the daemon) then starts without click, dateutil and its plugins,
        ~10 MiB of its resident memory."""
        names = self._known_columns(table, fields)
        marks = ", ".join("?" for _ in names)
        cursor = self.conn.execute(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", _values(fields)
        )
        return int(cursor.lastrowid or 0)

    def update_row(self, table: str, row_id: int, fields: Mapping[str, object]) -> None:
        """UPDATE the row `row_id` of `table` (sqlite-utils' Table.update, without it: see
        insert_row); a row that is not there raises what Table.update would (NotFoundError)."""
        names = self._known_columns(table, fields)
        if names:
            sets = ", ".join(f"{name}=?" for name in names)
            sql = f"UPDATE {table} SET {sets} WHERE id=?"
            changed = self.conn.execute(sql, [*_values(fields), row_id]).rowcount
        else:
            sql = f"SELECT count(*) FROM {table} WHERE id=?"
            changed = int(self.conn.execute(sql, (row_id,)).fetchone()[0])
        if changed == 0:
            raise not_found(table, row_id)

    def _known_columns(self, table: str, fields: Mapping[str, object]) -> list[str]:
        """The names of `fields`, each a column of `table` (they are written into the SQL)."""
        known = self._column_names.get(table)
        if known is None:
            rows = self.conn.execute("SELECT name FROM pragma_table_info(?)", (table,))
            known = self._column_names[table] = frozenset(str(r[0]) for r in rows)
        unknown = set(fields) - known
        if unknown or not known:
            raise ValueError(f"not a column of {table}: {sorted(unknown)}")
        return list(fields)

    def has_table(self, name: str) -> bool:
        """Whether the database has this table (what sqlite-utils' table_names() would say,
        without it)."""
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE: take the write lock up front so a transition cannot deadlock.

        Nested use joins the outer transaction (sqlite-utils savepoints work inside it).
        """
        if self.conn.in_transaction:
            yield
            return
        if not self._writer.acquire(timeout=WRITER_WAIT_S):
            raise StoreBusy(path=str(self.path))
        try:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreBusy(path=str(self.path)) from exc
            try:
                yield
            except BaseException:
                self._after_commit.clear()
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            try:
                self.conn.execute("COMMIT")
            finally:
                hooks, self._after_commit = self._after_commit, []
        finally:
            self._writer.release()
        for hook in hooks:
            hook()

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run hook once the outermost transaction has committed (never if it rolls back);
        outside a transaction, now. A file that describes a record must not exist before the
        record does: a rolled-back record's seq is handed out again."""
        if self.conn.in_transaction:
            self._after_commit.append(hook)
        else:
            hook()

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )
