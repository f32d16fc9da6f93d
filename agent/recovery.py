"""Start-up reconciliation, run under the writer lock before anything else writes.

DESIGN.md rule 8: remove temp files, put interrupted copies back in the queue, re-check staged
copies that have no seal yet, restore missing sidecars from the chain. It only repairs what a
crash can leave; it never deletes a copy that a committed row points to and never rewrites a
sidecar that differs from the chain (that is verify's finding, not a crash's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent import durable, log
from agent.digest import hash_file
from agent.model import FileState
from agent.offload import staged_name
from agent.seal import Sealer, sidecar_path
from agent.store import Store

_log = log.get(__name__)


@dataclass
class RecoveryReport:
    temp_files_removed: int = 0
    copies_requeued: int = 0
    unverified_copies_removed: int = 0
    staged_sealed: int = 0
    staged_corrupt: int = 0
    sidecars_restored: int = 0
    sessions_interrupted: int = 0


def recover(store: Store, sealer: Sealer, staging_root: Path, now: str) -> RecoveryReport:
    report = RecoveryReport()
    durable.ensure_private_dir(staging_root)
    # Temp files of the data directory itself (the key, the store marker) and of staging.
    top: list[tuple[str, list[str], list[str]]] = [
        (str(staging_root.parent), [], os.listdir(staging_root.parent))
    ]
    for dirpath, _dirs, names in [*top, *os.walk(staging_root)]:
        removed = 0
        for name in names:
            if durable.is_temp_name(name):
                os.unlink(os.path.join(dirpath, name))
                removed += 1
        if removed:
            durable.fsync_dir(dirpath)
            report.temp_files_removed += removed

    # A copy claimed by a process that is gone: the writer lock says no one else holds it.
    for row in store.files("state=?", (FileState.COPYING.value,)):
        published = staging_root / row["device_serial"] / staged_name(row["id"], row["camera_path"])
        if published.exists():
            # Published but never committed: its hash was never recorded, and the camera still
            # holds the original (nothing is wiped before it is sealed), so copy it again.
            published.unlink()
            durable.fsync_dir(published.parent)
            report.unverified_copies_removed += 1
        store.transition(
            row["id"],
            FileState.COPYING,
            FileState.DISCOVERED,
            reason="copy interrupted; copied again at the next import",
            updated_at=now,
        )
        report.copies_requeued += 1

    buffer = bytearray(1 << 20)
    for row in store.files("state=?", (FileState.STAGED.value,)):
        path = staging_root / row["staged_path"]
        actual = hash_file(path, buffer)[0] if path.exists() else "missing"
        if actual != row["sha256"]:
            store.transition(
                row["id"],
                FileState.STAGED,
                FileState.CORRUPT,
                reason=f"staged copy does not match the hash read from the camera ({actual})",
                updated_at=now,
            )
            report.staged_corrupt += 1
            _log.error("file.corrupt", file_id=row["id"], sha256=row["sha256"])
            continue
        stale = sidecar_path(staging_root, row["staged_path"])
        if stale.exists():  # cannot happen with sidecar-after-commit; be safe anyway
            stale.unlink()
        sealer.seal(row["id"], now)
        report.staged_sealed += 1

    for row in store.files("state IN (?,?,?,?)", ("sealed", "uploading", "confirmed", "held")):
        side = sidecar_path(staging_root, row["staged_path"])
        if not side.exists() and (staging_root / row["staged_path"]).exists():
            record = store.record(row["record_seq"])
            if record is not None:
                sealer.write_sidecar(row["staged_path"], record)
                report.sidecars_restored += 1

    report.sessions_interrupted = store.interrupt_running_sessions(now)
    if any(vars(report).values()):
        _log.info("recovery.finished", **vars(report))
    return report
