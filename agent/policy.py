"""Pure decisions shared by the daemon and the CLI: nothing here does I/O.

A technician asking "would this be wiped?" gets the same answer as the daemon doing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.model import CUSTODY_STATES, FileState, WipePolicy

# Space a FAT/exFAT volume uses beyond its files' allocated clusters: directories, and
# rounding in statvfs. Above this, the listing does not account for the used space.
UNACCOUNTED_SLACK_BYTES = 4 << 20
UNACCOUNTED_SLACK_FRACTION = 0.01


def file_may_be_wiped(policy: WipePolicy, state: FileState) -> bool:
    if policy is WipePolicy.NEVER:
        return False
    if policy is WipePolicy.AFTER_SEAL:
        return state in CUSTODY_STATES
    return state is FileState.CONFIRMED


@dataclass(frozen=True)
class WipeDecision:
    allowed: bool
    reason: str


def camera_may_be_wiped(
    policy: WipePolicy,
    states: Sequence[FileState],
    scan_problems: int,
    used_bytes: int,
    listed_bytes: int,
    capacity: int,
) -> WipeDecision:
    """Wipe nothing unless every file of the camera is accounted for (DESIGN.md rule 7)."""
    if policy is WipePolicy.NEVER:
        return WipeDecision(False, "wipe policy is never")
    if scan_problems:
        return WipeDecision(False, f"{scan_problems} entries on the camera are not accounted for")
    unsealed = sum(1 for s in states if s not in CUSTODY_STATES)
    if unsealed:
        return WipeDecision(False, f"{unsealed} files of the camera are not in custody yet")
    if capacity <= 0:
        return WipeDecision(
            False, "the file system reports no size, so its used space cannot be accounted for"
        )
    slack = UNACCOUNTED_SLACK_BYTES + int(capacity * UNACCOUNTED_SLACK_FRACTION)
    if used_bytes - listed_bytes > slack:
        return WipeDecision(
            False,
            f"the volume uses {used_bytes} bytes but its files account for {listed_bytes}: "
            "hidden or lost data; not wiping",
        )
    if policy is WipePolicy.AFTER_CONFIRM and any(s is not FileState.CONFIRMED for s in states):
        return WipeDecision(False, "waiting for the central server to confirm every file")
    return WipeDecision(True, "")
