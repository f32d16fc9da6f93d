"""A docked camera's readiness judged again while it stays docked, and the bounded re-read of
its battery log that feeds it.

A camera docked nearly flat charges on the dock: judged once at the dock, it would stay "charge
5 %" on record for hours after it is full. The dock's checks (agent.health.dock) hand over what
they judged (the readiness inputs, the battery log's judge and where its read ended); again()
then reads only what the camera appended to its battery log since (at most FOLLOW_READ_LIMIT
bytes a read, lines capped as agent.health.logs caps them), the volume's free space (the wipe
frees it), and this dock's faults, and stores the verdict with when it was judged, unless the
verdict is final (the camera was undocked). A charge read over SCSI is not read again: the
unlock's device is closed after the take-in. Nothing here writes to the camera, registers a
fault or changes what the dock stored of its evidence.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from agent.camera import volume
from agent.core.config import HealthConfig
from agent.health import battery, readiness
from agent.health.logs import split_lines
from agent.store import Store

# The bytes one re-read looks at: a camera appends a row of ~60 bytes a minute while it charges,
# so a re-read every minute finds far less; a log that grew by more is read from its newest
# FOLLOW_READ_LIMIT bytes (the rows between are not judged, the charge is the newest row's).
FOLLOW_READ_LIMIT = 64 << 10
_FAULT_SOURCES = ("camera_log", "read", "wipe")  # those readiness weighs (agent.health.faults)


@dataclass(frozen=True)
class Appended:
    lines: list[bytes]
    offset: int  # where the next read starts: after the last complete line read
    skipped: int  # bytes appended that were not read (more than the limit, or a rotation)


def read_appended(fd: int, offset: int, limit: int = FOLLOW_READ_LIMIT) -> Appended:
    """The complete lines appended to a log after `offset`, reading at most `limit` + 1 bytes.

    A log shorter than `offset` was rotated or cut: it is read from its start (its newest
    `limit` bytes). A line still being written (no newline yet) is left for the next read,
    unless it already fills the limit, which no camera row does: then it is dropped whole.
    """
    size = os.fstat(fd).st_size
    if size < offset:
        offset = 0
    start = max(offset, size - limit)
    skipped = start - offset
    # Reading from inside a line (the limit cut the log): that line's tail is not a row.
    partial = start > 0 and os.pread(fd, 1, start - 1) != b"\n"
    data = os.pread(fd, size - start, start) if size > start else b""
    cut = data.rfind(b"\n")
    if cut < 0:
        dropped = len(data) >= limit
        return Appended([], size if dropped else start, skipped + (len(data) if dropped else 0))
    lines = list(split_lines(data[: cut + 1], int(partial)))
    return Appended(lines, start + cut + 1, skipped)


@dataclass
class Follow:
    """What the dock judged, kept to judge the camera again while it stays docked."""

    session_id: int
    first_session: int  # the session that first read this dock's camera log (its faults)
    inputs: readiness.Inputs
    limits: HealthConfig
    battery_path: str  # the profile's BATTERY.CSV path ("" when its battery is no log)
    judge: battery.Judge | None  # the log's judgement so far (None: no log was read)
    offset: int  # where the battery log's read ended
    verdict: str = ""

    def again(self, store: Store, root_fd: int | None, now: str) -> readiness.Readiness | None:
        """Judge again, reading the camera through root_fd (None: it cannot be read now; the
        battery and storage stay as last read). Returns the verdict, or None when it is final
        already (nothing stored)."""
        report = self._battery(root_fd)
        storage = self._storage(root_fd)
        faults = [
            f
            for f in store.dock_faults(self.session_id, self.first_session)
            if f.source in _FAULT_SOURCES
        ]
        self.inputs = dataclasses.replace(
            self.inputs,
            battery=report,
            storage_free=storage[0],
            storage_capacity=storage[1],
            faults=tuple(faults),
        )
        judged = readiness.assess(self.inputs, self.limits)
        volume_fields: dict[str, int | None] = {}
        if self.inputs.storage_is_volume:
            volume_fields = {
                "storage_free_bytes": storage[0],
                "storage_capacity_bytes": storage[1],
            }
        stored = store.judge_readiness(
            self.session_id,
            now,
            judged.verdict,
            [r.as_dict() for r in judged.reasons],
            battery=report,
            battery_verdict=str(report.get("verdict", "")),
            **volume_fields,
        )
        self.verdict = judged.verdict
        return judged if stored else None

    def _battery(self, root_fd: int | None) -> dict[str, Any]:
        judge, before = self.judge, self.inputs.battery
        if judge is None or root_fd is None or not self.battery_path:
            return before
        valid = judge.run.valid
        try:
            fd = volume.open_file(root_fd, self.battery_path.encode())
        except OSError:
            return before  # gone or unreadable now: the last reading stands
        try:
            appended = read_appended(fd, self.offset)
        except OSError:
            return before
        finally:
            os.close(fd)
        self.offset = appended.offset
        judge.feed(appended.lines)
        if judge.run.valid == valid:
            return before  # no new row: the charge stands as last read (maybe over SCSI)
        report = judge.report()
        report.source = str(before.get("source", report.source))
        return report.as_dict()

    def _storage(self, root_fd: int | None) -> tuple[int | None, int | None]:
        last = (self.inputs.storage_free, self.inputs.storage_capacity)
        if root_fd is None or not self.inputs.storage_is_volume:
            return last
        try:
            vfs = os.fstatvfs(root_fd)
        except OSError:
            return last
        capacity = vfs.f_blocks * vfs.f_frsize
        return (vfs.f_bavail * vfs.f_frsize, capacity) if capacity else (None, None)
