"""The database schema, as an ordered list of sqlite-utils migrations (agent.store.migrating).

Every schema change is a new migration appended here, never an edit of an applied one; the
list's names are how a newer database is recognised (StoreTooNew). No queries live here.
"""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING

from agent.store.migrating import Registry

if TYPE_CHECKING:
    import sqlite_utils

MIGRATIONS = Registry("dockagent")


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


@MIGRATIONS(name="0003_uploads")
def _m0003(db: sqlite_utils.Database) -> None:
    # Upload progress lives on the file row (one upload per file): the tus upload URL and the
    # last offset the server acknowledged, so a restart resumes with HEAD (upload-protocol.md).
    # next_attempt_at is wall-clock UTC so a backoff survives restarts; purged_at marks a
    # confirmed file whose staged copy was removed after the grace period.
    db.executescript(
        """
        ALTER TABLE files ADD COLUMN upload_sink TEXT;
        ALTER TABLE files ADD COLUMN upload_url TEXT;
        ALTER TABLE files ADD COLUMN upload_expires_at TEXT;
        ALTER TABLE files ADD COLUMN upload_offset INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE files ADD COLUMN upload_checksummed INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE files ADD COLUMN upload_started_at TEXT;
        ALTER TABLE files ADD COLUMN upload_progress_at TEXT;
        ALTER TABLE files ADD COLUMN upload_attempts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE files ADD COLUMN next_attempt_at TEXT;
        ALTER TABLE files ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
        ALTER TABLE files ADD COLUMN confirmed_at TEXT;
        ALTER TABLE files ADD COLUMN confirm_level TEXT;
        ALTER TABLE files ADD COLUMN sink_ref TEXT;
        ALTER TABLE files ADD COLUMN purged_at TEXT;
        CREATE INDEX files_upload_queue ON files(state, important, sealed_at);
        """
    )


@MIGRATIONS(name="0004_health")
def _m0004(db: sqlite_utils.Database) -> None:
    # Health of each dock (clock, battery, readiness) lives beside the session in a table of
    # its own; the drift-corrected times and the retention class are carried on every file
    # row, raw camera times kept untouched. Camera log events are kept once per line (a
    # camera's log grows across docks). Assignments and faults are append-only history.
    db.executescript(
        """
        CREATE TABLE session_health (
            session_id INTEGER PRIMARY KEY REFERENCES sessions(id),
            device_serial TEXT NOT NULL,
            docked_at TEXT NOT NULL,
            camera_connect_at TEXT NOT NULL DEFAULT '',
            clock_drift_s INTEGER,
            clock_detail TEXT NOT NULL DEFAULT '',
            station_clock TEXT NOT NULL DEFAULT '',
            station_synced INTEGER,
            station_esterror_us INTEGER,
            clock_correction TEXT NOT NULL DEFAULT '',
            clock_correction_detail TEXT NOT NULL DEFAULT '',
            correction_check TEXT NOT NULL DEFAULT '',
            correction_check_detail TEXT NOT NULL DEFAULT '',
            drift_rate_s_per_day REAL,
            drift_flagged INTEGER NOT NULL DEFAULT 0,
            drift_trend TEXT NOT NULL DEFAULT '',
            officer_on_camera TEXT NOT NULL DEFAULT '',
            officer TEXT NOT NULL DEFAULT '',
            officer_source TEXT NOT NULL DEFAULT '',
            officer_mismatch TEXT NOT NULL DEFAULT '',
            battery_verdict TEXT NOT NULL DEFAULT '',
            battery TEXT NOT NULL DEFAULT '{}',
            system_log TEXT NOT NULL DEFAULT '{}',
            storage_free_bytes INTEGER,
            storage_capacity_bytes INTEGER,
            readiness TEXT NOT NULL DEFAULT '',
            readiness_reasons TEXT NOT NULL DEFAULT '[]',
            updated_at TEXT NOT NULL
        );
        CREATE INDEX session_health_device ON session_health(device_serial, docked_at);
        CREATE TABLE assignments (
            id INTEGER PRIMARY KEY,
            device_serial TEXT NOT NULL,
            officer_id TEXT NOT NULL,
            previous_officer TEXT NOT NULL DEFAULT '',
            assigned_at TEXT NOT NULL,
            assigned_by TEXT NOT NULL,
            record_seq INTEGER
        );
        CREATE INDEX assignments_device ON assignments(device_serial, assigned_at);
        CREATE TABLE faults (
            id INTEGER PRIMARY KEY,
            device_serial TEXT NOT NULL,
            session_id INTEGER REFERENCES sessions(id),
            at TEXT NOT NULL,
            source TEXT NOT NULL,
            code TEXT NOT NULL,
            severity TEXT NOT NULL,
            detail TEXT NOT NULL,
            camera_time TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX faults_device ON faults(device_serial, at);
        CREATE TABLE camera_events (
            id INTEGER PRIMARY KEY,
            device_serial TEXT NOT NULL,
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            camera_time TEXT NOT NULL,
            corrected_time TEXT NOT NULL DEFAULT '',
            event TEXT NOT NULL,
            fields TEXT NOT NULL DEFAULT '{}',
            line TEXT NOT NULL,
            UNIQUE (device_serial, line)
        );
        CREATE INDEX camera_events_event ON camera_events(event, device_serial);
        ALTER TABLE files ADD COLUMN clock_drift_s INTEGER;
        ALTER TABLE files ADD COLUMN recorded_start_corrected TEXT NOT NULL DEFAULT '';
        ALTER TABLE files ADD COLUMN recorded_end_corrected TEXT NOT NULL DEFAULT '';
        ALTER TABLE files ADD COLUMN time_basis TEXT NOT NULL DEFAULT '';
        ALTER TABLE files ADD COLUMN retention_class TEXT NOT NULL DEFAULT '';
        """
    )


