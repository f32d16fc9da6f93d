"""The database schema, as an ordered list of sqlite-utils migrations.

Every schema change is a new migration appended here, never an edit of an applied one; the
list's names are how a newer database is recognised (StoreTooNew). No queries live here.
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

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


@MIGRATIONS(name="0002_devices")
def _m0002(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE devices (
            serial TEXT PRIMARY KEY,
            officer_id TEXT NOT NULL DEFAULT '',
            profile TEXT NOT NULL DEFAULT '',
            enrolled_at TEXT NOT NULL,
            enrolled_by TEXT NOT NULL,
            revoked_at TEXT,
            revoked_by TEXT
        );
        CREATE TABLE refusals (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            source TEXT NOT NULL,
            identity TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        ALTER TABLE sessions ADD COLUMN profile TEXT NOT NULL DEFAULT '';
        ALTER TABLE sessions ADD COLUMN undocked_at TEXT;
        ALTER TABLE sessions ADD COLUMN usb_serial TEXT NOT NULL DEFAULT '';
        """
    )
