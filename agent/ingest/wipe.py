"""Remove recordings from a camera once they are held, one file at a time (DESIGN.md rule 7).

Each file is re-opened and its identity (size, mtime) checked against the row before it is
unlinked; an intent is committed first so a crash between unlink and the row update is
recognised as our wipe at the next dock. Never formats, never removes metadata or logs, never
touches a file whose row is not in custody. The decision itself is agent.ingest.policy's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from agent.camera import volume
from agent.core import crashpoints, log
from agent.core.errors import describe
from agent.core.model import ProblemKind, WipePolicy, display_name
from agent.ingest.policy import file_may_be_wiped
from agent.store import FileRow, Store

_log = log.get(__name__)


@dataclass
class WipeOutcome:
    wiped: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)

    def refuse(self, file: str, reason: str, kind: ProblemKind) -> None:
        """A file left on the camera: its name, the reason a person reads, the kind code tests."""
        self.refused.append({"file": file, "reason": reason, "kind": kind.value})


def wipe_files(
    store: Store, root_fd: int, rows: list[FileRow], policy: WipePolicy, now: str
) -> WipeOutcome:
    outcome = WipeOutcome()
    for row in rows:
        if not row.wipeable or row.wiped_at:
            continue
        if not file_may_be_wiped(policy, row.state):
            continue
        rel = row.camera_path
        try:
            fd = volume.open_file(root_fd, rel)
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
            if (st.st_size, st.st_mtime_ns) != (row.size, row.mtime_ns):
                outcome.refuse(
                    display_name(rel),
                    "changed on the camera since it was copied",
                    ProblemKind.CHANGED_ON_CAMERA,
                )
                continue
            store.set_file(row.id, wipe_started_at=now)
            crashpoints.hit("wipe.intent")
            volume.unlink(root_fd, rel)
            crashpoints.hit("wipe.unlinked")
            store.set_file(row.id, wiped_at=now)
            outcome.wiped += 1
        except OSError as exc:
            outcome.refuse(display_name(rel), describe(exc), ProblemKind.WIPE_FAILED)
        else:
            # One line per removed recording: the journal then says what left the camera.
            _log.info(
                "file.wiped",
                device_serial=row.device_serial,
                file_id=row.id,
                file=display_name(rel),
            )
    return outcome


def settle_interrupted_wipes(
    store: Store, serial: str, present: set[tuple[bytes, int, int]], now: str
) -> int:
    """Rows whose wipe had started and whose file is gone from the camera were wiped by us."""
    settled = 0
    for row in store.interrupted_wipes(serial):
        if (row.camera_path, row.size, row.mtime_ns) not in present:
            store.set_file(row.id, wiped_at=now)
            settled += 1
    return settled