@MIGRATIONS(name="0005_confirm_boot_clock")
def _m0005(db: sqlite_utils.Database) -> None:
    # The moment of confirmation also on the boot clock (agent.core.wallclock): which boot (or
    # process) it was on and CLOCK_BOOTTIME then, so the purge grace is measured on a clock a
    # step of the wall clock cannot move (agent.ingest.policy.copy_may_be_purged). NULL on rows
    # confirmed before: their grace is measured on the wall clock, and only while it is trusted.
    db.executescript(
        """
        ALTER TABLE files ADD COLUMN confirmed_clock TEXT;
        ALTER TABLE files ADD COLUMN confirmed_boottime_s REAL;
        """
    )


@MIGRATIONS(name="0006_reason_kind")
def _m0006(db: sqlite_utils.Database) -> None:
    # What kind of problem a file's reason describes (model.ProblemKind), so code tests the kind
    # and never parses the sentence a person reads. Empty where the reason is; rows written
    # before this migration keep '' beside their reason.
    db.executescript("ALTER TABLE files ADD COLUMN reason_kind TEXT NOT NULL DEFAULT '';")


@MIGRATIONS(name="0007_identity_binding")
def _m0007(db: sqlite_utils.Database) -> None:
    # What the station could tell of a session's camera (its USB serial against DEVICE.INF, its
    # binding), as a sentence; '' on sessions from before. And when a station-signed binding was
    # first written to an enrolled camera: from then on every dock must show it.
    db.executescript(
        """
        ALTER TABLE sessions ADD COLUMN identity_check TEXT NOT NULL DEFAULT '';
        ALTER TABLE devices ADD COLUMN bound_at TEXT;
        """
    )


# The identity constraint 0001 declared, as SQLite keeps it in the table's text.
_IDENTITY_UNIQUE = re.compile(
    r",\s*UNIQUE\s*\(\s*device_serial\s*,\s*camera_path\s*,\s*size\s*,\s*mtime_ns\s*\)", re.I
)


