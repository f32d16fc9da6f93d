"""The "jl-dv16" command set of many Chinese body-worn cameras (real-cameras.md, its table).

16-byte CDBs, zero-filled: write FB 82, read FD 81, the command in byte 5 and the data length
in byte 7. Unlock order: init, ID code, device record (checked and handed to `accept` before
anything is written), password (compared, never logged), battery, set time (only with a plan
from a synchronised station), SD card status (0 refuses), switch to mass storage, and the last
command status after each write. Every answer is hostile: fixed sizes, GBK decoded strictly,
control characters refused, numbers range-checked. Logs name the serial and the badge only.
"""

from __future__ import annotations

import hmac
import re
import struct
import unicodedata
from collections.abc import Callable
from datetime import datetime

from agent.camera.methods import UnlockSpec
from agent.core import log
from agent.core.errors import ConfigError, DeviceCommandFailed, UnlockRefused
from agent.core.model import SERIAL_PATTERN
from agent.devices.dialects import ClockPlan, DeviceRecord, UnlockRecord
from agent.devices.scsi import Transport

_log = log.get(__name__)

NAME = "jl-dv16"
CDB_LEN = 16
WRITE_OPCODE = (0xFB, 0x82)
READ_OPCODE = (0xFD, 0x81)

INIT = 0x01
ID_CODE = 0x02
READ_RECORD = 0x03
SET_TIME = 0x05
MASS_STORAGE = 0x06
BATTERY = 0x08
SD_STATUS = 0x0C
READ_PASSWORD = 0x0D
LAST_STATUS = 0x0E

# What the relay (agent.devices.scsi_relay) sends for this dialect, and nothing else: each
# command with the one data length it has.
WRITES = {INIT: 0, SET_TIME: 7, MASS_STORAGE: 0}
READS = {ID_CODE: 6, READ_RECORD: None, BATTERY: 4, SD_STATUS: 4, READ_PASSWORD: 16, LAST_STATUS: 4}

ID_CODE_LEN = 6
INT_LEN = 4
PASSWORD_LEN = 16
TIME_LEN = 7

# Field sizes of the device record: serial, badge, officer name, unit number, unit name.
# 89: packed, a value may fill its field; 94: each field ends with a NUL (the profile says).
RECORD_FIELDS = {
    89: (7, 6, 32, 12, 32),
    94: (8, 7, 33, 13, 33),
}
_CODE = re.compile(r"[A-Za-z0-9 ._/()+-]*", re.ASCII)  # badge and unit number, with fullmatch
_QUOTED = 24


def cdb(command: int, length: int, *, write: bool) -> bytes:
    """The 16-byte CDB of one command; `length` (0-255) is the data length of byte 7."""
    if not 0 <= command <= 0xFF or not 0 <= length <= 0xFF:
        raise ValueError(f"command {command:#x} / length {length} does not fit a byte")
    block = bytearray(CDB_LEN)
    block[0], block[1] = WRITE_OPCODE if write else READ_OPCODE
    block[5] = command
    block[7] = length
    return bytes(block)


def le_int(raw: bytes) -> int:
    """A C `int` as the camera's SDK sends it (32 bits, little-endian, as on x86)."""
    return int(struct.unpack("<i", raw)[0])


def time_payload(wall: datetime) -> bytes:
    """0x05's 7 bytes: u16 year (little-endian), month, day, hour, minute, second of a camera
    wall time (no zone is sent: the caller gives the time in the camera's zone)."""
    fields = (wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second)
    return struct.pack("<HBBBBB", *fields)


def parse_record(raw: bytes, size: int, where: str) -> DeviceRecord:
    """The device record's bytes as a DeviceRecord; UnlockRefused with a reason when they are not
    a record of `size` bytes (wrong length, a field without its NUL, text that is not GBK, a
    control character, a serial that is not 1-32 of A-Z a-z 0-9 -). Linear in `size`."""
    widths = RECORD_FIELDS.get(size)
    if widths is None:
        raise UnlockRefused(path=where, problem=f"no {NAME} device record has {size} bytes")
    if len(raw) != size:
        raise UnlockRefused(
            path=where, problem=f"the device record has {len(raw)} bytes, not {size}"
        )
    names = ("serial", "badge number", "officer name", "unit number", "unit name")
    values: list[str] = []
    at = 0
    for name, width in zip(names, widths, strict=True):
        values.append(_field(raw[at : at + width], name, terminated=size == 94, where=where))
        at += width
    serial, badge, officer, unit_id, unit_name = values
    if not SERIAL_PATTERN.fullmatch(serial):
        raise UnlockRefused(
            path=where,
            problem=f"the device record's serial {_quote(serial)} is not 1-32 of A-Z a-z 0-9 -",
        )
    for name, value in (("badge number", badge), ("unit number", unit_id)):
        if not _CODE.fullmatch(value):
            raise UnlockRefused(
                path=where, problem=f"the device record's {name} {_quote(value)} is malformed"
            )
    return DeviceRecord(serial, badge, officer, unit_id, unit_name)


def _field(raw: bytes, name: str, *, terminated: bool, where: str) -> str:
    end = raw.find(b"\0")
    if end < 0:
        if terminated:
            raise UnlockRefused(
                path=where, problem=f"the device record's {name} is not NUL-terminated"
            )
        end = len(raw)
    value = raw[:end]
    try:
        text = value.decode("gbk")
    except UnicodeDecodeError as exc:
        raise UnlockRefused(
            path=where,
            problem=f"the device record's {name} is not GBK text (byte {exc.start} of the field)",
        ) from None
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in text):
        raise UnlockRefused(
            path=where, problem=f"the device record's {name} holds a control character"
        )
    return text.strip()


