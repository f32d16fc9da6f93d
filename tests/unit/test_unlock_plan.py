"""What the daemon decides before it talks to a locked camera: the clock it sends (only from a
synchronised station, in the camera's zone), the identity a device record must have, and the
limits of a profile's [unlock] table. Pure; no device."""

from __future__ import annotations

import dataclasses
import math
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.camera import profile
from agent.camera.methods import UnlockSpec
from agent.core.errors import (
    ConfigError,
    DeviceCommandFailed,
    DeviceCommandRetryable,
    UnlockFailed,
    UnlockRefused,
)
from agent.devices import scsi
from agent.devices.dialects import ClockPlan, DeviceRecord, get
from agent.health.clock import FixedClock
from agent.runtime.unlock import clock_plan, identity_check, with_retries
from agent.store.devices import DeviceRow
from scripts.simulator.jl_dv16 import Recorder
from tests.support.jl_dv16 import SimTransport

NOW = datetime(2026, 12, 7, 6, 3, 9, tzinfo=UTC)
JL_DV16 = profile.load("jl-dv16")  # its clock is set by SCSI
RECORD = DeviceRecord("JL00001", "001234", "张三", "110101000001", "东城分局")


def _enrolled(officer: str = "", profile_name: str = "jl-dv16") -> dict[str, DeviceRow]:
    return {"JL00001": DeviceRow("JL00001", officer, profile_name, "", "", None, None)}


def test_clock_is_the_station_time_in_the_cameras_zone() -> None:
    shanghai = dataclasses.replace(JL_DV16, timezone="Asia/Shanghai")
    plan = clock_plan(shanghai, "", FixedClock(True), NOW)
    assert plan.wall == datetime(2026, 12, 7, 14, 3, 9)  # UTC+8, no zone sent
    # The station's configured camera zone comes before the profile's.
    plan = clock_plan(shanghai, "Europe/Berlin", FixedClock(True), NOW)
    assert plan.wall == datetime(2026, 12, 7, 7, 3, 9)


def test_no_clock_from_an_unsynchronised_station_or_an_unknown_zone() -> None:
    plan = clock_plan(JL_DV16, "", FixedClock(False), NOW)
    assert plan.wall is None
    assert "not synchronised" in plan.reason and "never set from it" in plan.reason
    nowhere = dataclasses.replace(JL_DV16, timezone="Mars/Olympus")
    plan = clock_plan(nowhere, "", FixedClock(True), NOW)
    assert plan.wall is None and "time zone is unknown" in plan.reason


def test_record_must_name_the_usb_serial() -> None:
    accept = identity_check("JL00002", JL_DV16, {}, False, "cam")
    with pytest.raises(UnlockRefused, match="names serial JL00001, the USB serial is JL00002"):
        accept(RECORD)


def test_record_must_agree_with_the_enrolment() -> None:
    identity_check("JL00001", JL_DV16, _enrolled("001234"), True, "cam")(RECORD)
    identity_check("JL00001", JL_DV16, _enrolled(""), True, "cam")(RECORD)  # no officer named
    with pytest.raises(UnlockRefused, match="enrolled to 009999"):
        identity_check("JL00001", JL_DV16, _enrolled("009999"), True, "cam")(RECORD)
    with pytest.raises(UnlockRefused, match="enrolled as a generic camera, it docked as jl-dv16"):
        identity_check("JL00001", JL_DV16, _enrolled("", "generic"), True, "cam")(RECORD)
    with pytest.raises(UnlockRefused, match="serial JL00001 is not enrolled"):
        identity_check("JL00001", JL_DV16, {}, True, "cam")(RECORD)
    identity_check("JL00001", JL_DV16, {}, False, "cam")(RECORD)


def test_unlock_limits_of_a_profile_are_configuration_errors() -> None:
    spec = UnlockSpec(dialect="jl-dv16", record_size=300)
    with pytest.raises(ConfigError, match="record_size 300 is not one of"):
        get("jl-dv16").unlock(
            SimTransport(Recorder()), spec, ClockPlan(None), lambda _r: None, "cam"
        )
    for bad in (0.0, -1.0, math.nan, 1e12):
        with pytest.raises(ConfigError, match="command_timeout_s"):
            scsi.SgDevice("/dev/null", bad)