@MIGRATIONS(name="0008_wipe_versions_of_a_path", transactional=False)
def _m0008(db: sqlite_utils.Database) -> None:
    # Path, size and mtime do not prove content: a camera may hold other bytes under the
    # identity of a file already held (a name reused after a clock reset, FAT's 2 s mtimes, a
    # hostile device). Those bytes are new evidence and get a row of their own, so the identity
    # is no longer unique. At most one row of an identity may wait for its copy (no sha256 yet).
    # SQLite cannot drop a table constraint: the table is rebuilt by the procedure of
    # https://www.sqlite.org/lang_altertable.html#otheralter (foreign keys off, one
    # transaction, foreign_key_check before commit). Its own transaction (transactional=False:
    # PRAGMA foreign_keys is a no-op inside one); run again after a crash, it finds no
    # constraint left and only makes sure of the index.
    conn = db.conn
    (table_sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name='files'").fetchone()
    unique_unsealed = (
        "CREATE UNIQUE INDEX IF NOT EXISTS files_identity_uncopied "
        "ON files(device_serial, camera_path, size, mtime_ns) WHERE sha256 IS NULL"
    )
    if not _IDENTITY_UNIQUE.search(table_sql):
        conn.execute(unique_unsealed)
        return
    new_sql = _IDENTITY_UNIQUE.sub("", table_sql, count=1)
    new_sql = re.sub(r"^CREATE TABLE \"?files\"?", "CREATE TABLE files_rebuilt", new_sql)
    indexes = [
        str(r[0])
        for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name='files' AND type IN ('index', 'trigger') "
            "AND sql IS NOT NULL"
        )
    ]
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(new_sql)
            conn.execute("INSERT INTO files_rebuilt SELECT * FROM files")
            conn.execute("DROP TABLE files")
            conn.execute("ALTER TABLE files_rebuilt RENAME TO files")
            for sql in indexes:
                conn.execute(sql)
            conn.execute(unique_unsealed)
            if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise sqlite3.IntegrityError("files rebuilt with a dangling reference")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


@MIGRATIONS(name="0009_scale_indexes")
def _m0009(db: sqlite_utils.Database) -> None:
    # What every command, the daemon's start-up and its idle loop ask, answered from an index or
    # a table that does not grow with history (agent.store.hot lists the queries; a test reads
    # their EXPLAIN QUERY PLAN). file_counts is files per camera and state, kept by triggers in
    # the same transaction as the row change, so `status` and the status line count nothing.
    # The partial index on unconfirmed rows holds only the rows still in the pipeline: the
    # oldest of them is found without stepping over every file ever confirmed.
    db.executescript(
        """
        CREATE INDEX files_last_session ON files(last_session_id, state);
        CREATE INDEX files_first_session ON files(session_id);
        CREATE INDEX files_staged_at ON files(staged_at);
        CREATE INDEX files_confirmed_at ON files(confirmed_at);
        CREATE INDEX files_purge ON files(state, purged_at);
        CREATE INDEX files_unconfirmed ON files(discovered_at, id) WHERE state != 'confirmed';
        CREATE INDEX sessions_docked ON sessions(docked_at);
        CREATE INDEX sessions_device ON sessions(device_serial, docked_at);
        CREATE INDEX sessions_docked_now ON sessions(id) WHERE undocked_at IS NULL;
        CREATE INDEX sessions_running ON sessions(id) WHERE outcome = 'running';
        CREATE INDEX session_health_latest ON session_health(device_serial, session_id);
        CREATE INDEX faults_session ON faults(session_id);
        CREATE INDEX faults_at ON faults(at);
        CREATE INDEX camera_events_session ON camera_events(session_id);
        CREATE INDEX records_kind ON records(kind, seq);
        CREATE INDEX refusals_at ON refusals(at);
        CREATE TABLE file_counts (
            device_serial TEXT NOT NULL,
            state TEXT NOT NULL,
            files INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            PRIMARY KEY (device_serial, state)
        ) WITHOUT ROWID;
        INSERT INTO file_counts(device_serial, state, files, bytes)
            SELECT device_serial, state, COUNT(*), COALESCE(SUM(size), 0) FROM files
            GROUP BY device_serial, state;
        CREATE TRIGGER file_counts_insert AFTER INSERT ON files BEGIN
            INSERT INTO file_counts(device_serial, state, files, bytes)
                VALUES (NEW.device_serial, NEW.state, 1, NEW.size)
                ON CONFLICT(device_serial, state)
                DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes;
        END;
        CREATE TRIGGER file_counts_update AFTER UPDATE OF device_serial, state, size ON files
        WHEN OLD.device_serial IS NOT NEW.device_serial OR OLD.state IS NOT NEW.state
            OR OLD.size IS NOT NEW.size
        BEGIN
            UPDATE file_counts SET files = files - 1, bytes = bytes - OLD.size
                WHERE device_serial = OLD.device_serial AND state = OLD.state;
            INSERT INTO file_counts(device_serial, state, files, bytes)
                VALUES (NEW.device_serial, NEW.state, 1, NEW.size)
                ON CONFLICT(device_serial, state)
                DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes;
        END;
        CREATE TRIGGER file_counts_delete AFTER DELETE ON files BEGIN
            UPDATE file_counts SET files = files - 1, bytes = bytes - OLD.size
                WHERE device_serial = OLD.device_serial AND state = OLD.state;
        END;
        """
    )


