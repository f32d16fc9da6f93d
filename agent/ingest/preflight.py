"""Before a camera is copied: which of its pending files staging can hold above the reserve.

A camera's size fields are hostile (a crafted FAT entry may claim any size below the volume's):
the whole camera is refused (StagingFull) only when none of its files fits or staging is already
inside its reserve. Otherwise the files that fit are copied, and each one that does not stays
queued with its reason and ProblemKind.STAGING_FULL on its row, so one crafted entry cannot keep
every recording of a camera off the station. Reads statvfs(3) and writes reasons; copies nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from agent.camera.listing import size_at
from agent.core.config import Config
from agent.core.errors import StagingFull
from agent.core.model import Candidate, ImportSummary, ProblemKind, display_name
from agent.ingest import sealing
from agent.store import Store

Pending = Sequence[tuple[int, int]]  # (file id, index into the scan's candidates)


def free_bytes(config: Config) -> int:
    """Space left in staging above the configured reserve (negative when inside it)."""
    vfs = os.statvfs(config.staging_path)
    return vfs.f_bavail * vfs.f_frsize - config.storage.reserve_bytes


def fit_space(config: Config, pending: Pending, candidates: Sequence[Candidate]) -> Pending:
    """The pending files staging can hold, in their listed order (the others are left out).

    When they do not all fit, files are taken by priority: important ones first, then the
    oldest (the camera's modification time), then by path; a file that does not fit in what is
    left is passed over and the smaller ones after it still considered. Raises StagingFull,
    nothing copied, when staging is inside its reserve or not even one file fits.
    """
    cost = _cost(config)
    needed = sum(cost(size_at(candidates, index)) for _, index in pending)
    if needed == 0:
        return pending
    staging = config.staging_path
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    free = free_bytes(config)
    if needed <= free:
        return pending
    room = free
    taken: set[int] = set()
    for file_id, index in sorted(pending, key=lambda item: _priority(candidates[item[1]])):
        size = cost(candidates[index].size)
        if room > 0 and size <= room:
            taken.add(file_id)
            room -= size
    if not taken:
        raise StagingFull(path=str(staging), free=max(free, 0), needed=needed)
    return [item for item in pending if item[0] in taken]


def _cost(config: Config) -> Callable[[int], int]:
    """The staging space a file of the camera's size takes: more where it is encrypted (age's
    header and a tag per 64 KiB, as much as staging reserves for it before copying)."""
    recipients = len(config.custody.encrypt_to)
    if not recipients:
        return lambda size: size
    return lambda size: sealing.sealed_size_bound(size, recipients)


def _priority(cand: Candidate) -> tuple[bool, int, bytes]:
    return (not cand.important, cand.mtime_ns, cand.rel_path)


def record_left(
    store: Store,
    left: Pending,
    candidates: Sequence[Candidate],
    summary: ImportSummary,
    now: Callable[[], str],
) -> None:
    """Say on each file staging could not hold, and in the summary, why it was not copied."""
    if not left:
        return
    kind = ProblemKind.STAGING_FULL
    at = now()
    with store.transaction():
        for file_id, index in left:
            cand = candidates[index]
            reason = (
                f"staging full: its {cand.size} bytes do not fit above the reserve after the "
                "files that do; not copied, copied at a later import once space is free"
            )
            store.set_file(file_id, reason=reason, reason_kind=kind, updated_at=at)
            summary.add_problem(display_name(cand.rel_path), reason, kind)
