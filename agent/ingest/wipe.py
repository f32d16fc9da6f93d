"""Remove recordings from a camera once they are proven held, one file at a time (DESIGN.md rule 7).

Verify, then delete. Size and mtime prove nothing about content, so before each unlink the
camera's own bytes are read again (agent.ingest.proof: O_NOFOLLOW, the page cache dropped first,
identity checked before and after) and their sha256 compared with the row's sealed one. Only on
equality is an intent committed (a crash between unlink and the row update is then recognised as
our wipe at the next dock) and the file unlinked, and only if the name still leads to the very
file hashed (its descriptor is kept open until then: agent.camera.volume.unlink). Bytes that
differ are new evidence: never wiped here, handed back in `WipeOutcome.changed` so the session
takes them in (copied and sealed as a row of their own) at this same dock; they are wiped at a
later pass once their own row is proven held.

Never formats, never removes metadata or logs, never touches a file whose row is not in custody.
The decision itself is agent.ingest.policy's.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

from agent.camera import volume
from agent.core import crashpoints, log
from agent.core.errors import SourceChanged, describe
from agent.core.model import ProblemKind, WipePolicy, display_name
from agent.ingest.policy import file_may_be_wiped
from agent.ingest.proof import Proof, Prover, close
from agent.store import FileRow, Store

_log = log.get(__name__)

CONTENT_CHANGED = (
    "its bytes on the camera no longer hash to the sealed sha256: not wiped, taken in as new "
    "evidence"
)

NOT_THE_FILE_HASHED = "its name led to another file than the one hashed when it was to be removed"


@dataclass(frozen=True)
class Changed:
    """A camera file whose bytes differ from its sealed row's: the row, and the sha256 of the
    bytes read at wipe time."""

    row: FileRow
    sha256: str


@dataclass
class WipeOutcome:
    wiped: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)

    def refuse(self, file: str, reason: str, kind: ProblemKind) -> None:
        """A file left on the camera: its name, the reason a person reads, the kind code tests."""
        self.refused.append({"file": file, "reason": reason, "kind": kind.value})


def wipe_files(
    store: Store, root_fd: int, rows: list[FileRow], policy: WipePolicy, now: str, prover: Prover
) -> WipeOutcome:
    outcome = WipeOutcome()
    for row in rows:
        if not row.wipeable or row.wiped_at:
            continue
        if not file_may_be_wiped(policy, row.state) or row.sha256 is None:
            continue
        name = display_name(row.camera_path)
        try:
            wiped = _wipe_one(store, root_fd, row, now, prover, outcome)
        except SourceChanged as exc:
            outcome.refuse(
                name,
                f"changed on the camera since it was copied ({exc})",
                ProblemKind.CHANGED_ON_CAMERA,
            )
        except volume.NotTheFileHeldError:
            outcome.refuse(name, NOT_THE_FILE_HASHED, ProblemKind.CHANGED_ON_CAMERA)
        except OSError as exc:
            outcome.refuse(name, describe(exc), ProblemKind.WIPE_FAILED)
        else:
            if wiped:
                # One line per removed recording: the journal then says what left the camera.
                _log.info("file.wiped", device_serial=row.device_serial, file_id=row.id, file=name)
    return outcome


def _wipe_one(
    store: Store, root_fd: int, row: FileRow, now: str, prover: Prover, outcome: WipeOutcome
) -> bool:
    """Prove the camera file is the sealed one, then unlink it; False when it is not."""
    proof = prover.open_and_hash(root_fd, row.camera_path, row.size, row.mtime_ns)
    try:
        if proof.sha256 != row.sha256:
            outcome.refuse(
                display_name(row.camera_path), CONTENT_CHANGED, ProblemKind.CHANGED_ON_CAMERA
            )
            outcome.changed.append(Changed(row, proof.sha256))
            _log.warning(
                "file.changed_on_camera",
                device_serial=row.device_serial,
                file_id=row.id,
                file=display_name(row.camera_path),
            )
            return False
        _unlink_proven(store, root_fd, row, now, proof)
    finally:
        close(proof.fd)
    outcome.wiped += 1
    return True


def _unlink_proven(store: Store, root_fd: int, row: FileRow, now: str, proof: Proof) -> None:
    """Commit the intent, unlink the file the proof hashed (refused if the name now leads to
    another), record the wipe."""
    store.set_file(row.id, wipe_started_at=now)
    crashpoints.hit("wipe.intent")
    try:
        volume.unlink(root_fd, row.camera_path, held=proof.stat)
    except volume.NotTheFileHeldError:
        # Nothing was removed: the intent would otherwise let a later listing without this
        # name count it as our wipe.
        store.set_file(row.id, wipe_started_at=None)
        raise
    crashpoints.hit("wipe.unlinked")
    store.set_file(row.id, wiped_at=now)


def settle_interrupted_wipes(
    store: Store, serial: str, present: Container[tuple[bytes, int, int]], now: str
) -> int:
    """Rows whose wipe had started and whose file is gone from the camera were wiped by us
    (the intent is committed only after the file's bytes were proven to be the row's)."""
    settled = 0
    for row in store.interrupted_wipes(serial):
        if (row.camera_path, row.size, row.mtime_ns) not in present:
            store.set_file(row.id, wiped_at=now)
            settled += 1
    return settled