@MIGRATIONS(name="0010_scale_verify_marks")
def _m0010(db: sqlite_utils.Database) -> None:
    # Where the last clean `dockagent verify` ended (the chain's head then, by seq and hash, and
    # the highest file row), so `verify --incremental` checks only what came after: the records
    # past it, the rows added since, and the rows changed or removed since, which the triggers
    # note here once a verify has ended somewhere (n orders the notes, so a verify clears only
    # those it saw). `verify --full` checks everything whatever these say.
    db.executescript(
        """
        CREATE TABLE verified_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            seq INTEGER NOT NULL,
            record_hash TEXT NOT NULL,
            max_file_id INTEGER NOT NULL,
            verified_at TEXT NOT NULL
        );
        CREATE TABLE files_changed (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id INTEGER NOT NULL UNIQUE
        );
        CREATE TRIGGER files_changed_update AFTER UPDATE ON files
        WHEN EXISTS (SELECT 1 FROM verified_head)
        BEGIN
            INSERT OR REPLACE INTO files_changed(file_id) VALUES (OLD.id);
        END;
        CREATE TRIGGER files_changed_delete AFTER DELETE ON files
        WHEN EXISTS (SELECT 1 FROM verified_head)
        BEGIN
            INSERT OR REPLACE INTO files_changed(file_id) VALUES (OLD.id);
        END;
        """
    )


@MIGRATIONS(name="0011_confirm_records_index")
def _m0011(db: sqlite_utils.Database) -> None:
    # A sink's signed confirmation of a file is a record of kind `confirmation`; purge and wipe
    # ask for it by file (agent.store.uploads), so it is found by index, not by reading the chain.
    db.executescript(
        "CREATE INDEX records_confirmation ON records(file_id) WHERE kind = 'confirmation';"
    )


@MIGRATIONS(name="0012_scsi_unlock")
def _m0012(db: sqlite_utils.Database) -> None:
    # A camera opened by vendor SCSI commands: what its unlock found (device record with the
    # officer's and unit's names, charge, SD card, clock set or why not), as JSON; never the
    # password. '' for every other camera.
    db.executescript("ALTER TABLE sessions ADD COLUMN unlock TEXT NOT NULL DEFAULT '';")


@MIGRATIONS(name="0013_profiles_file_classification")
def _m0013(db: sqlite_utils.Database) -> None:
    # What camera profile format 2 says of a file beyond its kind and times: the lens of a
    # multi-channel camera, the clip a partner file belongs to (its camera path, raw bytes) and
    # the profile's note on why it is what it is (agent.camera.profile_classify). A table of
    # its own, with a row only for the files it says something of: the files table, which the
    # queue's hot queries read whole, stays as it was.
    db.executescript(
        """
        CREATE TABLE file_classes (
            file_id INTEGER PRIMARY KEY REFERENCES files(id),
            channel TEXT NOT NULL DEFAULT '',
            partner_of BLOB,
            class_note TEXT NOT NULL DEFAULT ''
        );
        """
    )


