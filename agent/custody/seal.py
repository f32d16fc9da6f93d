"""Sealing: each custody record signed with the station key and appended to the hash chain.

A record's form (canonical JSON, its envelope, its hash and link) is agent.custody.records'; here
each is made, signed and committed. The database holds the chain; a sidecar next to each staged
file holds its envelope, an audit record's sidecar and the chain's head are kept in staging too
(agent.custody.chainfiles), so the queue and the whole chain can be rebuilt from staging alone.
This module signs and writes; it reads no camera, checks no record and decides no policy.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.core import crashpoints, durable
from agent.core.model import FileState
from agent.custody import chainfiles
from agent.custody.keys import StationKey
from agent.custody.records import GENESIS, RECORD_VERSION, canonical, record_hash, sidecar_bytes
from agent.custody.staging import confirmation_path, sidecar_path
from agent.store import FileRow, RecordRow, SessionRow, Store


def signed_record(
    kind: str,
    body: dict[str, Any],
    file_id: int | None,
    seq: int,
    prev: str,
    key: StationKey,
    station_id: str,
) -> RecordRow:
    """`body` as the record at `seq` after the record hashed `prev`, signed with `key`.

    The body is completed with its place, key id and station, made canonical, hashed and
    signed (Ed25519 over the canonical bytes). Pure: nothing is stored or written.
    """
    full = {**body, "seq": seq, "prev": prev, "key_id": key.key_id, "station_id": station_id}
    data = canonical(full)
    text = data.decode()
    return RecordRow(
        seq=seq,
        kind=kind,
        file_id=file_id,
        body=text,
        record_hash=record_hash(text),
        prev_hash=prev,
        signature=base64.b64encode(key.sign(data)).decode("ascii"),
        key_id=key.key_id,
    )


def original_name(raw: bytes) -> str:
    """The camera name as text: UTF-8 where it is, \\xNN escapes where it is not."""
    return raw.decode("utf-8", "backslashreplace")


def _classification(row: FileRow) -> dict[str, Any]:
    """What camera profile format 2 adds to a file's record, only where it says something (the
    records of other cameras stay as they were): the lens (`channel`), the profile's note, and
    for a partner file (`<stem>.THM` beside `<stem>.MOV`, agent.camera.profile_classify) the
    clip it belongs to, by name and raw bytes. The partner's record is the one that names both:
    it is sealed with the clip at the same dock, the clip's record found by the clip's name in
    the same session; a partner with no clip is sealed alone and its note says so."""
    out: dict[str, Any] = {}
    if row.channel:
        out["channel"] = row.channel
    if row.class_note:
        out["class_note"] = row.class_note
    if row.partner_of:
        out["partner_of"] = original_name(row.partner_of)
        out["partner_of_b64"] = base64.b64encode(row.partner_of).decode("ascii")
    return out


def _sealed_copy(row: FileRow) -> dict[str, Any]:
    """Where the staged copy is encrypted to the central key: the SHA-256 and size of the
    ciphertext staging holds (and the sinks receive), beside the camera's `sha256` and `size`,
    which stay the evidence's identity. Added fields, only on such records."""
    if row.stored_sha256 is None:
        return {}
    return {
        "encryption": "age",
        "stored_sha256": row.stored_sha256,
        "stored_size": row.stored_size,
    }


def _utc(ts: str | None) -> str:
    return ts or datetime.now(UTC).isoformat(timespec="seconds")


