"""`dockagent rebuild`: a new database from the signed sidecars, when the old one is damaged.

The damaged database (with its -wal and -shm) is moved aside, never deleted. A fresh store is
filled from staging: every record of the chain, each checked (hash, station signature, link to
the one before); the file rows, sealed, or confirmed where the file's upload receipt proves it
(agent.sync.receipts), with the upload URL kept so the queue resumes instead of uploading again;
the sessions as far as the records tell; enrolments and handovers replayed from the audit
records. A record no sidecar holds is taken from the damaged database if it verifies there. A
gap or a record that does not verify is named, never papered over. Staged copies that were
never sealed are set aside (their camera still holds them: nothing is wiped before it is
sealed). The caller holds the writer lock; this module never deletes a file.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent import audit, chainfiles, durable, integrity, log, recovery
from agent.config import Config
from agent.errors import AgentError, StationKeyError, UsageError
from agent.keys import StationKey
from agent.model import FileState, display_name
from agent.offload import staged_name
from agent.seal import GENESIS, SIDECAR_SUFFIX, Sealer, record_from_sidecar
from agent.store import RecordRow, Store, salvage_records
from agent.sync import receipts

_log = log.get(__name__)


@dataclass
class RebuildReport:
    damage: str
    moved_aside: list[str] = field(default_factory=list)
    records: int = 0
    salvaged: int = 0  # records taken from the damaged database (their sidecar was missing)
    files: int = 0
    confirmed: int = 0
    purged: int = 0
    resumable: int = 0  # sealed, with the upload the server already holds part of
    sessions: int = 0
    devices: int = 0
    assignments: int = 0
    set_aside: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        return not self.problems


@dataclass
class _Found:
    record: RecordRow
    where: str  # the sidecar (relative to staging) or "the damaged database"


def diagnose(cfg: Config, key: StationKey) -> str | None:
    """Why the database cannot be used, or None when it opens and its checks pass."""
    try:
        store = integrity.open_store(cfg.data_path, cfg.staging_path, create=False, key=key)
    except AgentError as exc:
        return exc.message
    except sqlite3.DatabaseError as exc:
        return str(exc)
    try:
        recovery.check_not_behind(store, cfg.staging_path)
    except AgentError as exc:
        return exc.message
    finally:
        store.close()
    return None


def rebuild(cfg: Config, key: StationKey, now: str, *, force: bool = False) -> RebuildReport:
    damage = diagnose(cfg, key)
    if damage is None and not force:
        raise UsageError(
            problem="the database opens and the head of its chain verifies: nothing to rebuild "
            "(`dockagent verify` checks everything; `dockagent rebuild --force` rebuilds anyway)"
        )
    report = RebuildReport(damage=damage or "rebuilt on request (--force)")
    staging = cfg.staging_path
    db = cfg.db_path
    salvaged: list[RecordRow] = []
    if db.exists() and db.stat().st_size > 0:
        salvaged, stopped = salvage_records(db, cfg.data_path)
        if stopped:
            _log.warning("store.salvage_stopped", reason=stopped, records=len(salvaged))
    chain = _gather(staging, salvaged, key, report)
    _check_links(chain, staging, report)
    stamp = re.sub(r"[^0-9T]", "", now[:19]) + "Z"
    _move_aside(db, stamp, report)
    store = Store.create_fresh(cfg.data_path)
    try:
        rows = _file_rows(chain, staging, now, report)
        with store.transaction():
            _restore(store, chain, rows, now, report)
        _set_aside_unsealed(cfg, {str(r["staged_path"]) for r in rows}, stamp, report)
        sealer = Sealer(store, key, cfg.station_id, staging)
        recovery.recover(store, sealer, staging, now)
        details: dict[str, Any] = {
            "damage": report.damage[:300],
            "moved_aside": ", ".join(report.moved_aside),
            "records": report.records,
            "files": report.files,
            "confirmed": report.confirmed,
            "sessions": report.sessions,
            "set_aside": len(report.set_aside),
            "problems": len(report.problems),
        }
        audit.record_action(store, key, cfg.station_id, "store.rebuilt", details, now)
    finally:
        store.close()
    _log.info(
        "store.rebuilt",
        records=report.records,
        files=report.files,
        sessions=report.sessions,
        problems=len(report.problems),
    )
    return report


# ---- the chain from staging ------------------------------------------------------------------


def _file_sidecars(staging: Path) -> list[Path]:
    found: list[Path] = []
    for directory in sorted(staging.iterdir()) if staging.is_dir() else ():
        if directory.is_dir() and directory.name != chainfiles.CHAIN_DIR:
            found.extend(sorted(p for p in directory.iterdir() if p.name.endswith(SIDECAR_SUFFIX)))
    return found


def _gather(
    staging: Path, salvaged: list[RecordRow], key: StationKey, report: RebuildReport
) -> dict[int, _Found]:
    chain: dict[int, _Found] = {}
    sidecars = [*_file_sidecars(staging), *chainfiles.audit_sidecars(staging)]
    verified = 0
    for side in sidecars:
        where = str(side.relative_to(staging))
        try:
            record = record_from_sidecar(side.read_bytes())
        except (OSError, ValueError) as exc:
            report.problems.append(f"{where}: unreadable ({exc})")
            continue
        problem = integrity.record_problem(record, key)
        if problem is not None:
            report.problems.append(f"{where}: record {record.seq} {problem}")
            continue
        verified += 1
        if side.name.endswith(chainfiles.AUDIT_SUFFIX) and side != chainfiles.audit_sidecar_path(
            staging, record.seq
        ):
            report.problems.append(f"{where}: holds audit record {record.seq}")
            continue
        _add(chain, _Found(record, where), report)
    if sidecars and not verified:
        # Every signature failing means the wrong key, not damage: change nothing.
        raise StationKeyError(
            path=str(key.key_id),
            problem=f"signed none of the {len(sidecars)} sidecars in {staging}; rebuild "
            "needs the station's own key (restore it from its backup)",
        )
    for record in salvaged:
        if record.seq in chain:
            continue
        problem = integrity.record_problem(record, key)
        if problem is not None:
            report.problems.append(f"record {record.seq} in the damaged database {problem}")
            continue
        _add(chain, _Found(record, "the damaged database"), report)
        report.salvaged += 1
    return chain


def _add(chain: dict[int, _Found], found: _Found, report: RebuildReport) -> None:
    seq = found.record.seq
    if seq in chain and chain[seq].record.record_hash != found.record.record_hash:
        report.problems.append(
            f"record {seq}: {chain[seq].where} and {found.where} hold different signed records"
        )
        return
    chain.setdefault(seq, found)


def _check_links(chain: dict[int, _Found], staging: Path, report: RebuildReport) -> None:
    last = max(chain, default=0)
    missing = [seq for seq in range(1, last + 1) if seq not in chain]
    for start, end in _ranges(missing):
        which = f"record {start}" if start == end else f"records {start}-{end}"
        report.problems.append(
            f"{which} of the chain: no sidecar holds it and the damaged database does not"
        )
    for seq, found in sorted(chain.items()):
        before = chain.get(seq - 1)
        expected = GENESIS if seq == 1 else (before.record.record_hash if before else None)
        if expected is not None and found.record.prev_hash != expected:
            report.problems.append(
                f"record {seq} ({found.where}) does not link to record {seq - 1}"
            )
    file_ids: dict[int, int] = {}
    for seq, found in sorted(chain.items()):
        file_id = found.record.file_id
        if found.record.kind == "file" and file_id is not None:
            if file_id in file_ids:
                report.problems.append(
                    f"file {file_id} has two custody records ({file_ids[file_id]} and {seq})"
                )
            file_ids.setdefault(file_id, seq)
    try:
        head = chainfiles.read_head(staging)
    except ValueError as exc:
        report.problems.append(str(exc))
        head = None
    if head is not None and (
        head.seq not in chain or chain[head.seq].record.record_hash != head.record_hash
    ):
        report.problems.append(
            f"staging's chain head is record {head.seq}, which no sidecar holds as recorded"
        )


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _move_aside(db: Path, stamp: str, report: RebuildReport) -> None:
    base = f"{db}.damaged-{stamp}"
    n = 1
    while any(Path(f"{base}{s}").exists() for s in ("", "-wal", "-shm")):
        n += 1  # a second rebuild within the same second: never rename over the first
        base = f"{db}.damaged-{stamp}-{n}"
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db}{suffix}")
        if src.exists():
            dst = Path(f"{base}{suffix}")
            os.rename(src, dst)  # kept for inspection, never deleted
            report.moved_aside.append(dst.name)
    durable.fsync_dir(db.parent)


# ---- rows --------------------------------------------------------------------------------------


def _mtime_ns(body: dict[str, Any]) -> int:
    exact = body.get("mtime_ns")
    if isinstance(exact, int) and not isinstance(exact, bool):
        return exact
    # Records sealed before mtime_ns was signed: the camera time, station-local, in seconds.
    return int(datetime.fromisoformat(str(body["camera_mtime"])).timestamp()) * 10**9


def _file_rows(
    chain: dict[int, _Found], staging: Path, now: str, report: RebuildReport
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for seq, found in sorted(chain.items()):
        record = found.record
        if record.kind != "file" or record.file_id is None:
            continue
        body = json.loads(record.body)
        file_id = record.file_id
        raw = base64.b64decode(body["original_name_b64"])
        staged_rel = f"{body['device_serial']}/{staged_name(file_id, raw)}"
        if found.where != "the damaged database" and found.where != staged_rel + SIDECAR_SUFFIX:
            report.problems.append(f"{found.where}: the sidecar of {staged_rel} is not beside it")
        ingested = str(body.get("ingested_at") or now)
        wipeable = body.get("wipeable")
        row: dict[str, Any] = {
            "id": file_id,
            "session_id": body["session_id"],
            "last_session_id": body["session_id"],
            "device_serial": body["device_serial"],
            "camera_path": raw,
            "camera_name": display_name(raw),
            "size": body["size"],
            "mtime_ns": _mtime_ns(body),
            "kind": body["kind"],
            "recorded_start": body.get("recorded_start") or "",
            "recorded_end": body.get("recorded_end") or "",
            "segment": body.get("segment"),
            "important": int(bool(body.get("important"))),
            # Records sealed before `wipeable` was signed: only recordings have a kind of their own.
            "wipeable": int(wipeable if isinstance(wipeable, bool) else body["kind"] != "other"),
            "state": FileState.SEALED.value,
            "sha256": body["sha256"],
            "staged_path": staged_rel,
            "record_seq": seq,
            "discovered_at": ingested,
            "staged_at": ingested,
            "sealed_at": ingested,
            "updated_at": now,
            "clock_drift_s": body.get("clock_drift_s"),
            "recorded_start_corrected": body.get("recorded_start_corrected") or "",
            "recorded_end_corrected": body.get("recorded_end_corrected") or "",
            "time_basis": body.get("time_basis") or "",
            "retention_class": body.get("retention_class") or "",
            "officer_id": body.get("officer_id") or "",  # for the session; not a file column
        }
        _apply_receipt(row, staging, report)
        rows.append(row)
    return rows


def _apply_receipt(row: dict[str, Any], staging: Path, report: RebuildReport) -> None:
    staged_rel = str(row["staged_path"])
    present = (staging / staged_rel).exists()
    try:
        receipt = receipts.read(staging, staged_rel)
    except ValueError as exc:
        report.problems.append(str(exc))
        receipt = None
    if receipt is not None and (receipt.file_id, receipt.sha256) != (row["id"], row["sha256"]):
        report.problems.append(f"{staged_rel}: its upload receipt names another file")
        receipt = None
    if receipt is not None and receipt.confirmed_at and receipt.confirm_level:
        row.update(
            state=FileState.CONFIRMED.value,
            upload_sink=receipt.sink,
            upload_url=receipt.upload_url,
            upload_offset=row["size"],
            confirmed_at=receipt.confirmed_at,
            confirm_level=receipt.confirm_level,
            sink_ref=receipt.sink_ref,
            # Purged after the grace period (only confirmed copies ever are).
            purged_at=None if present else row["updated_at"],
        )
        report.confirmed += 1
        report.purged += 0 if present else 1
        return
    if receipt is not None and receipt.upload_url:
        # Left sealed: the queue asks the server (HEAD) where this upload stands and goes on
        # from there, instead of creating a second one.
        row.update(
            upload_sink=receipt.sink,
            upload_url=receipt.upload_url,
            upload_expires_at=receipt.upload_expires_at,
        )
        report.resumable += 1
    if not present:
        report.problems.append(
            f"{staged_rel}: the staged copy is missing and no confirmation of it is known"
        )


def _restore(
    store: Store,
    chain: dict[int, _Found],
    rows: list[dict[str, Any]],
    now: str,
    report: RebuildReport,
) -> None:
    sessions: dict[int, dict[str, Any]] = {}
    for row in rows:
        officer = row.pop("officer_id")
        s = sessions.setdefault(
            int(row["session_id"]),
            {
                "id": row["session_id"],
                "device_serial": row["device_serial"],
                "officer_id": officer,
                "source": "rebuilt from the signed sidecars",
                "docked_at": row["staged_at"],
                "ended_at": row["staged_at"],
                "undocked_at": now,
                "outcome": "rebuilt",
                "files_found": 0,
                "files_new": 0,
                "files_sealed": 0,
                "bytes_copied": 0,
            },
        )
        s["docked_at"] = min(s["docked_at"], row["staged_at"])
        s["ended_at"] = max(s["ended_at"], row["staged_at"])
        for counter in ("files_found", "files_new", "files_sealed"):
            s[counter] += 1
        s["bytes_copied"] += int(row["size"])
    for session in sessions.values():
        store.restore_session(session)
    for row in rows:
        store.restore_file(row)
    for seq, found in sorted(chain.items()):
        body = json.loads(found.record.body)
        store.append_record(found.record, str(body.get("at") or body.get("ingested_at") or now))
        if found.record.kind == "audit":
            _replay(store, body, seq, report)
    if chain:
        store.set_meta("chain_head_seq", str(max(chain)))
    report.records, report.files, report.sessions = len(chain), len(rows), len(sessions)


def _replay(store: Store, body: dict[str, Any], seq: int, report: RebuildReport) -> None:
    """Technician actions that changed tables: enrolment, revocation, handover."""
    action, details = body.get("action"), body.get("details") or {}
    who, at = str(body.get("operator", "")), str(body.get("at", ""))
    serial = str(details.get("serial", ""))
    if action == "device.enrolled":
        store.enroll(serial, str(details.get("officer_id", "")), who, at)
        report.devices += 1
    elif action == "device.revoked":
        store.revoke(serial, who, at)
    elif action == "device.assigned":
        officer, previous = str(details.get("officer_id", "")), details.get("previous_officer")
        store.add_assignment(serial, officer, str(previous or ""), at, who, seq)
        report.assignments += 1


def _set_aside_unsealed(cfg: Config, known: set[str], stamp: str, report: RebuildReport) -> None:
    """Staged copies no restored row names: never sealed, so their camera still holds them.
    They are moved out of staging (whose names must all be rows: agent.recovery)."""
    staging = cfg.staging_path
    aside = cfg.data_path / f"unsealed-{stamp}"
    for directory in sorted(staging.iterdir()) if staging.is_dir() else ():
        if not directory.is_dir() or directory.name == chainfiles.CHAIN_DIR:
            continue
        for entry in sorted(directory.iterdir()):
            name = entry.name
            staged = name.removesuffix(SIDECAR_SUFFIX).removesuffix(receipts.RECEIPT_SUFFIX)
            if durable.is_temp_name(name) or f"{directory.name}/{staged}" in known:
                continue
            # A sidecar or receipt goes with its copy (a sidecar that did not verify is named
            # among the problems and kept here for inspection).
            target = aside / directory.name
            durable.ensure_private_dir(target)
            os.rename(entry, target / name)
            durable.fsync_dir(target)
            durable.fsync_dir(directory)
            if staged == name:
                report.set_aside.append(f"{directory.name}/{name}")
