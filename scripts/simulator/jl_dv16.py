"""A simulated jl-dv16 camera's SCSI side: the device state machine that answers the vendor
commands of real-cameras.md ("The industry command set").

Test and demo tooling only, standard library only (a umockdev ioctl handler runs it under the
system interpreter). It answers one CDB at a time the way the firmware is described to: a
locked camera until `init`, its device record (packed 89 or NUL-terminated 94 bytes, GBK), its
password in clear, battery, SD status, set time and the switch to mass storage, each write
leaving a "last command status". Faults for tests: no answer (the kernel's timeout), garbage,
short answers, a refused switch, one UNIT ATTENTION (a reset), NOT READY (still starting up),
each on every try or only the first `fault_times`. The daemon pipeline must never
import it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# SAM-5 status, Linux host status, SPC-4 sense keys: what the sg driver would report.
GOOD = 0x00
CHECK_CONDITION = 0x02
DID_TIME_OUT = 0x03
ILLEGAL_REQUEST = 0x5
NOT_READY = 0x2

WRITE = (0xFB, 0x82)
READ = (0xFD, 0x81)
RECORD_WIDTHS = {89: (7, 6, 32, 12, 32), 94: (8, 7, 33, 13, 33)}
FAULTS = ("", "silent", "garbage", "short", "illegal", "refuse", "reset", "not_ready")
UNIT_ATTENTION = 0x6


def fixed_sense(key: int, asc: int, ascq: int) -> bytes:
    """18 bytes of fixed-format sense data (SPC-4 4.5.3), current error."""
    sense = bytearray(18)
    sense[0] = 0x70
    sense[2] = key
    sense[7] = 10  # additional sense length
    sense[12] = asc
    sense[13] = ascq
    return bytes(sense)


@dataclass
class Answer:
    """What the device does with one command: the data it sends (reads; shorter than asked
    is a short transfer), its SCSI status and sense, or the transport's host status."""

    data: bytes = b""
    status: int = GOOD
    sense: bytes = b""
    host_status: int = 0


@dataclass
class Recorder:
    """One jl-dv16 body camera. `fault` happens at command `fault_on` (a command code)."""

    serial: str = "JL00001"
    badge: str = "001234"
    officer_name: str = "张三"
    unit_id: str = "110101000001"
    unit_name: str = "东城分局"
    password: str = "123456"  # noqa: S105 - a public default of these cameras, not a secret
    id_code: bytes = b"JLDV16"
    battery: int = 87
    sd_status: int = 1
    record_size: int = 89
    fault: str = ""
    fault_on: int = 0x03
    fault_times: int = 0  # 0: every time; n: the first n times, then the camera behaves
    # What happened to it, for the tests to look at.
    initialised: bool = False
    mass_storage: bool = False
    clock: tuple[int, int, int, int, int, int] | None = None
    last_status: int = 0
    commands: list[int] = field(default_factory=list)

    def record_bytes(self) -> bytes:
        """The device record as the camera holds it (GBK, each field padded with NULs)."""
        values = (self.serial, self.badge, self.officer_name, self.unit_id, self.unit_name)
        out = b""
        for value, width in zip(values, RECORD_WIDTHS[self.record_size], strict=True):
            raw = value.encode("gbk")[:width]
            out += raw + b"\0" * (width - len(raw))
        return out

    def command(self, cdb: bytes, data_out: bytes, length: int) -> Answer:
        """Answer one CDB (`data_out`: what a write sends; `length`: what a read asks for)."""
        if len(cdb) != 16 or (cdb[0], cdb[1]) not in (WRITE, READ):
            return Answer(status=CHECK_CONDITION, sense=fixed_sense(ILLEGAL_REQUEST, 0x20, 0))
        code = cdb[5]
        self.commands.append(code)
        if self.fault and code == self.fault_on:
            if self.fault_times:
                self.fault_times -= 1
                fault = self.fault
                self.fault = "" if not self.fault_times else fault
                return self._fault(length, fault)
            return self._fault(length)
        if (cdb[0], cdb[1]) == WRITE:
            return self._write(code, data_out)
        return self._read(code, length)

    def _fault(self, length: int, fault: str = "") -> Answer:
        fault = fault or self.fault
        sense_of = {
            # "logical unit is in process of becoming ready" (SPC-4): try again later.
            "not_ready": fixed_sense(NOT_READY, 0x04, 0x01),
            "illegal": fixed_sense(ILLEGAL_REQUEST, 0x24, 0),
        }
        if fault in sense_of:
            return Answer(status=CHECK_CONDITION, sense=sense_of[fault])
        if fault == "reset":
            # Once: "power on, reset, or bus device reset occurred" (SPC-4), then as usual.
            self.fault = ""
            return Answer(status=CHECK_CONDITION, sense=fixed_sense(UNIT_ATTENTION, 0x29, 0))
        if fault == "silent":
            return Answer(host_status=DID_TIME_OUT)
        if fault == "garbage":
            return Answer(data=b"\xff" * length)
        if fault == "short":
            return Answer(data=b"\x01" * (length // 2))
        # "refuse"
        self.last_status = 8  # "mass storage failed" in the SDKs' result codes
        return Answer()

    def _write(self, code: int, data: bytes) -> Answer:
        if code == 0x01:
            self.initialised, self.last_status = True, 0
            return Answer()
        if not self.initialised:
            return Answer(status=CHECK_CONDITION, sense=fixed_sense(ILLEGAL_REQUEST, 0x2C, 0))
        if code == 0x05 and len(data) == 7:
            year, month, day, hour, minute, second = struct.unpack("<HBBBBB", data)
            self.clock = (year, month, day, hour, minute, second)
            self.last_status = 0
            return Answer()
        if code == 0x06:
            ok = self.sd_status != 0
            self.mass_storage = ok
            self.last_status = 0 if ok else 8
            return Answer()
        return Answer(status=CHECK_CONDITION, sense=fixed_sense(ILLEGAL_REQUEST, 0x24, 0))

    def _read(self, code: int, length: int) -> Answer:
        if code == 0x0E:
            return Answer(data=struct.pack("<i", self.last_status)[:length])
        if not self.initialised:
            return Answer(status=CHECK_CONDITION, sense=fixed_sense(ILLEGAL_REQUEST, 0x2C, 0))
        answers = {
            0x02: self.id_code[:6].ljust(6, b"\0"),
            0x03: self.record_bytes(),
            0x08: struct.pack("<i", self.battery),
            0x0C: struct.pack("<i", self.sd_status),
            0x0D: self.password.encode()[:16].ljust(16, b"\0"),
        }
        if code not in answers:
            return Answer(status=CHECK_CONDITION, sense=fixed_sense(ILLEGAL_REQUEST, 0x24, 0))
        return Answer(data=answers[code][:length])
