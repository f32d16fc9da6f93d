"""The file rows and dock sessions that the verified chain tells, with what upload receipts add.

One row per file record, under the id and the staged name its signed body gives: confirmed where
the chain holds a sink's signed confirmation of its hash (and purged where the copy is gone), or
where the copy is gone and the file's upload receipt (beside it, or archived with its sidecars
once the copy was purged) confirms it; else sealed, with the
upload URL where a receipt names one, so the queue resumes or re-confirms it. A second record
of the same file (or of the same camera file) gets no row and is named, as is a body a row
cannot be made from. Derivation only: it reads receipts and looks whether staged copies exist,
but writes nothing and speaks no SQL.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.core.model import FileKind, FileState, SessionOutcome, display_name
from agent.custody import archive
from agent.custody.staging import RECEIPT_SUFFIX, SIDECAR_SUFFIX, receipt_path, staged_rel
from agent.rebuild.chain import FROM_DATABASE, Chain
from agent.rebuild.report import RebuildReport
from agent.store import FileRow, SessionRow
from agent.sync import receipts

SESSION_SOURCE = "rebuilt from the signed sidecars"


@dataclass(frozen=True)
class RestoredFile:
    seq: int  # the file's custody record
    officer_id: str  # for its session; not a file column
    row: FileRow

    @property
    def staged_path(self) -> str:
        return str(self.row.staged_path)


@dataclass(frozen=True)
class SinkRule:
    """What the configuration says of several sinks ([[sync.sinks]]): the fingerprints whose
    signed confirmations make a file held (None: any one does, as with a single sink) and the
    names of all of them. A file whose required sinks did not all confirm stays in the queue,
    and each sink's own standing is restored, so that the sinks still missing get it."""

    required: tuple[str, ...] | None = None
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class SinkStanding:
    file_id: int
    sink: str
    state: str  # "confirmed", or "waiting" (a sink outside held_when, for a held file)
    level: str = ""
    ref: str = ""
    at: str = ""


@dataclass
class Rows:
    files: list[RestoredFile] = field(default_factory=list)
    # File records that get no row (named among the problems): tables must not insert them.
    unrestorable: set[int] = field(default_factory=set)
    # Each file's standing with each of several sinks (the file_sinks table).
    sinks: list[SinkStanding] = field(default_factory=list)


def _confirmations(chain: Chain) -> dict[int, list[dict[str, Any]]]:
    """The signed confirmations of each file, oldest first, by file id."""
    found: dict[int, list[dict[str, Any]]] = {}
    for _seq, item in sorted(chain.items()):
        if item.record.kind == "confirmation" and isinstance(item.record.file_id, int):
            body = json.loads(item.record.body)
            if isinstance(body, dict):
                found.setdefault(item.record.file_id, []).append(body)
    return found


def _held(
    row: FileRow, bodies: list[dict[str, Any]], rule: SinkRule, out: Rows
) -> dict[str, Any] | None:
    """The confirmation that makes the row held (the newest of its hash), or None where the
    rule's sinks have not all confirmed it; the standing of each named sink goes to `out`."""
    signed = [b for b in bodies if b.get("sha256") == row.sha256]
    by_name = {str(b["sink_name"]): b for b in signed if b.get("sink_name")}
    for name, body in by_name.items():
        level, ref = _text(body.get("level")), _text(body.get("sink_ref"))
        out.sinks.append(SinkStanding(row.id, name, "confirmed", level, ref, _text(body.get("at"))))
    if not signed:
        return None
    if rule.required is not None and not set(rule.required) <= {b.get("sink_id") for b in signed}:
        return None
    for name in rule.names:
        if name not in by_name:  # a sink outside held_when: sent its copy while it is kept
            out.sinks.append(SinkStanding(row.id, name, "waiting"))
    return signed[-1]


