"""Start-up reconciliation, run under the writer lock before anything else writes.

DESIGN.md rule 8: remove temp files, put interrupted copies back in the queue, re-check staged
copies that have no seal yet, restore missing sidecars (of files and of audit records) and the
chain head in staging from the chain. It only repairs what a crash can leave; it never deletes a
copy that a committed row points to and never rewrites a sidecar that differs from the chain
(that is verify's finding, not a crash's). A staged file no row knows is not a crash's either:
the database lost committed rows, and recovery refuses to go on (StoreBehind).

What a start costs follows what is live, not the station's history: one listing of the camera
directories (which hold only copies still staged and their sidecars: a purged copy's sidecars
are archived, agent.custody.archive), the rows in the states a crash interrupts, and the records
after the recovery mark. The mark (`recovered_seq` in the store's meta) is the chain head a
recovery read before it checked every audit and confirmation sidecar up to it: a crash loses
only a sidecar written after its record committed, so a record at or before the mark had its
sidecar when that recovery finished, and only the records after it are looked at again. A
sidecar removed by hand later is not a crash's loss: `dockagent verify` names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.core import durable, log
from agent.core.errors import StoreBehind
from agent.core.model import CUSTODY_STATES, FileState, ProblemKind
from agent.custody import archive, chainfiles, staging
from agent.custody.digest import hash_file
from agent.custody.seal import Sealer
from agent.custody.staging import EntryKind, sidecar_path
from agent.store import FileRow, Store

_log = log.get(__name__)

MARK = "recovered_seq"
_SIDECAR_KINDS = (EntryKind.SIDECAR, EntryKind.RECEIPT, EntryKind.CONFIRMATION)


@dataclass
class RecoveryReport:
    temp_files_removed: int = 0
    copies_requeued: int = 0
    unverified_copies_removed: int = 0
    staged_sealed: int = 0
    staged_corrupt: int = 0
    sidecars_restored: int = 0
    audit_sidecars_restored: int = 0
    confirmation_sidecars_restored: int = 0
    head_restored: int = 0
    sessions_interrupted: int = 0
    purges_finished: int = 0
    sidecars_archived: int = 0


def check_rows_cover(store: Store, newest: tuple[int, str]) -> None:
    """Rows are committed before their copy is published: a staged name beyond the last row
    means the database lost committed rows (an old copy, a copy without its -wal)."""
    known = store.max_file_id()
    if newest[0] > known:
        raise StoreBehind(
            path=str(store.path),
            detail=f"staging holds {newest[1]}, the database knows files up to {known}",
        )


def check_not_signed(store: Store, staging_root: Path, row: FileRow) -> None:
    """Sidecars are written after the seal commits: one beside a row that is not sealed means
    the database lost that commit. Sealing again would sign a second record for the file."""
    signed = sidecar_path(staging_root, str(row.staged_path))
    if signed.exists():
        raise StoreBehind(
            path=str(store.path),
            detail=f"{signed.name} holds a signed record of file {row.id}, which the "
            "database has as not sealed",
        )


def check_not_behind(
    store: Store, staging_root: Path, newest: tuple[int, str] | None = None
) -> None:
    """Recovery's refusals, without repairing anything (also for `dockagent rebuild`); `newest`
    is staging.newest_staged's answer, where the caller listed staging already."""
    check_rows_cover(store, staging.newest_staged(staging_root) if newest is None else newest)
    for row in store.files_in_state(FileState.STAGED):
        check_not_signed(store, staging_root, row)


def finish_purges(store: Store, staging_root: Path, present: set[int], now: str) -> tuple[int, int]:
    """Finish purges that were committed but not carried out (a kill between the mark and the
    unlink in sync.purge, or before the sidecars were archived): the row already says purged,
    the sink holds the file. The copy is removed and its sidecars archived. Only ids that still
    have a name in a camera directory are asked about, so the cost follows what staging holds,
    not every file the station ever purged. Returns (copies removed, sidecars archived)."""
    finished = 0
    rels = store.purged_paths(present)
    for rel in rels:
        path = staging_root / rel
        if path.exists():
            path.unlink()
            durable.fsync_dir(path.parent)
            finished += 1
    return finished, archive.archive_sidecars(staging_root, rels, now)


def recover(store: Store, sealer: Sealer, staging_root: Path, now: str) -> RecoveryReport:
    """The repairs in their crash-safe order: every refusal before any repair, so a database
    that lost commits is left as found."""
    report = RecoveryReport()
    durable.ensure_dir(staging_root, durable.PASS_DIR_MODE)  # the group reaches _chain/head.json
    report.temp_files_removed = remove_temp_files(staging_root)
    present: set[int] = set()  # ids with a copy or a sidecar in a camera directory
    newest: tuple[int, str] = (0, "")
    # One listing for both: checking it against the rows costs one query.
    for entry in staging.all_entries(staging_root):
        if entry.file_id is None or entry.kind is EntryKind.TEMP:
            continue
        newest = max(newest, (entry.file_id, entry.name))
        if entry.kind is EntryKind.COPY or entry.kind in _SIDECAR_KINDS:
            present.add(entry.file_id)
    check_not_behind(store, staging_root, newest)
    head = store.chain_head()  # the new mark: read before the sidecars up to it are checked
    mark = _mark(store)

    report.unverified_copies_removed, report.copies_requeued = requeue_copies(
        store, staging_root, now
    )
    report.staged_sealed, report.staged_corrupt = seal_staged(store, sealer, staging_root, now)
    report.purges_finished, report.sidecars_archived = finish_purges(
        store, staging_root, present, now
    )
    report.sidecars_restored = restore_sidecars(store, sealer, staging_root)
    report.audit_sidecars_restored = restore_audit_sidecars(store, sealer, staging_root, mark)
    report.confirmation_sidecars_restored = restore_confirmation_sidecars(
        store, sealer, staging_root, mark
    )
    report.head_restored = restore_head(store, staging_root)
    if head is not None and head[0] > mark:
        with store.transaction():
            store.set_meta(MARK, str(head[0]))
    report.sessions_interrupted = store.interrupt_running_sessions(now)
    if any(vars(report).values()):
        _log.info("recovery.finished", **vars(report))
    return report