class Sealer:
    def __init__(self, store: Store, key: StationKey, station_id: str, staging_root: Path) -> None:
        self.store = store
        self.key = key
        self.station_id = station_id
        self.staging_root = staging_root

    def _body(self, row: FileRow, session: SessionRow) -> dict[str, Any]:
        raw_name = row.camera_path
        return (
            _classification(row)
            | _sealed_copy(row)
            | {
                "v": RECORD_VERSION,
                "type": "file",
                "device_serial": row.device_serial,
                "officer_id": session.officer_id,
                "session_id": row.session_id,
                "file_id": row.id,
                "original_name": original_name(raw_name),
                "original_name_b64": base64.b64encode(raw_name).decode("ascii"),
                "size": row.size,
                "sha256": row.sha256,
                "kind": row.kind.value,
                "important": row.important,
                "segment": row.segment,
                "camera_mtime": datetime.fromtimestamp(row.mtime_ns // 10**9).isoformat(),
                "recorded_start": row.recorded_start,
                "recorded_end": row.recorded_end,
                # Added fields (same RECORD_VERSION: no existing field changed meaning): the raw
                # camera times above stay as read; these are them minus the dock's measured drift,
                # with the basis of the correction, and the file's retention class.
                "clock_drift_s": row.clock_drift_s,
                "recorded_start_corrected": row.recorded_start_corrected,
                "recorded_end_corrected": row.recorded_end_corrected,
                "time_basis": row.time_basis,
                "retention_class": row.retention_class,
                "ingested_at": _utc(row.staged_at),
                # Added for `dockagent rebuild`: the row's identity on the camera to the nanosecond
                # (camera_mtime above is rounded, local time) and whether it may be wiped.
                "mtime_ns": row.mtime_ns,
                "wipeable": row.wipeable,
            }
        )

    def _append(self, kind: str, body: dict[str, Any], file_id: int | None, now: str) -> RecordRow:
        """Sign and append one record at the head of the chain. Call inside a transaction."""
        head = self.store.chain_head()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        record = signed_record(kind, body, file_id, seq, prev, self.key, self.station_id)
        self.store.append_record(record, now)
        self.store.set_meta("chain_head_seq", str(seq))
        return record

    def seal(self, file_id: int, now: str) -> RecordRow:
        """Append the file's signed record to the chain and mark it sealed, atomically."""
        return self.seal_many([file_id], now)[0]

    def seal_many(self, file_ids: list[int], now: str) -> list[RecordRow]:
        """Seal staged files in one transaction (one commit for a batch of small files), then
        write their sidecars, fsyncing the directory once per batch."""
        records: list[tuple[str, RecordRow]] = []
        with self.store.transaction():
            sessions: dict[int, SessionRow] = {}  # a batch is one camera's session
            for file_id in file_ids:
                row = self.store.classified(self.store.file(file_id))
                if row.session_id not in sessions:
                    sessions[row.session_id] = self.store.session(row.session_id)
                session = sessions[row.session_id]
                record = self._append("file", self._body(row, session), file_id, now)
                self.store.transition(
                    file_id,
                    FileState.STAGED,
                    FileState.SEALED,
                    record_seq=record.seq,
                    sealed_at=now,
                    updated_at=now,
                    reason="",
                )
                records.append((str(row.staged_path), record))
        # Sidecars of a batch: content written, one syncfs, then each linked, then one fsync per
        # directory. A crash in between loses a sidecar (recovery restores it from the chain),
        # never leaves one torn.
        temps: list[tuple[durable.TempFile, int]] = []
        try:
            for staged_path, record in records:
                crashpoints.hit("seal.committed")
                path = sidecar_path(self.staging_root, staged_path)
                data = sidecar_bytes(record)
                tmp = durable.TempFile(path.parent, path.name, len(data))
                temps.append((tmp, len(data)))
                tmp.write_all(data)
            if temps:
                durable.sync_filesystem(self.staging_root)
            for tmp, size in temps:
                tmp.publish(size, sync_dir=False, sync_file=False)
                crashpoints.hit("seal.sidecar_written")
        finally:
            for tmp, _ in temps:
                if not tmp.published:
                    tmp.discard()
        for directory in {tmp.directory for tmp, _ in temps}:
            durable.fsync_dir(directory)
        if records:
            self.write_head(records[-1][1])
        return [record for _, record in records]

    def confirm(self, row: FileRow, sink: dict[str, str], now: str) -> RecordRow:
        """A sink's confirmation of a file, signed into the chain. Call inside the transaction
        that moves the row to confirmed, so neither is without the other; its sidecar (beside
        the staged file) and the chain head are written once that commits.

        `sink`: sink_kind, sink_endpoint, sink_id, station_sink_id, station_sink_endpoint,
        level, sink_ref (the upload URL or archived path), digest (what the sink computed, or
        ""), config (the configuration file the command ran under).
        """
        body: dict[str, Any] = {
            "v": RECORD_VERSION,
            "type": "confirmation",
            "file_id": row.id,
            "sha256": row.sha256,
            "size": row.size,
            **_sealed_copy(row),
            **sink,
            "at": now,
        }
        with self.store.transaction():
            record = self._append("confirmation", body, row.id, now)
            staged = str(row.staged_path)
            self.store.after_commit(lambda: self._confirmation_committed(staged, record))
            return record

    def _confirmation_committed(self, staged: str, record: RecordRow) -> None:
        self.write_confirmation_sidecar(staged, record)
        self.write_head(record)

    def write_confirmation_sidecar(self, staged: str, record: RecordRow) -> None:
        path = confirmation_path(self.staging_root, staged, record.seq)
        durable.write_file(path.parent, path.name, sidecar_bytes(record))

    def sign_audit(
        self,
        action: str,
        details: dict[str, Any],
        operator: str,
        now: str,
        *,
        write_files: bool = True,
    ) -> RecordRow:
        """A technician action, signed into the same chain as the custody records. Called only
        by agent.custody.audit.record_action, the one entry point of every technician action.

        write_files=False only for a store that is not in place yet (agent.rebuild): its
        sidecar and the chain head would describe a record that may never be; agent.custody.recovery
        writes both from the chain once the store is in place.
        """
        with self.store.transaction():
            body = {
                "v": RECORD_VERSION,
                "type": "audit",
                "action": action,
                "operator": operator,
                "at": now,
                "details": details,
            }
            record = self._append("audit", body, None, now)
            if write_files:
                # The caller's transaction may still roll back: its files wait for the commit.
                self.store.after_commit(lambda: self._audit_committed(record))
            return record

    def _audit_committed(self, record: RecordRow) -> None:
        self.write_audit_sidecar(record)
        self.write_head(record)

    def write_audit_sidecar(self, record: RecordRow) -> None:
        chainfiles.write_audit_sidecar(self.staging_root, record.seq, sidecar_bytes(record))

    def write_head(self, record: RecordRow) -> None:
        chainfiles.write_head(self.staging_root, chainfiles.Head(record.seq, record.record_hash))

    def write_sidecar(self, staged_rel: str, record: RecordRow, *, replace: bool = False) -> None:
        path = sidecar_path(self.staging_root, staged_rel)
        if replace:
            durable.replace_file(path.parent, path.name, sidecar_bytes(record))
        else:
            durable.write_file(path.parent, path.name, sidecar_bytes(record))
