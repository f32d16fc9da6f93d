"""Purge the staged copies of confirmed files once their grace period has passed, never earlier.

Whether a copy's grace has passed is agent.ingest.policy.copy_may_be_purged's decision, read off the
boot clock wherever it can be, so a step of the station's wall clock purges nothing early. The
row is marked first (state must still be `confirmed`), then the file is unlinked and its
directory synced; then the pass's purged copies' sidecars (the signed record, the sinks' signed
confirmations, the upload receipt) move into the day's archive (agent.custody.archive), so a
camera directory holds only what is still staged. Never touches an unconfirmed copy, and never
a camera.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from agent.core import durable, log, wallclock
from agent.core.wallclock import Stamp
from agent.custody import archive
from agent.health.clock import StationClock, station_clock
from agent.ingest.policy import copy_may_be_purged
from agent.store import FileRow, Store

_log = log.get(__name__)

# adjtimex(2) is asked at most this often (the state changes slowly; purges run every pass).
_SYNC_RECHECK_S = 60.0


class WallTrust:
    """Whether the wall clock may measure a grace across a reboot: the kernel says it is
    synchronised, and this process has not seen it step (agent.core.wallclock.JumpWatch)."""

    def __init__(self, clock: StationClock | None = None) -> None:
        self.clock = clock
        self.synchronised = False
        self.checked_at: float | None = None

    def __call__(self) -> bool:
        if wallclock.jump_seen():
            return False
        now = wallclock.monotonic()
        if self.checked_at is None or now - self.checked_at >= _SYNC_RECHECK_S:
            self.synchronised = (self.clock or station_clock()).read().synchronised
            self.checked_at = now
        return self.synchronised


def _stamp_of(row: FileRow) -> Stamp | None:
    if not row.confirmed_clock or row.confirmed_boottime_s is None:
        return None  # confirmed before migration 0005
    return Stamp(str(row.confirmed_at), row.confirmed_clock, row.confirmed_boottime_s)


def purge_confirmed(
    store: Store,
    staging_root: Path,
    grace_s: int,
    wall_trusted: Callable[[], bool] | None = None,
    required: tuple[str, ...] | None = None,
) -> tuple[int, int]:
    """Remove the staged copies of files confirmed at least grace_s ago: (count, bytes freed).
    `required`: the sinks whose signed confirmations held_when requires (None: any sink's)."""
    now = wallclock.stamp()
    trusted: bool | None = None
    purged = freed = 0
    done: list[str] = []
    # Rows confirmed on this boot less than the grace ago are certainly not due (the boot clock
    # decides them, copy_may_be_purged rule 1): not read at all.
    for row in store.purge_candidates(
        not_after=(now.epoch, now.boottime_s - grace_s), required=required
    ):
        confirmed = _stamp_of(row)
        if trusted is None and (confirmed is None or confirmed.epoch != now.epoch):
            trusted = (wall_trusted or WallTrust())()  # asked only when a row needs it
        decision = copy_may_be_purged(str(row.confirmed_at), confirmed, now, grace_s, bool(trusted))
        if not decision.allowed:
            continue
        if not store.mark_purged(row.id, now.wall):
            continue
        path = staging_root / str(row.staged_path)
        try:
            size = os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            size = 0
        durable.fsync_dir(path.parent)
        done.append(str(row.staged_path))
        purged += 1
        freed += size
        _log.info(
            "staging.purged",
            file_id=row.id,
            sha256=row.sha256,
            size=size,
            age_s=round(decision.age_s, 1),
            basis=decision.basis,
        )
    _archive(staging_root, done, now.wall)
    # A purge interrupted between the mark and the unlink (a kill) left its file behind, and
    # one interrupted before its sidecars were archived left them beside: recovery finishes
    # both at the next start (recovery.finish_purges), not every pass here, so a pass costs what
    # is purgeable now, not every file ever purged.
    return purged, freed


def _archive(staging_root: Path, staged: list[str], wall: str) -> None:
    """The sidecars of this pass's purged copies, into the day's archive. A failure (a full
    disk) leaves them beside, where they are still read, and the next start archives them."""
    if not staged:
        return
    try:
        moved = archive.archive_sidecars(staging_root, staged, wall)
    except OSError as exc:
        _log.warning("staging.archive_failed", files=len(staged), reason=str(exc))
        return
    _log.info("staging.archived", files=len(staged), sidecars=moved)
