"""Start-up reconciliation, run under the writer lock before anything else writes.

DESIGN.md rule 8: remove temp files, put interrupted copies back in the queue, re-check staged
copies that have no seal yet, restore missing sidecars (of files and of audit records) and the
chain head in staging from the chain. It only repairs what a crash can leave; it never deletes a
copy that a committed row points to and never rewrites a sidecar that differs from the chain
(that is verify's finding, not a crash's). A staged file no row knows is not a crash's either:
the database lost committed rows, and recovery refuses to go on (StoreBehind).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core import durable, log
from agent.core.errors import StoreBehind
from agent.core.model import FileState
from agent.custody import chainfiles
from agent.custody.digest import hash_file
from agent.custody.seal import Sealer, sidecar_path
from agent.custody.staging import staged_name
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
    audit_sidecars_restored: int = 0
    head_restored: int = 0
    sessions_interrupted: int = 0
    purges_finished: int = 0


def staged_id(name: str) -> int | None:
    """The file id in a staged name (`<id>.<ext>`, its sidecar or receipt), else None."""
    head = name.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def newest_staged(staging_root: Path) -> tuple[int, str]:
    """The highest file id named in staging's camera directories, with the name."""
    newest = (0, "")
    for directory in staging_root.iterdir() if staging_root.is_dir() else ():
        if directory.is_dir() and directory.name != chainfiles.CHAIN_DIR:
            for entry in os.listdir(directory):
                file_id = staged_id(entry)
                if file_id is not None and not durable.is_temp_name(entry):
                    newest = max(newest, (file_id, entry))
    return newest


def check_rows_cover(store: Store, newest: tuple[int, str]) -> None:
    """Rows are committed before their copy is published: a staged name beyond the last row
    means the database lost committed rows (an old copy, a copy without its -wal)."""
    known = store.max_file_id()
    if newest[0] > known:
        raise StoreBehind(
            path=str(store.path),
            detail=f"staging holds {newest[1]}, the database knows files up to {known}",
        )


def check_not_signed(store: Store, staging_root: Path, row: dict[str, Any]) -> None:
    """Sidecars are written after the seal commits: one beside a row that is not sealed means
    the database lost that commit. Sealing again would sign a second record for the file."""
    signed = sidecar_path(staging_root, row["staged_path"])
    if signed.exists():
        raise StoreBehind(
            path=str(store.path),
            detail=f"{signed.name} holds a signed record of file {row['id']}, which the "
            "database has as not sealed",
        )


def check_not_behind(store: Store, staging_root: Path) -> None:
    """Recovery's refusals, without repairing anything (for `dockagent rebuild`)."""
    check_rows_cover(store, newest_staged(staging_root))
    for row in store.files("state=?", (FileState.STAGED.value,)):
        check_not_signed(store, staging_root, row)


def finish_purges(store: Store, staging_root: Path, present: set[int]) -> int:
    """Remove staged copies whose purge was committed but not carried out (a kill between the
    mark and the unlink in sync.purge): the row already says purged, the sink holds the file.
    Only ids still present in staging are asked about, so the cost follows what staging holds,
    not every file the station ever purged."""
    finished = 0
    for rel in store.purged_paths(present):
        path = staging_root / rel
        if path.exists():
            path.unlink()
            durable.fsync_dir(path.parent)
            finished += 1
    return finished


def recover(store: Store, sealer: Sealer, staging_root: Path, now: str) -> RecoveryReport:
    report = RecoveryReport()
    durable.ensure_private_dir(staging_root)
    # Temp files of the data directory itself (the key, the store marker) and of staging.
    top: list[tuple[str, list[str], list[str]]] = [
        (str(staging_root.parent), [], os.listdir(staging_root.parent))
    ]
    newest: tuple[int, str] = (0, "")
    present: set[int] = set()
    for dirpath, _dirs, names in [*top, *os.walk(staging_root)]:
        removed = 0
        camera_dir = (
            os.path.dirname(dirpath) == str(staging_root)
            and os.path.basename(dirpath) != chainfiles.CHAIN_DIR
        )
        for name in names:
            if durable.is_temp_name(name):
                os.unlink(os.path.join(dirpath, name))
                removed += 1
            elif camera_dir and (file_id := staged_id(name)) is not None:
                newest = max(newest, (file_id, name))
                if name.count(".") == 1:  # the copy itself (`<id>.<ext>`), not a sidecar
                    present.add(file_id)
        if removed:
            durable.fsync_dir(dirpath)
            report.temp_files_removed += removed
    # The listing is made anyway: checking it against the rows costs one query. Both checks
    # come before any repair, so a database that lost commits is left as found.
    check_rows_cover(store, newest)
    for row in store.files("state=?", (FileState.STAGED.value,)):
        check_not_signed(store, staging_root, row)

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
        sealer.seal(row["id"], now)
        report.staged_sealed += 1

    report.purges_finished = finish_purges(store, staging_root, present)
    # Purged rows are left out: their staged copy is gone, so there is nothing to restore beside
    # it, and a long-lived station would otherwise load every file it ever held at each start.
    for row in store.files(
        "state IN (?,?,?,?) AND purged_at IS NULL", ("sealed", "uploading", "confirmed", "held")
    ):
        side = sidecar_path(staging_root, row["staged_path"])
        if not side.exists() and (staging_root / row["staged_path"]).exists():
            record = store.record(row["record_seq"])
            if record is not None:
                sealer.write_sidecar(row["staged_path"], record)
                report.sidecars_restored += 1

    for record in store.records("audit"):
        if not chainfiles.audit_sidecar_path(staging_root, record.seq).exists():
            sealer.write_audit_sidecar(record)
            report.audit_sidecars_restored += 1
    head = store.chain_head()
    if head is not None:
        try:
            outside = chainfiles.read_head(staging_root)
        except ValueError:
            outside = None
        if outside is None or outside.seq < head[0]:
            chainfiles.write_head(staging_root, chainfiles.Head(*head))
            report.head_restored = 1

    report.sessions_interrupted = store.interrupt_running_sessions(now)
    if any(vars(report).values()):
        _log.info("recovery.finished", **vars(report))
    return report