def _quote(value: str) -> str:
    return repr(value[:_QUOTED] + ("..." if len(value) > _QUOTED else ""))


def battery_of(raw: bytes) -> tuple[int | None, str]:
    """The charge in percent, or None and why (a value outside 0-100 is not believed)."""
    value = le_int(raw)
    if 0 <= value <= 100:
        return value, ""
    return None, f"unknown (the camera answered {value})"


class JlDv16:
    """The dialect object the registry (agent.devices.dialects.get) hands out."""

    name = NAME

    @staticmethod
    def allows(command_block: bytes, write: bool, length: int) -> bool:
        """Whether a CDB moving `length` bytes is one of this set's (the relay's filter): the
        exact 16 bytes cdb() makes for a command of the table, with its data length."""
        table = WRITES if write else READS
        if len(command_block) != CDB_LEN or command_block[5] not in table:
            return False
        wanted = table[command_block[5]]
        fits = length in RECORD_FIELDS if wanted is None else length == wanted
        return fits and command_block == cdb(command_block[5], length, write=write)

    @staticmethod
    def read_identity(
        transport: Transport, spec: UnlockSpec, where: str
    ) -> tuple[DeviceRecord, str]:
        """Init, ID code and device record only (reads, and the init every session needs):
        who the camera is and its ID code in hex. Nothing on the camera changes."""
        if spec.record_size not in RECORD_FIELDS:
            raise ConfigError(
                where="profile [unlock]",
                problem=f"record_size {spec.record_size!r} is not one of {sorted(RECORD_FIELDS)}",
            )
        status = _Session(transport, where).write(INIT, "init")
        if status != 0:
            raise DeviceCommandFailed(
                command="init", device=where, problem=f"the camera answered status {status}"
            )
        id_code = transport.read("id code", cdb(ID_CODE, ID_CODE_LEN, write=False), ID_CODE_LEN)
        raw = transport.read(
            "read device record", cdb(READ_RECORD, spec.record_size, write=False), spec.record_size
        )
        return parse_record(raw, spec.record_size, where), id_code.hex()

    def unlock(
        self,
        transport: Transport,
        spec: UnlockSpec,
        clock: ClockPlan,
        accept: Callable[[DeviceRecord], None],
        where: str,
    ) -> UnlockRecord:
        record, id_code = self.read_identity(transport, spec, where)
        log_ = _log.bind(device_serial=record.serial, officer_id=record.officer_id)
        accept(record)
        checked = self._password(transport, spec, where)
        battery, battery_detail = battery_of(
            transport.read("battery", cdb(BATTERY, INT_LEN, write=False), INT_LEN)
        )
        clock_set, clock_detail = self._set_time(transport, clock, where)
        sd = le_int(transport.read("SD status", cdb(SD_STATUS, INT_LEN, write=False), INT_LEN))
        if sd == 0:
            raise UnlockRefused(
                path=where,
                problem="the camera reports no SD card or a bad one (SD status 0): it cannot be "
                "opened as a disk",
            )
        status = _Session(transport, where).write(MASS_STORAGE, "switch to mass storage")
        if status != 0:
            raise DeviceCommandFailed(
                command="switch to mass storage",
                device=where,
                problem=f"the camera answered status {status} (0 = done)",
            )
        log_.info(
            "device.mass_storage_requested",
            battery_pct=battery,
            clock_set=clock_set,
            password_checked=checked,
        )
        return UnlockRecord(
            dialect=NAME,
            record=record,
            id_code=id_code,
            battery_pct=battery,
            battery_detail=battery_detail or f"{battery}%",
            sd_ok=True,
            clock_set=clock_set,
            clock_detail=clock_detail,
            password_checked=checked,
            opened=True,
        )

    @staticmethod
    def _password(transport: Transport, spec: UnlockSpec, where: str) -> bool:
        """Compare the device's password with the profile's (when it names one). Neither is
        logged nor put in a message: the reason says only that they differ."""
        if spec.password is None:
            return False
        raw = transport.read(
            "read password", cdb(READ_PASSWORD, PASSWORD_LEN, write=False), PASSWORD_LEN
        )
        held = raw.split(b"\0", 1)[0]
        if not hmac.compare_digest(held, spec.password.encode("utf-8")):
            raise UnlockRefused(
                path=where, problem="the camera's password is not the one its profile names"
            )
        return True

    @staticmethod
    def _set_time(transport: Transport, clock: ClockPlan, where: str) -> tuple[bool, str]:
        """Set the camera's clock from the plan; (set, why not). A camera that refuses the time
        is still opened: its clock is checked from file times at the next dock."""
        wall = clock.wall
        if wall is None:
            return False, clock.reason or "no time to set"
        payload = time_payload(wall)
        status = _Session(transport, where).write(SET_TIME, "set time", payload)
        if status != 0:
            return False, f"the camera answered status {status} to set time"
        return True, f"set to {wall.replace(tzinfo=None).isoformat(timespec='seconds')}"


class _Session:
    """A write followed by the device's "last command status" (0 = OK)."""

    def __init__(self, transport: Transport, where: str) -> None:
        self.transport = transport
        self.where = where

    def write(self, command: int, name: str, data: bytes = b"") -> int:
        self.transport.write(name, cdb(command, len(data), write=True), data)
        answer = self.transport.read(
            f"status after {name}", cdb(LAST_STATUS, INT_LEN, write=False), INT_LEN
        )
        return le_int(answer)


DIALECT = JlDv16()