@MIGRATIONS(name="0014_sinks_per_sink_state")
def _m0014(db: sqlite_utils.Database) -> None:
    # With several sinks ([[sync.sinks]]) each file is uploaded to each, confirmed and retried
    # apart: one row per file and sink, by the sink's configured name. The file's own row stays
    # the queue (sealed until held_when is met); purge and wipe still ask the chain for signed
    # confirmations, never these rows.
    db.executescript(
        """
        CREATE TABLE file_sinks (
            file_id INTEGER NOT NULL,
            sink TEXT NOT NULL,
            state TEXT NOT NULL,
            level TEXT NOT NULL DEFAULT '',
            ref TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (file_id, sink)
        ) WITHOUT ROWID;
        CREATE INDEX file_sinks_state ON file_sinks(state, sink);
        """
    )


@MIGRATIONS(name="0015_screen_port_path")
def _m0015(db: sqlite_utils.Database) -> None:
    # The physical USB port a camera was docked in (udev's ID_PATH, as the device source
    # reported it; '' when it cannot tell): the bay status screen names the bay by it.
    db.executescript("ALTER TABLE sessions ADD COLUMN port_path TEXT NOT NULL DEFAULT '';")


@MIGRATIONS(name="0016_docked_progress_readiness")
def _m0016(db: sqlite_utils.Database) -> None:
    # How far the copy of a docked camera is (bytes done of the bytes to copy, and of the file
    # being copied), one row per session overwritten a few times a second at most; and when the
    # readiness verdict was last judged, and whether it is final (the camera was undocked; every
    # dock before this migration is: the daemon's start undocks whatever was docked). The verdicts
    # not final yet are found by a partial index: the history is never walked for them.
    # A table of its own: the files table, which the queue's hot queries read whole, stays as it
    # was, and a progress write touches one short row.
    db.executescript(
        """
        CREATE TABLE copy_progress (
            session_id INTEGER PRIMARY KEY REFERENCES sessions(id),
            bytes_done INTEGER NOT NULL DEFAULT 0,
            bytes_total INTEGER NOT NULL DEFAULT 0,
            file_id INTEGER,
            file_done INTEGER NOT NULL DEFAULT 0,
            file_total INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL
        );
        ALTER TABLE session_health ADD COLUMN readiness_at TEXT NOT NULL DEFAULT '';
        ALTER TABLE session_health ADD COLUMN readiness_final INTEGER NOT NULL DEFAULT 0;
        UPDATE session_health SET readiness_final = 1;
        CREATE INDEX session_health_not_final ON session_health(session_id)
            WHERE readiness_final = 0;
        """
    )


@MIGRATIONS(name="0017_ledger_officers")
def _m0017(db: sqlite_utils.Database) -> None:
    # The unit's ledger (台账): the officer's name and unit beside the badge a camera is
    # enrolled to (the fields of a recorder's own device record), officers by badge so any
    # row naming a badge shows the name, and a supervisor's written explanation of a late or
    # interrupted recording, one per file (the latest; each one is also an audit record).
    db.executescript(
        """
        ALTER TABLE devices ADD COLUMN officer_name TEXT NOT NULL DEFAULT '';
        ALTER TABLE devices ADD COLUMN unit_id TEXT NOT NULL DEFAULT '';
        ALTER TABLE devices ADD COLUMN unit_name TEXT NOT NULL DEFAULT '';
        CREATE TABLE officers (
            badge TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            unit_id TEXT NOT NULL DEFAULT '',
            unit_name TEXT NOT NULL DEFAULT '',
            updated_at TEXT NOT NULL,
            updated_by TEXT NOT NULL
        );
        CREATE TABLE explanations (
            file_id INTEGER PRIMARY KEY REFERENCES files(id),
            text TEXT NOT NULL,
            explained_at TEXT NOT NULL,
            explained_by TEXT NOT NULL,
            record_seq INTEGER
        );
        """
    )