def file_rows(
    chain: Chain, staging: Path, now: str, report: RebuildReport, rule: SinkRule | None = None
) -> Rows:
    out = Rows()
    rule = rule or SinkRule()
    confirmed = _confirmations(chain)
    by_id: dict[int, int] = {}
    by_identity: dict[tuple[Any, ...], int] = {}
    unsigned: list[int] = []  # the files' indexes whose receipt is read
    for seq, found in sorted(chain.items()):
        record = found.record
        if record.kind != "file" or record.file_id is None:
            continue
        try:
            restored = _restored(seq, json.loads(record.body), now)
        except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
            report.problems.append(
                f"record {seq}: its body lacks what a file row needs ({exc!r}); not restored"
            )
            out.unrestorable.add(seq)
            continue
        row = restored.row
        # Path, size and mtime are not a file's identity: other bytes under them are a row of
        # their own (agent.store.files.register), so the content is part of it.
        identity = (row.device_serial, row.camera_path, row.size, row.mtime_ns, row.sha256)
        first = by_id.get(row.id, by_identity.get(identity))
        if first is not None:
            report.problems.append(
                f"file {row.id} ({row.camera_name}) has two custody records ({first} and "
                f"{seq}); record {seq} is not restored"
            )
            out.unrestorable.add(seq)
            continue
        by_id[row.id], by_identity[identity] = seq, seq
        if found.where != FROM_DATABASE and found.name != restored.staged_path + SIDECAR_SUFFIX:
            report.problems.append(
                f"{found.where}: the sidecar of {restored.staged_path} is not beside it"
            )
        signed = _held(row, confirmed.get(row.id, []), rule, out)
        if signed is not None:
            row = _apply_confirmation(row, signed, staging, report)
        else:
            unsigned.append(len(out.files))
        out.files.append(replace(restored, row=row))
    _apply_receipts(out.files, unsigned, staging, report)
    return out


def _apply_receipts(
    files: list[RestoredFile], indexes: list[int], staging: Path, report: RebuildReport
) -> None:
    """What receipts add to the rows at `indexes` (no signed confirmation of their hash); the
    receipts of purged copies are read from the archive, in one pass over it."""
    gone = set()
    for i in indexes:
        rel = files[i].staged_path
        if not (staging / rel).exists() and not receipt_path(staging, rel).exists():
            gone.add(rel + RECEIPT_SUFFIX)
    archived = archive.find(staging, gone)
    for i in indexes:
        row = _apply_receipt(files[i].row, staging, report, archived)
        files[i] = replace(files[i], row=row)


def _text(value: object) -> str:
    """An optional text field of a signed body, as the TEXT column would have held it."""
    return str(value) if value else ""


def _number_or_none(value: object) -> int | None:
    """An optional number of a signed body; any other value is not one (a row is still made)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _restored(seq: int, body: dict[str, Any], now: str) -> RestoredFile:
    file_id = int(body["file_id"])
    raw = base64.b64decode(body["original_name_b64"], validate=True)
    ingested = str(body.get("ingested_at") or now)
    wipeable = body.get("wipeable")
    row = FileRow(
        id=file_id,
        session_id=int(body["session_id"]),
        last_session_id=int(body["session_id"]),
        device_serial=str(body["device_serial"]),
        camera_path=raw,
        camera_name=display_name(raw),
        size=int(body["size"]),
        mtime_ns=_mtime_ns(body),
        kind=FileKind(str(body["kind"])),
        recorded_start=_text(body.get("recorded_start")),
        recorded_end=_text(body.get("recorded_end")),
        segment=_number_or_none(body.get("segment")),
        important=bool(body.get("important")),
        # Records sealed before `wipeable` was signed: only recordings have a kind of their own.
        wipeable=wipeable if isinstance(wipeable, bool) else body["kind"] != "other",
        state=FileState.SEALED,
        sha256=str(body["sha256"]),
        staged_path=staged_rel(str(body["device_serial"]), file_id, raw),
        record_seq=seq,
        discovered_at=ingested,
        staged_at=ingested,
        sealed_at=ingested,
        updated_at=now,
        clock_drift_s=_number_or_none(body.get("clock_drift_s")),
        recorded_start_corrected=_text(body.get("recorded_start_corrected")),
        recorded_end_corrected=_text(body.get("recorded_end_corrected")),
        time_basis=_text(body.get("time_basis")),
        retention_class=_text(body.get("retention_class")),
        channel=_text(body.get("channel")),
        partner_of=_partner_of(body),
        class_note=_text(body.get("class_note")),
        # An encrypted copy (agent.ingest.sealing): the ciphertext's hash and size, as signed.
        stored_sha256=_text(body.get("stored_sha256")) or None,
        stored_size=_number_or_none(body.get("stored_size")),
    )
    return RestoredFile(seq, str(body.get("officer_id") or ""), row)


def _partner_of(body: dict[str, Any]) -> bytes | None:
    """The clip a partner file's record names (camera profile format 2), or None."""
    value = body.get("partner_of_b64")
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None


