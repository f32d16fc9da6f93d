"""Wipe decisions: nothing is wiped unless every file is held and the volume is accounted for."""

from __future__ import annotations

from agent.core.model import FileState, WipePolicy
from agent.ingest.policy import camera_may_be_wiped, file_may_be_wiped

S, D, C = FileState.SEALED, FileState.DISCOVERED, FileState.CONFIRMED
GB = 1 << 30


def test_after_seal_needs_every_file_in_custody() -> None:
    assert camera_may_be_wiped(WipePolicy.AFTER_SEAL, [S, S], 0, 10, 10, GB).allowed
    refused = camera_may_be_wiped(WipePolicy.AFTER_SEAL, [S, D], 0, 10, 10, GB)
    assert not refused.allowed
    assert "1 files of the camera are not in custody" in refused.reason


def test_unaccounted_entries_or_space_block_the_wipe() -> None:
    assert (
        "not accounted for" in camera_may_be_wiped(WipePolicy.AFTER_SEAL, [S], 2, 0, 0, GB).reason
    )
    hidden = camera_may_be_wiped(WipePolicy.AFTER_SEAL, [S], 0, 500 << 20, 10 << 20, GB)
    assert not hidden.allowed
    assert "hidden or lost data" in hidden.reason
    # FAT overhead within slack is fine
    assert camera_may_be_wiped(WipePolicy.AFTER_SEAL, [S], 0, 12 << 20, 10 << 20, GB).allowed


def test_never_and_after_confirm() -> None:
    assert not camera_may_be_wiped(WipePolicy.NEVER, [C], 0, 0, 0, GB).allowed
    waiting = camera_may_be_wiped(WipePolicy.AFTER_CONFIRM, [C, S], 0, 0, 0, GB)
    assert not waiting.allowed
    assert "confirm" in waiting.reason
    assert camera_may_be_wiped(WipePolicy.AFTER_CONFIRM, [C, C], 0, 0, 0, GB).allowed
    assert not file_may_be_wiped(WipePolicy.AFTER_CONFIRM, S)
    assert file_may_be_wiped(WipePolicy.AFTER_SEAL, S)
    assert not file_may_be_wiped(WipePolicy.AFTER_SEAL, D)


def test_a_volume_that_reports_no_size_is_not_wiped() -> None:
    decision = camera_may_be_wiped(WipePolicy.AFTER_SEAL, [S], 0, 0, 0, 0)
    assert not decision.allowed
    assert "cannot be accounted for" in decision.reason