@MIGRATIONS(name="0018_age_sealed_copies")
def _m0018(db: sqlite_utils.Database) -> None:
    # A staged copy encrypted to the central key ([custody] encrypt_to): the SHA-256 and size
    # of the bytes staging holds (the ciphertext), which verify, recovery and the sinks check;
    # `sha256` and `size` stay the camera's (the evidence). NULL: the copy is the camera's bytes.
    db.executescript(
        """
        ALTER TABLE files ADD COLUMN stored_sha256 TEXT;
        ALTER TABLE files ADD COLUMN stored_size INTEGER;
        """
    )


@MIGRATIONS(name="0019_custody_token_delivery")
def _m0019(db: sqlite_utils.Database) -> None:
    # RFC 3161 tokens go to every sink with the records (agent.sync.token_delivery): each kept
    # token by the record it stamps (the chain head then: its hash is the token's imprint, and
    # records 1..seq are what it covers), and one row per token and sink, `waiting` until the
    # sink acknowledged it (`delivered`, with where it holds it) or `held` with the reason.
    # The waiting rows are found by a partial index: delivered history is never walked.
    db.executescript(
        """
        CREATE TABLE tsa_tokens (
            seq INTEGER PRIMARY KEY,
            record_hash TEXT NOT NULL,
            first_new INTEGER NOT NULL,
            stamped_at TEXT NOT NULL DEFAULT '',
            kept_at TEXT NOT NULL
        );
        CREATE TABLE token_sinks (
            seq INTEGER NOT NULL,
            sink TEXT NOT NULL,
            state TEXT NOT NULL,
            ref TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL DEFAULT '',
            attempts INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (seq, sink)
        ) WITHOUT ROWID;
        CREATE INDEX token_sinks_waiting ON token_sinks(sink, seq) WHERE state = 'waiting';
        """
    )


@MIGRATIONS(name="0020_custody_sink_offsets")
def _m0020(db: sqlite_utils.Database) -> None:
    # Each sink's own tus upload of a file (several sinks, 0014): its URL and the last offset
    # it acknowledged, so every sink resumes its own upload after a restart (HEAD), where the
    # file row's one slot held only the last sink's. The file row's columns stay what `queue`
    # shows of the upload in progress.
    db.executescript(
        """
        ALTER TABLE file_sinks ADD COLUMN upload_url TEXT;
        ALTER TABLE file_sinks ADD COLUMN upload_expires_at TEXT;
        ALTER TABLE file_sinks ADD COLUMN upload_offset INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE file_sinks ADD COLUMN upload_checksummed INTEGER NOT NULL DEFAULT 1;
        """
    )


@MIGRATIONS(name="0021_reupload_unprovable_uploads")
def _m0021(db: sqlite_utils.Database) -> None:
    # How many of the file's uploads were complete but unprovable at confirm_level (a server
    # that lost one upload's Repr-Digest), each terminated and the file sent again: the bound
    # on sending it again (agent.sync.tus_sink.reupload_unprovable) must hold across restarts.
    db.executescript("ALTER TABLE files ADD COLUMN unprovable_uploads INTEGER NOT NULL DEFAULT 0;")


@MIGRATIONS(name="0022_scale_sink_proof_and_wipe_indexes")
def _m0022(db: sqlite_utils.Database) -> None:
    # Two questions asked at every `sync` and every dock walked history when the answer is no
    # (issue: station scale). Whether a sink ever confirmed a file `verified` (Store
    # .digest_proven, once per process and sink) read every file row of a station whose sinks
    # confirm at a lower level; which of a camera's rows have a wipe started and not recorded
    # done (every dock's settle_interrupted_wipes) read every row that camera ever had. Partial
    # indexes hold only the rows that answer yes: a no is one probe of an empty index. The
    # file_sinks one names all three columns the question compares, so that the planner takes
    # it over file_sinks_state (state, sink), which holds every confirmation of the sink.
    db.executescript(
        """
        CREATE INDEX files_verified_sink ON files(upload_sink) WHERE confirm_level = 'verified';
        CREATE INDEX file_sinks_verified ON file_sinks(sink, state, level)
            WHERE state = 'confirmed' AND level = 'verified';
        CREATE INDEX files_wipe_unfinished ON files(device_serial)
            WHERE wipe_started_at IS NOT NULL AND wiped_at IS NULL;
        """
    )
