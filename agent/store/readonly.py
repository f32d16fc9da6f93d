"""The database for a reader who may not write the data directory (a technician of the group).

SQLite reads a WAL database over a read-only connection (`mode=ro`) only while its -wal and
-shm exist (https://www.sqlite.org/wal.html, "Read-Only Databases"): a reader that cannot write
the directory cannot create them. They exist while a writer (the daemon) has the database open,
and take the database's mode (0640). Then the database is read in place, through SQLite's own
locks. When they do not exist, no connection is open and the last one to close checkpointed
everything into the database file: the reader copies that file into a scratch directory of its
own and reads the copy, and the copy counts only if no -wal appeared and the file did not change
(inode, size, mtime, ctime) while it was copied; else it tries again.

Nothing here writes beside the database: no marker, no migration, no checkpoint.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import urllib.parse
from pathlib import Path

from agent.core.errors import StoreBusy

ATTEMPTS = 5
# What a read-only connection meets when the -wal or -shm went away between looking and opening.
_GONE = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)


def may_write(data_dir: Path) -> bool:
    """True for the service user (and root): the store is opened as a writer opens it."""
    return not data_dir.exists() or os.access(data_dir, os.W_OK | os.X_OK)


def connect(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """A read-only connection to the database at path, and the scratch directory the caller
    must remove once it is closed (None when the database is read in place)."""
    for _ in range(ATTEMPTS):
        if _wal_files_exist(path):
            try:
                return _probe(_connect(path)), None
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _GONE:
                    raise
            continue
        scratch = Path(tempfile.mkdtemp(prefix="dockagent-read-"))
        copy = scratch / path.name
        if _copy_still(path, copy):
            return _probe(_connect(copy)), scratch
        shutil.rmtree(scratch, ignore_errors=True)
    raise StoreBusy(path=str(path))


def writer_present(path: Path) -> bool:
    """Whether some process has the database open now (its -wal and -shm exist only then): on
    a station, the daemon, which keeps it open while it runs."""
    return _wal_files_exist(path)


def _wal_files_exist(path: Path) -> bool:
    return Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _copy_still(path: Path, copy: Path) -> bool:
    """Copy the database; True if it held still meanwhile (no writer opened it)."""
    before = _identity(path)
    shutil.copyfile(path, copy)
    return not Path(f"{path}-wal").exists() and _identity(path) == before


def _connect(path: Path) -> sqlite3.Connection:
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
    conn.row_factory = sqlite3.Row
    return conn


def _probe(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Settings of a reader, and one read: a -wal that went away shows here, not later."""
    try:
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA query_only = ON")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"journal_mode is {mode}, WAL required")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn
