"""The rules that keep a step of the station's wall clock from purging, stalling or bursting:
the purge grace on the boot clock, the retry schedule on the monotonic clock, the injected
wall-clock offset of the tests, jump detection, and Retry-After dates read against the server's
own Date."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.core import wallclock
from agent.core.wallclock import Stamp
from agent.ingest.policy import copy_may_be_purged
from agent.sync.schedule import RetrySchedule
from agent.sync.tus_client import _retry_after

DAY = 86400.0
HOUR = 3600.0
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(moment: datetime, epoch: str, boottime_s: float) -> Stamp:
    return Stamp(wallclock.iso(moment), epoch, boottime_s)


# ---- purge grace ---------------------------------------------------------------------------


def test_within_one_boot_only_the_boot_clock_counts() -> None:
    confirmed = _at(T0, "boot:a", 1000.0)
    jumped_ahead = _at(T0 + timedelta(days=2), "boot:a", 1000.0 + 60)
    decision = copy_may_be_purged(confirmed.wall, confirmed, jumped_ahead, HOUR, True)
    assert not decision.allowed and decision.age_s == 60
    jumped_back = _at(T0 - timedelta(days=2), "boot:a", 1000.0 + HOUR)
    assert copy_may_be_purged(confirmed.wall, confirmed, jumped_back, HOUR, True).allowed


def test_a_process_epoch_is_one_boot_too() -> None:
    confirmed = _at(T0, "process:x", 50.0)
    now = _at(T0 + timedelta(days=2), "process:x", 100.0)
    assert not copy_may_be_purged(confirmed.wall, confirmed, now, HOUR, True).allowed


def test_after_a_reboot_the_boot_clock_gives_a_lower_bound() -> None:
    confirmed = _at(T0, "boot:a", 5 * HOUR)
    # Another boot, up for two hours: the confirmation is at least two hours old.
    up_two_hours = _at(T0 - timedelta(days=2), "boot:b", 2 * HOUR)
    decision = copy_may_be_purged(confirmed.wall, confirmed, up_two_hours, HOUR, False)
    assert decision.allowed and decision.age_s == 2 * HOUR
    # Unknown boots (no boot id readable) but the boot clock is below the stamp: a reboot.
    below = _at(T0, "process:y", 2 * HOUR)
    assert copy_may_be_purged(confirmed.wall, confirmed, below, HOUR, False).allowed
    # Unknown boots and the boot clock above the stamp: only the difference is certain.
    above = _at(T0 + timedelta(days=2), "process:y", 5 * HOUR + 60)
    decision = copy_may_be_purged(confirmed.wall, confirmed, above, HOUR, False)
    assert not decision.allowed and decision.age_s == 60


def test_after_a_reboot_the_wall_clock_counts_only_while_trusted() -> None:
    confirmed = _at(T0, "boot:a", 5 * HOUR)
    now = _at(T0 + timedelta(days=2), "boot:b", 60.0)
    assert copy_may_be_purged(confirmed.wall, confirmed, now, DAY, True).allowed
    untrusted = copy_may_be_purged(confirmed.wall, confirmed, now, DAY, False)
    assert not untrusted.allowed and untrusted.age_s == 60
    young = _at(T0 + timedelta(hours=2), "boot:b", 60.0)
    assert not copy_may_be_purged(confirmed.wall, confirmed, young, DAY, True).allowed


def test_rows_without_a_boot_stamp() -> None:
    wall = wallclock.iso(T0)
    now = _at(T0 + timedelta(days=2), "boot:b", 60.0)
    assert copy_may_be_purged(wall, None, now, DAY, True).allowed
    assert not copy_may_be_purged(wall, None, now, DAY, False).allowed
    assert copy_may_be_purged(wall, None, now, 0, False).allowed  # no grace: always


# ---- retry schedule --------------------------------------------------------------------------


class _Mono:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_deferred_file_waits_its_backoff_whatever_the_wall_clock_does() -> None:
    mono = _Mono()
    schedule = RetrySchedule(60.0, mono)
    due = wallclock.iso(T0 + timedelta(seconds=30))
    schedule.defer(7, 30.0, due)
    assert schedule.not_due() == {7}
    # The wall clock steps two days either way: the rows still say `due`, nothing changes.
    for wall in (T0 + timedelta(days=2), T0 - timedelta(days=2)):
        schedule.adopt({7: due}, wall)
        assert schedule.not_due() == {7}
    mono.t += 29.9
    assert schedule.not_due() == {7}
    assert schedule.seconds_to_next() == pytest.approx(0.1)
    mono.t += 0.1
    assert schedule.not_due() == set()
    assert schedule.seconds_to_next() == 0.0


def test_due_times_without_history_are_clamped_to_the_longest_backoff() -> None:
    mono = _Mono()
    schedule = RetrySchedule(60.0, mono)
    far = wallclock.iso(T0 + timedelta(days=2))  # written before the clock went back 2 days
    past = wallclock.iso(T0 - timedelta(hours=1))
    schedule.adopt({1: far, 2: past, 3: "garbage"}, T0)
    assert schedule.not_due() == {1}
    mono.t += 60
    assert schedule.not_due() == set()


def test_rows_that_no_longer_wait_leave_the_schedule() -> None:
    schedule = RetrySchedule(60.0, _Mono())
    schedule.defer(1, 30.0, "a")
    schedule.defer(2, 30.0, "b")
    schedule.adopt({2: "b"}, T0)
    assert schedule.not_due() == {2}
    schedule.forget(2)
    assert schedule.seconds_to_next() is None
    # A due time rewritten by another process is taken from the row again.
    schedule.defer(3, 30.0, "c")
    schedule.adopt({3: wallclock.iso(T0)}, T0)
    assert schedule.not_due() == set()


# ---- the injected offset and jumps -----------------------------------------------------------


def test_the_offset_file_moves_the_wall_clock_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "offset"
    monkeypatch.setattr(wallclock, "_OFFSET_CHECK_S", 0.0)
    monkeypatch.setattr(wallclock, "_clock", wallclock.WallClock(str(path)))
    assert abs((wallclock.now() - datetime.now(UTC)).total_seconds()) < 1  # no file yet
    tmp = tmp_path / "offset.tmp"
    tmp.write_text("172800.5\n")
    os.replace(tmp, path)
    mono, boot = wallclock.monotonic(), wallclock.boottime()
    ahead = (wallclock.now() - datetime.now(UTC)).total_seconds()
    assert 172799 < ahead < 172802
    assert wallclock.monotonic() - mono < 1 and wallclock.boottime() - boot < 1
    path.write_text("")  # half-written: the last value stays
    assert (wallclock.now() - datetime.now(UTC)).total_seconds() > 172799
    tmp.write_text("-172800")
    os.replace(tmp, path)
    assert (wallclock.now() - datetime.now(UTC)).total_seconds() < -172799


def test_a_jump_is_seen_and_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "offset"
    path.write_text("0")
    monkeypatch.setattr(wallclock, "_OFFSET_CHECK_S", 0.0)
    monkeypatch.setattr(wallclock, "_clock", wallclock.WallClock(str(path)))
    monkeypatch.setattr(wallclock, "_jumps_seen", 0)
    watch = wallclock.JumpWatch()
    assert watch.check() is None and not wallclock.jump_seen()
    tmp = tmp_path / "offset.tmp"
    tmp.write_text("-172800")
    os.replace(tmp, path)
    jump = watch.check()
    assert jump is not None and jump[0] == pytest.approx(-172800, abs=1)
    assert wallclock.jump_seen()
    assert watch.check() is None  # measured from the new baseline


def test_the_boot_clock_epoch() -> None:
    epoch = wallclock.clock_epoch()
    assert epoch.startswith(("boot:", "process:"))
    assert epoch == wallclock.stamp().epoch
    if os.access("/proc/sys/kernel/random/boot_id", os.R_OK):
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        assert epoch == f"boot:{boot_id}"


def test_retry_after_dates_are_read_against_the_answers_date() -> None:
    later = "Sun, 01 Mar 2026 12:01:00 GMT"
    assert _retry_after(later, "Sun, 01 Mar 2026 12:00:00 GMT") == 60.0
    assert _retry_after("120", "Sun, 01 Mar 2026 12:00:00 GMT") == 120.0
    assert _retry_after(later, None) == 0.0  # long past on the station's clock