def remove_temp_files(staging_root: Path) -> int:
    """Temp files of the data directory itself (the key, the store marker) and of staging."""
    removed = 0
    for directory, names in staging.temp_files(staging_root):
        for name in names:
            (directory / name).unlink()
        durable.fsync_dir(directory)
        removed += len(names)
    return removed


def requeue_copies(store: Store, staging_root: Path, now: str) -> tuple[int, int]:
    """A copy claimed by a process that is gone (the writer lock says no one else holds it)
    goes back to the queue; returns (published copies removed, rows requeued)."""
    removed = requeued = 0
    for row in store.files_in_state(FileState.COPYING):
        published = staging_root / staging.staged_rel(row.device_serial, row.id, row.camera_path)
        if published.exists():
            # Published but never committed: its hash was never recorded, and the camera still
            # holds the original (nothing is wiped before it is sealed), so copy it again.
            published.unlink()
            durable.fsync_dir(published.parent)
            removed += 1
        store.transition(
            row.id,
            FileState.COPYING,
            FileState.DISCOVERED,
            reason="copy interrupted; copied again at the next import",
            reason_kind=ProblemKind.COPY_INTERRUPTED,
            updated_at=now,
        )
        requeued += 1
    return removed, requeued


def seal_staged(store: Store, sealer: Sealer, staging_root: Path, now: str) -> tuple[int, int]:
    """Staged copies that have no seal yet: sealed if they still match the hash read from the
    camera, else marked corrupt; returns (sealed, corrupt)."""
    sealed = corrupt = 0
    buffer = bytearray(1 << 20)
    for row in store.files_in_state(FileState.STAGED):
        path = staging_root / str(row.staged_path)
        actual = hash_file(path, buffer)[0] if path.exists() else "missing"
        if actual != row.staged_sha256:
            store.transition(
                row.id,
                FileState.STAGED,
                FileState.CORRUPT,
                reason=f"staged copy does not match the hash taken as it was copied ({actual})",
                reason_kind=ProblemKind.CORRUPT,
                updated_at=now,
            )
            corrupt += 1
            _log.error("file.corrupt", file_id=row.id, sha256=row.sha256)
            continue
        sealer.seal(row.id, now)
        sealed += 1
    return sealed, corrupt


def restore_sidecars(store: Store, sealer: Sealer, staging_root: Path) -> int:
    """A file sidecar lost after its seal committed is written again from the chain.

    Purged rows are left out: their staged copy is gone, so there is nothing to restore beside
    it, and a long-lived station would otherwise load every file it ever held at each start.
    """
    restored = 0
    for row in store.unpurged_files_in_state(*CUSTODY_STATES):
        if row.staged_path is None or row.record_seq is None:
            continue  # a row in custody always has both; nothing to restore without them
        side = sidecar_path(staging_root, row.staged_path)
        if not side.exists() and (staging_root / row.staged_path).exists():
            record = store.record(row.record_seq)
            if record is not None:
                sealer.write_sidecar(row.staged_path, record)
                restored += 1
    return restored


def _mark(store: Store) -> int:
    """The recovery mark (0 where none was set: a new or rebuilt database)."""
    value = store.meta(MARK)
    return int(value) if value is not None and value.isdigit() else 0


def restore_confirmation_sidecars(
    store: Store, sealer: Sealer, staging_root: Path, after: int = 0
) -> int:
    """A sink's confirmation whose sidecar was lost after it committed (it is written beside
    the staged file once the row is confirmed) is written again from the chain. Only files not
    purged yet: a purge follows recovery, so a confirmation's sidecar is always restored first;
    and only records after the recovery mark `after`."""
    restored = 0
    for record, staged in store.unpurged_confirmations(after=after):
        side = staging.confirmation_path(staging_root, staged, record.seq)
        if not side.exists() and side.parent.is_dir():
            sealer.write_confirmation_sidecar(staged, record)
            restored += 1
    return restored


def restore_audit_sidecars(store: Store, sealer: Sealer, staging_root: Path, after: int = 0) -> int:
    """Audit sidecars lost after their record committed, of the records after the mark."""
    restored = 0
    for record in store.records("audit", after=after):
        if not staging.audit_sidecar_path(staging_root, record.seq).exists():
            sealer.write_audit_sidecar(record)
            restored += 1
    return restored


def restore_head(store: Store, staging_root: Path) -> int:
    """Staging's chain head, where it is missing, unreadable or behind the database's."""
    head = store.chain_head()
    if head is None:
        return 0
    try:
        outside = chainfiles.read_head(staging_root)
    except ValueError:
        outside = None
    if outside is None or outside.seq < head[0]:
        chainfiles.write_head(staging_root, chainfiles.Head(*head))
        return 1
    return 0