@settings(max_examples=500, deadline=None, database=None)
@given(st.binary(max_size=300))
def test_any_sense_bytes_decode_or_are_unreadable_quickly(raw: bytes) -> None:
    started = time.process_time()
    sense = scsi.decode_sense(raw)
    if sense is not None:
        assert 0 <= sense.key <= 15
        assert sense.describe()
    outcome = scsi.Outcome(status=scsi.STATUS_CHECK_CONDITION, sense=raw)
    try:
        scsi.check("battery", "/dev/sg1", outcome, 4, 1.0)
    except (scsi.DeviceCommandFailed, scsi.DeviceCommandRetryable) as exc:
        assert exc.message.startswith("SCSI command battery to /dev/sg1: ")
    assert time.process_time() - started < 0.5


# ---- retries of a failed unlock (agent.runtime.unlock.with_retries) -----------------------


def _failing(*errors: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def attempt() -> object:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "opened"

    return calls, attempt


NOT_READY = DeviceCommandRetryable(command="init", device="/dev/sg2", problem="NOT READY")
REFUSED = DeviceCommandFailed(command="init", device="/dev/sg2", problem="ILLEGAL REQUEST")


def test_a_retryable_failure_is_retried_after_a_doubling_wait() -> None:
    calls, attempt = _failing(NOT_READY, NOT_READY)
    waits: list[float] = []
    spec = UnlockSpec(dialect="jl-dv16", attempts=3, retry_backoff_s=1.5)
    assert with_retries(attempt, spec, lambda: True, waits.append, "cam") == "opened"  # type: ignore[arg-type]
    assert (len(calls), waits) == (3, [1.5, 3.0])


@pytest.mark.parametrize(
    ("errors", "docked", "verdict", "tries"),
    [
        ((NOT_READY,) * 3, True, "retryable, gave up after 3 attempts", 3),
        ((REFUSED,), True, "permanent, not retried", 1),
        ((NOT_READY,), False, "retryable, 1 attempts: undocked or the agent stopping", 1),
    ],
)
def test_a_failed_unlock_says_whether_it_was_retryable(
    errors: tuple[Exception, ...], docked: bool, verdict: str, tries: int
) -> None:
    calls, attempt = _failing(*errors)
    spec = UnlockSpec(dialect="jl-dv16", retry_backoff_s=0)
    with pytest.raises(UnlockFailed) as failed:
        with_retries(attempt, spec, lambda: docked, lambda _s: None, "cam")  # type: ignore[arg-type]
    assert failed.value.message.startswith(f"camera at cam: unlock failed ({verdict}): ")
    assert len(calls) == tries


def test_a_refused_identity_is_never_retried() -> None:
    calls, attempt = _failing(UnlockRefused(path="cam", problem="not enrolled"))
    with pytest.raises(UnlockRefused):
        with_retries(attempt, UnlockSpec(dialect="jl-dv16"), lambda: True, lambda _s: None, "c")  # type: ignore[arg-type]
    assert len(calls) == 1


@pytest.mark.parametrize(
    "limits",
    [{"attempts": 0}, {"attempts": 11}, {"attempts": True}, {"attempts": 2.5},
     {"retry_backoff_s": -1}, {"retry_backoff_s": math.nan}, {"retry_backoff_s": 61},
     {"retry_backoff_s": "2"}],
)  # fmt: skip
def test_retry_limits_out_of_range_are_configuration_errors(limits: dict[str, object]) -> None:
    spec = UnlockSpec(dialect="jl-dv16", **limits)  # type: ignore[arg-type]
    calls, attempt = _failing()
    with pytest.raises(ConfigError, match=r"profile \[unlock\]"):
        with_retries(attempt, spec, lambda: True, lambda _s: None, "cam")  # type: ignore[arg-type]
    assert calls == []