def _mtime_ns(body: dict[str, Any]) -> int:
    exact = body.get("mtime_ns")
    if isinstance(exact, int) and not isinstance(exact, bool):
        return exact
    # Records sealed before mtime_ns was signed: the camera time, station-local, in seconds.
    return int(datetime.fromisoformat(str(body["camera_mtime"])).timestamp()) * 10**9


def _apply_confirmation(
    row: FileRow, body: dict[str, Any], staging: Path, report: RebuildReport
) -> FileRow:
    """A file a sink confirmed, as its signed confirmation says: confirmed, and purged where
    its staged copy is gone (the purge followed the confirmation)."""
    present = (staging / str(row.staged_path)).exists()
    report.confirmed += 1
    if not present:
        report.purged += 1
    kind, endpoint = _text(body.get("sink_kind")), _text(body.get("sink_endpoint"))
    return replace(
        row,
        state=FileState.CONFIRMED,
        upload_sink=f"{kind}:{endpoint}" if kind == "directory" else endpoint,
        upload_offset=row.staged_size,
        confirmed_at=_text(body.get("at")),
        confirm_level=_text(body.get("level")),
        sink_ref=_text(body.get("sink_ref")),
        purged_at=None if present else row.updated_at,
    )


def _apply_receipt(
    row: FileRow, staging: Path, report: RebuildReport, archived: dict[str, bytes]
) -> FileRow:
    """The row with what its upload receipt (beside the copy, or `archived` by its sidecar
    name) adds: confirmed where the copy is gone, else the upload to resume."""
    staged_rel = str(row.staged_path)
    present = (staging / staged_rel).exists()
    name = staged_rel + RECEIPT_SUFFIX
    try:
        receipt = receipts.read(staging, staged_rel)
        if receipt is None and name in archived:
            receipt = receipts.parse(archived[name], f"{name} (archived)")
    except ValueError as exc:
        report.problems.append(str(exc))
        receipt = None
    if receipt is not None and (receipt.file_id, receipt.sha256) != (row.id, row.sha256):
        report.problems.append(f"{staged_rel}: its upload receipt names another file")
        receipt = None
    if receipt is not None and receipt.confirmed_at and receipt.confirm_level and not present:
        # The copy is gone: only a confirmed copy is ever purged, so the row says so. Where the
        # copy is still here, an (unsigned) receipt is not taken as proof: the row stays sealed
        # with its upload URL below, and the next sync asks the sink again (HEAD / re-read)
        # before anything that depends on confirmation (purge, wipe) may happen.
        report.confirmed += 1
        report.purged += 1
        return replace(
            row,
            state=FileState.CONFIRMED,
            upload_sink=receipt.sink,
            upload_url=receipt.upload_url,
            upload_offset=row.staged_size,
            confirmed_at=receipt.confirmed_at,
            confirm_level=receipt.confirm_level,
            sink_ref=receipt.sink_ref,
            purged_at=row.updated_at,
        )
    if receipt is not None and receipt.confirmed_at:
        report.reconfirm += 1
    if receipt is not None and receipt.upload_url:
        # Left sealed: the queue asks the server (HEAD) where this upload stands and goes on
        # from there, instead of creating a second one.
        row = replace(
            row,
            upload_sink=receipt.sink,
            upload_url=receipt.upload_url,
            upload_expires_at=receipt.upload_expires_at,
        )
        report.resumable += 1
    if not present:
        report.problems.append(
            f"{staged_rel}: the staged copy is missing and no confirmation of it is known"
        )
    return row


def sessions(files: list[RestoredFile], now: str) -> list[SessionRow]:
    """One session per session id the file records name, as far as they tell: its camera and
    officer, the first and last file taken in, and the counts of its sealed files."""
    by_id: dict[int, SessionRow] = {}
    for restored in files:
        row = restored.row
        staged = str(row.staged_at)
        s = by_id.get(row.session_id) or SessionRow(
            id=row.session_id,
            device_serial=row.device_serial,
            officer_id=restored.officer_id,
            source=SESSION_SOURCE,
            docked_at=staged,
            ended_at=staged,
            undocked_at=now,
            outcome=SessionOutcome.REBUILT,
        )
        by_id[row.session_id] = dataclasses.replace(
            s,
            docked_at=min(s.docked_at, staged),
            ended_at=max(s.ended_at or staged, staged),
            files_found=s.files_found + 1,
            files_new=s.files_new + 1,
            files_sealed=s.files_sealed + 1,
            bytes_copied=s.bytes_copied + row.size,
        )
    return list(by_id.values())
