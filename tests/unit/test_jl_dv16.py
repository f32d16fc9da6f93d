"""The jl-dv16 dialect and the SG_IO outcome checks, without a device node: CDBs, the device
record (both variants, GBK, hostile bytes), sense data in both formats, and a whole unlock
against the simulated camera (scripts/simulator/jl_dv16.py) through the same outcome checks a
real SG_IO answer goes through. What a person sees: the identity, the charge, the clock, and a
refusal's reason, which never holds the password."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.camera.methods import UnlockSpec
from agent.core.errors import (
    DeviceCommandFailed,
    DeviceCommandRetryable,
    ErrorKind,
    UnlockRefused,
    classify,
)
from agent.devices import scsi
from agent.devices.dialects import ClockPlan, DeviceRecord, UnlockRecord, get
from agent.devices.dialects.jl_dv16 import cdb, parse_record, time_payload
from scripts.simulator.jl_dv16 import Recorder
from tests.support.jl_dv16 import SimTransport

PROPERTY = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
WALL = datetime(2026, 12, 7, 14, 3, 9)
# The public default password of these cameras (real-cameras.md), not a secret.
SPEC = UnlockSpec(dialect="jl-dv16", password="123456")  # noqa: S106


def _accept(_record: DeviceRecord) -> None:
    return None


def _unlock(
    recorder: Recorder, spec: UnlockSpec = SPEC, clock: ClockPlan | None = None
) -> UnlockRecord:
    return get("jl-dv16").unlock(
        SimTransport(recorder), spec, clock or ClockPlan(WALL), _accept, "/dev/sg-sim"
    )


# ---- CDBs and payloads ---------------------------------------------------------------------


def test_cdbs_are_sixteen_bytes_with_command_in_byte_5_and_length_in_byte_7() -> None:
    # real-cameras.md: `sg_raw -r 4 /dev/sgN FD 81 00 00 00 08 00 04 00 ...` reads the battery.
    assert cdb(0x08, 4, write=False) == bytes.fromhex("FD81000000080004" + "00" * 8)
    assert cdb(0x06, 0, write=True) == bytes.fromhex("FB82000000060000" + "00" * 8)
    assert cdb(0x03, 94, write=False)[7] == 94
    with pytest.raises(ValueError, match="does not fit"):
        cdb(0x03, 256, write=False)


def test_set_time_payload_is_little_endian_year_then_five_bytes() -> None:
    assert time_payload(WALL) == bytes([0xEA, 0x07, 12, 7, 14, 3, 9])


# ---- the device record ---------------------------------------------------------------------


def test_packed_record_with_gbk_names_is_read_as_the_camera_holds_it() -> None:
    raw = Recorder(officer_name="张三", unit_name="东城分局").record_bytes()
    assert len(raw) == 89
    record = parse_record(raw, 89, "cam")
    assert record == DeviceRecord("JL00001", "001234", "张三", "110101000001", "东城分局")


def test_packed_record_fields_may_fill_their_width() -> None:
    # 16 two-byte GBK characters fill the 32-byte name field: no NUL, still a name.
    name = "张" * 16
    record = parse_record(Recorder(officer_name=name).record_bytes(), 89, "cam")
    assert record.officer_name == name


def test_nul_terminated_record_is_read_and_a_field_without_nul_is_refused() -> None:
    raw = Recorder(record_size=94).record_bytes()
    assert parse_record(raw, 94, "cam").officer_name == "张三"
    unterminated = bytearray(raw)
    unterminated[8 + 7 : 8 + 7 + 33] = "张".encode("gbk") * 16 + b"x"
    with pytest.raises(UnlockRefused, match="officer name is not NUL-terminated"):
        parse_record(bytes(unterminated), 94, "cam")


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ((7 + 6, b"\x81\x20"), "officer name is not GBK text"),
        ((7 + 6, b"A\x07B\0"), "officer name holds a control character"),
        ((0, b"JL 0001"), "serial 'JL 0001' is not 1-32"),
        ((0, b"\0" * 7), "serial '' is not 1-32"),
        ((7, b"12;345"), "badge number '12;345' is malformed"),
    ],
)
def test_hostile_record_fields_are_refused_with_the_field_named(
    patch: tuple[int, bytes], reason: str
) -> None:
    raw = bytearray(Recorder().record_bytes())
    at, data = patch
    raw[at : at + len(data)] = data
    with pytest.raises(UnlockRefused, match=reason):
        parse_record(bytes(raw), 89, "cam")


def test_record_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(UnlockRefused, match="88 bytes, not 89"):
        parse_record(b"\0" * 88, 89, "cam")
    with pytest.raises(UnlockRefused, match="no jl-dv16 device record has 90 bytes"):
        parse_record(b"\0" * 90, 90, "cam")


@PROPERTY
@given(size=st.sampled_from([89, 94]), data=st.data())
def test_any_record_bytes_parse_or_are_refused_quickly(size: int, data: st.DataObject) -> None:
    raw = data.draw(
        st.one_of(
            st.binary(min_size=size, max_size=size),
            st.lists(
                st.sampled_from([b"\0", b"\xd5\xc5", b"A", b"\x81", b"\xff", b"-", b" "]),
                min_size=size,
                max_size=size,
            ).map(lambda parts: b"".join(parts)[:size].ljust(size, b"\0")),
        )
    )
    started = time.process_time()
    try:
        record = parse_record(raw, size, "cam")
    except UnlockRefused as exc:
        assert exc.message.startswith("camera at cam refused: the device record")
    else:
        assert record.serial and len(record.officer_name) <= 33
    assert time.process_time() - started < 0.5


# ---- sense data and outcomes ---------------------------------------------------------------


def test_fixed_and_descriptor_sense_decode_to_the_same_reason() -> None:
    fixed = bytes([0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0x00, 0, 0, 0, 0])
    descriptor = bytes([0x72, 0x05, 0x20, 0x00, 0, 0, 0, 0])
    for raw, form in ((fixed, "fixed"), (descriptor, "descriptor")):
        sense = scsi.decode_sense(raw)
        assert sense is not None
        assert sense.describe() == (
            f"ILLEGAL REQUEST, invalid command operation code (ASC 20h ASCQ 00h, {form} sense)"
        )
        assert not sense.retryable
    assert scsi.decode_sense(b"\x7f\x00\x00") is None
    assert scsi.decode_sense(b"") is None


@pytest.mark.parametrize(
    ("outcome", "kind", "reason"),
    [
        (scsi.Outcome(host_status=scsi.DID_TIME_OUT), ErrorKind.RETRYABLE, "no answer within 5 s"),
        (scsi.Outcome(driver_status=scsi.DRIVER_TIMEOUT), ErrorKind.RETRYABLE, "no answer"),
        (
            scsi.Outcome(status=2, sense=bytes([0x72, 0x06, 0x29, 0x00])),
            ErrorKind.RETRYABLE,
            "UNIT ATTENTION, power on, reset",
        ),
        (scsi.Outcome(status=2, sense=b""), ErrorKind.PERMANENT, "without readable sense"),
        (scsi.Outcome(status=0x08), ErrorKind.RETRYABLE, "busy"),
        (scsi.Outcome(host_status=0x01), ErrorKind.PERMANENT, "DID_NO_CONNECT"),
        (scsi.Outcome(resid=-3), ErrorKind.PERMANENT, "residue of -3"),
        (scsi.Outcome(resid=2), ErrorKind.PERMANENT, "short answer: 2 of 4 bytes"),
    ],
)
def test_outcomes_are_classified_once_with_a_reason(
    outcome: scsi.Outcome, kind: ErrorKind, reason: str
) -> None:
    with pytest.raises((DeviceCommandFailed, DeviceCommandRetryable)) as caught:
        scsi.read_answer("battery", "/dev/sg1", outcome, b"\0" * 4, 5.0)
    assert classify(caught.value) is kind
    assert reason in caught.value.message


def test_recovered_error_is_a_good_answer() -> None:
    recovered = scsi.Outcome(status=2, sense=bytes([0x72, 0x01, 0x00, 0x00]))
    assert scsi.read_answer("battery", "/dev/sg1", recovered, b"\x05\0\0\0", 5.0) == b"\x05\0\0\0"


# ---- a whole unlock against the simulated camera -------------------------------------------


def test_good_camera_is_opened_with_its_identity_charge_and_clock() -> None:
    camera = Recorder(battery=64)
    record = _unlock(camera)
    assert camera.mass_storage
    assert camera.clock == (2026, 12, 7, 14, 3, 9)
    assert record.record.officer_name == "张三"
    assert (record.battery_pct, record.sd_ok, record.clock_set) == (64, True, True)
    assert record.password_checked
    info = record.device_info()
    assert (info.serial, info.officer_id, info.unit, info.battery_pct) == (
        "JL00001",
        "001234",
        "110101000001",
        64,
    )
    assert "123456" not in repr(record.as_dict())


def test_ninety_four_byte_variant_is_read_when_the_profile_says_so() -> None:
    camera = Recorder(record_size=94, unit_name="朝阳分局")
    record = _unlock(camera, UnlockSpec(dialect="jl-dv16", record_size=94))
    assert record.record.unit_name == "朝阳分局"
    assert not record.password_checked
    assert camera.mass_storage


def test_unsynchronised_station_opens_the_camera_without_setting_its_clock() -> None:
    camera = Recorder()
    record = _unlock(camera, clock=ClockPlan(None, "station clock not synchronised"))
    assert camera.mass_storage and camera.clock is None
    assert not record.clock_set
    assert record.clock_detail == "station clock not synchronised"
    assert 0x05 not in camera.commands


def test_battery_out_of_range_is_unknown_not_believed() -> None:
    record = _unlock(Recorder(battery=250))
    assert record.battery_pct is None
    assert record.battery_detail == "unknown (the camera answered 250)"


def test_wrong_password_is_refused_without_saying_either_password() -> None:
    camera = Recorder(password="000001")  # noqa: S106 - the other public default
    with pytest.raises(UnlockRefused) as caught:
        _unlock(camera)
    assert "password is not the one its profile names" in caught.value.message
    assert "000001" not in str(caught.value) and "123456" not in str(caught.value)
    assert not camera.mass_storage and camera.clock is None


def test_no_sd_card_is_refused_and_the_camera_not_switched() -> None:
    camera = Recorder(sd_status=0)
    with pytest.raises(UnlockRefused, match="no SD card or a bad one"):
        _unlock(camera)
    assert not camera.mass_storage
    assert 0x06 not in camera.commands


def test_refused_identity_writes_nothing_to_the_camera() -> None:
    camera = Recorder(serial="JL99999")

    def accept(record: DeviceRecord) -> None:
        raise UnlockRefused(path="cam", problem=f"record serial {record.serial} is not JL00001")

    with pytest.raises(UnlockRefused, match="record serial JL99999 is not JL00001"):
        get("jl-dv16").unlock(SimTransport(camera), SPEC, ClockPlan(WALL), accept, "cam")
    assert camera.commands == [0x01, 0x0E, 0x02, 0x03]  # init, its status, reads only
    assert not camera.mass_storage and camera.clock is None


@pytest.mark.parametrize(
    ("fault", "on", "error", "reason"),
    [
        ("silent", 0x03, DeviceCommandRetryable, "no answer within 5 s"),
        ("garbage", 0x03, UnlockRefused, "serial is not GBK text"),
        ("short", 0x03, DeviceCommandFailed, "short answer: 44 of 89 bytes"),
        ("illegal", 0x08, DeviceCommandFailed, "ILLEGAL REQUEST, invalid field in CDB"),
        ("refuse", 0x06, DeviceCommandFailed, "answered status 8"),
    ],
)
def test_faulty_answers_stop_the_unlock_with_a_reason(
    fault: str, on: int, error: type[Exception], reason: str
) -> None:
    camera = Recorder(fault=fault, fault_on=on)
    with pytest.raises(error, match=reason):
        _unlock(camera)
    assert not camera.mass_storage


def test_unknown_dialect_is_a_configuration_error() -> None:
    with pytest.raises(Exception, match="no SCSI dialect named 'acme'"):
        get("acme")
