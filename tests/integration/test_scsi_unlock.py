"""A jl-dv16 camera unlocked through real SG_IO ioctls: the agent finds /dev/sgN through sysfs
from the docked block device, sends its vendor CDBs with ioctl(2), and umockdev hands each one
(its sg_io_hdr, CDB, data and sense buffers read out of the agent's memory) to the simulated
camera (scripts/simulator/jl_dv16.py), whose answers come back as the sg driver would write
them. What the station learns (identity with a GBK officer name, charge, clock set) and every
refusal's reason are checked, and what the camera was told: a refused camera is never switched
to a disk and never has its clock set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.umockdev_run import run_udev_source, umockdev_missing
from tests.support.umockdev_sg import BLOCK_KEY, SG, SgRun, run_unlock, write_profile

NOW = "2026-12-07T06:03:09+00:00"
PASSWORD = "123456"  # the public default of these cameras (real-cameras.md), not a secret


@pytest.fixture(scope="module", autouse=True)
def _umockdev() -> None:
    missing = umockdev_missing()
    if missing:
        pytest.skip("; ".join(missing))


def _run(
    tmp_path: Path,
    recorder: dict[str, Any] | None = None,
    unlock: dict[str, Any] | None = None,
    **probe: Any,
) -> SgRun:
    spec = {"dialect": "jl-dv16", "password": PASSWORD, "inquiry": "dv16devicev1.00"}
    spec.update(unlock or {})
    name = write_profile(tmp_path / "profiles", "jl-test", spec)
    plan = {"profile": name, "profile_dir": str(tmp_path / "profiles"), "synchronised": True}
    plan.update(now=NOW, **probe)
    return run_unlock(tmp_path / "bed", recorder or {}, plan)


def test_good_camera_is_opened_with_identity_charge_and_clock(tmp_path: Path) -> None:
    run = _run(tmp_path, {"battery": 73}, camera_timezone="")
    assert run.outcome["outcome"] == "unlocked", run.outcome
    info = run.outcome["info"]
    assert info["serial"] == "JL00001"
    assert info["officer_id"] == "001234"
    assert info["officer_name"] == "张三"
    assert info["unit"] == "110101000001"
    assert info["unit_name"] == "东城分局"
    assert info["battery_pct"] == 73
    record = run.outcome["record"]
    assert record["sd_ok"] and record["clock_set"] and record["password_checked"]
    assert run.camera["mass_storage"] is True
    # The station's time in the station's zone (TZ of the test run), as 7 bytes.
    assert run.camera["clock"][0] == 2026
    unlocked = run.logged("device.unlocked")
    assert unlocked and unlocked[0]["sg"] == SG and unlocked[0]["device_serial"] == "JL00001"
    assert PASSWORD not in run.stderr and "张三" not in run.stderr


def test_ninety_four_byte_record_variant(tmp_path: Path) -> None:
    run = _run(tmp_path, {"record_size": 94, "officer_name": "李四"}, {"record_size": 94})
    assert run.outcome["outcome"] == "unlocked", run.outcome
    assert run.outcome["info"]["officer_name"] == "李四"
    assert run.camera["mass_storage"] is True


def test_unsynchronised_station_does_not_set_the_clock(tmp_path: Path) -> None:
    run = _run(tmp_path, synchronised=False)
    assert run.outcome["outcome"] == "unlocked", run.outcome
    assert run.camera["clock"] is None and run.camera["mass_storage"] is True
    assert "not synchronised" in run.outcome["record"]["clock_detail"]


def test_wrong_password_is_refused_and_the_camera_left_shut(tmp_path: Path) -> None:
    run = _run(tmp_path, {"password": "000001"})
    assert run.outcome["error"] == "UnlockRefused"
    assert "password is not the one its profile names" in run.outcome["message"]
    assert run.camera["mass_storage"] is False and run.camera["clock"] is None
    assert PASSWORD not in run.stderr and "000001" not in run.stderr + run.outcome["message"]


def test_no_sd_card_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    run = _run(tmp_path, {"sd_status": 0})
    assert run.outcome["error"] == "UnlockRefused"
    assert "no SD card or a bad one" in run.outcome["message"]
    assert run.camera["mass_storage"] is False


def test_silent_camera_times_out_as_retryable(tmp_path: Path) -> None:
    run = _run(tmp_path, {"fault": "silent", "fault_on": 3}, {"command_timeout_s": 0.3})
    assert run.outcome["error"] == "DeviceCommandRetryable"
    assert run.outcome["kind"] == "retryable"
    assert "read device record" in run.outcome["message"]
    assert "no answer within 0.3 s" in run.outcome["message"]
    assert run.camera["mass_storage"] is False


@pytest.mark.parametrize(
    ("fault", "on", "error", "reason"),
    [
        ("garbage", 3, "UnlockRefused", "serial is not GBK text"),
        ("short", 3, "DeviceCommandFailed", "short answer: 44 of 89 bytes"),
        ("short", 8, "DeviceCommandFailed", "battery to /dev/sg2: short answer: 2 of 4 bytes"),
        ("illegal", 2, "DeviceCommandFailed", "ILLEGAL REQUEST, invalid field in CDB"),
    ],
)
def test_garbage_and_short_answers_stop_the_unlock(
    tmp_path: Path, fault: str, on: int, error: str, reason: str
) -> None:
    run = _run(tmp_path, {"fault": fault, "fault_on": on})
    assert run.outcome["error"] == error
    assert reason in run.outcome["message"]
    assert run.camera["mass_storage"] is False


def test_record_serial_not_the_usb_serial_is_refused_before_any_write(tmp_path: Path) -> None:
    run = _run(tmp_path, {"serial": "JL99999"})
    assert run.outcome["error"] == "UnlockRefused"
    assert (
        "device record names serial JL99999, the USB serial is JL00001" in (run.outcome["message"])
    )
    assert run.camera["commands"] == [1, 14, 2, 3]  # init, its status, ID code, record
    assert run.camera["mass_storage"] is False and run.camera["clock"] is None


def test_enrolment_to_another_officer_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, enrolled={"JL00001": "009999"}, require_enrollment=True)
    assert run.outcome["error"] == "UnlockRefused"
    assert "names badge 001234, serial JL00001 is enrolled to 009999" in run.outcome["message"]
    assert run.camera["mass_storage"] is False


def test_unenrolled_serial_is_refused_when_enrolment_is_required(tmp_path: Path) -> None:
    run = _run(tmp_path, enrolled={}, require_enrollment=True)
    assert "serial JL00001 is not enrolled" in run.outcome["message"]
    assert run.camera["mass_storage"] is False


def test_other_inquiry_than_the_profile_names_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, unlock={"inquiry": "acmecamv2"})
    assert (
        "SCSI INQUIRY says 'dv16devicev1.00', the profile expects 'acmecamv2'"
        in (run.outcome["message"])
    )
    assert run.camera["commands"] == []


def test_udev_source_reports_the_disk_a_locked_camera_opens_into(tmp_path: Path) -> None:
    # The locked camera is reported as a disk without a file system (with its USB device, so
    # the daemon finds its sg node); when the switch gives it a medium with a file system and no
    # partition table, the kernel only sends `change`: it is reported again, as inserted.
    medium = {"ID_FS_TYPE": b"vfat".hex(), "ID_FS_USAGE": b"filesystem".hex()}
    plan = {
        "present": ["locked-jl-dv16"],
        "steps": [
            {"raw": "locked-jl-dv16", "device": "sdc", "props": medium},
            {"uevent": "change", "device": "locked-jl-dv16"},
            {"uevent": "change", "device": "locked-jl-dv16"},  # once is enough
        ],
        "expect_events": 2,
    }
    run = run_udev_source(plan, tmp_path)
    locked, opened = run.events
    assert (locked["action"], opened["action"]) == ("present", "inserted")
    assert locked["identity"]["key"] == opened["identity"]["key"] == BLOCK_KEY
    assert locked["identity"]["fs_type"] == "" and opened["identity"]["fs_type"] == "vfat"
    assert opened["identity"]["serial"] == "JL00001"
    assert opened["extra"]["usb_device"].endswith("/usb1/1-3")


def test_a_read_after_a_reset_is_repeated_once(tmp_path: Path) -> None:
    run = _run(tmp_path, {"fault": "reset", "fault_on": 8, "battery": 55})
    assert run.outcome["outcome"] == "unlocked", run.outcome
    assert run.outcome["info"]["battery_pct"] == 55
    assert run.camera["commands"].count(8) == 2
    (repeated,) = run.logged("scsi.read_repeated")
    assert repeated["command"] == "battery" and "UNIT ATTENTION" in repeated["reason"]


def test_a_write_is_never_repeated(tmp_path: Path) -> None:
    run = _run(tmp_path, {"fault": "reset", "fault_on": 5})
    assert run.outcome["error"] == "DeviceCommandRetryable"
    assert "set time to /dev/sg2: UNIT ATTENTION" in run.outcome["message"]
    assert run.camera["commands"].count(5) == 1
    assert run.camera["mass_storage"] is False
