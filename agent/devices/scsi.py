"""SCSI commands to a docked USB storage device through the sg driver: the only module that
issues SG_IO.

A camera that opens only after vendor commands (real-cameras.md, "Transports") is spoken to
with SG_IO on its /dev/sgN (sg(4); the sg3 HOWTO's `struct sg_io_hdr`): one command at a time,
each with its own timeout, its outcome checked in the order the HOWTO gives (the ioctl, then
`info & SG_INFO_OK_MASK`, then host, driver and SCSI status, then the sense data), a short
transfer (`resid`) reported, never taken as the whole answer. Sense data is decoded in both
formats (SPC-4 4.5: fixed 70h/71h, descriptor 72h/73h) into a reason a person can read.

Writes are never repeated: a vendor command that changes the device (set time, switch to mass
storage) may have taken effect before its answer was lost, and the dialect asks the device's
own "last command status" instead. A read is repeated once, only when the device said it was
busy or had just been reset (NOT READY, UNIT ATTENTION, BUSY: SPC-4 says the next command
succeeds), never after a timeout: a device that let one command time out is not waited on for
a second full timeout. This module knows no dialect and no camera; it never logs data.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
from dataclasses import dataclass
from typing import Protocol

from agent.core import log
from agent.core.errors import (
    AgentError,
    ConfigError,
    DeviceCommandFailed,
    DeviceCommandRetryable,
    ErrorKind,
    classify,
    describe,
)

_log = log.get(__name__)

# <scsi/sg.h>
SG_IO = 0x2285
SG_INTERFACE_ID = ord("S")
SG_DXFER_NONE = -1
SG_DXFER_TO_DEV = -2
SG_DXFER_FROM_DEV = -3
SG_INFO_OK_MASK = 0x1
SG_INFO_OK = 0x0
SENSE_MAX = 64  # SPC-4 allows up to 252; the decoder only needs the first 18 or 8+descriptors

# SAM-5 status codes (the "status" byte of sg_io_hdr).
STATUS_GOOD = 0x00
STATUS_CHECK_CONDITION = 0x02
STATUS_BUSY = 0x08
STATUS_TASK_SET_FULL = 0x28
# Linux host_status (include/scsi/scsi_status.h, DID_*): the transport's own outcome.
DID_OK = 0x00
DID_TIME_OUT = 0x03
_HOST_STATUS = {
    0x01: "no connection (DID_NO_CONNECT)",
    0x02: "bus busy (DID_BUS_BUSY)",
    0x03: "no answer in time (DID_TIME_OUT)",
    0x04: "bad target (DID_BAD_TARGET)",
    0x05: "aborted (DID_ABORT)",
    0x06: "parity error (DID_PARITY)",
    0x07: "internal error (DID_ERROR)",
    0x08: "bus reset (DID_RESET)",
    0x09: "bad interrupt (DID_BAD_INTR)",
    0x0B: "transient error (DID_SOFT_ERROR)",
    0x0D: "requeued (DID_REQUEUE)",
    0x0E: "transport disrupted (DID_TRANSPORT_DISRUPTED)",
    0x0F: "transport failed (DID_TRANSPORT_FAILFAST)",
}
_HOST_RETRYABLE = frozenset({0x02, 0x08, 0x0B, 0x0D, 0x0E})
DRIVER_TIMEOUT = 0x06
DRIVER_SENSE = 0x08

# SPC-4 table 28: sense keys.
SENSE_KEYS = (
    "NO SENSE",
    "RECOVERED ERROR",
    "NOT READY",
    "MEDIUM ERROR",
    "HARDWARE ERROR",
    "ILLEGAL REQUEST",
    "UNIT ATTENTION",
    "DATA PROTECT",
    "BLANK CHECK",
    "VENDOR SPECIFIC",
    "COPY ABORTED",
    "ABORTED COMMAND",
    "RESERVED (0Ch)",
    "VOLUME OVERFLOW",
    "MISCOMPARE",
    "COMPLETED",
)
KEY_RECOVERED_ERROR = 0x1
_KEYS_RETRYABLE = frozenset({0x2, 0x6, 0xB})  # NOT READY, UNIT ATTENTION, ABORTED COMMAND
# The additional sense codes a USB camera is likely to give (SPC-4 annex D), the rest by number.
_ASC = {
    (0x04, 0x00): "logical unit not ready",
    (0x04, 0x01): "logical unit becoming ready",
    (0x1A, 0x00): "parameter list length error",
    (0x20, 0x00): "invalid command operation code",
    (0x24, 0x00): "invalid field in CDB",
    (0x25, 0x00): "logical unit not supported",
    (0x26, 0x00): "invalid field in parameter list",
    (0x28, 0x00): "medium may have changed",
    (0x29, 0x00): "power on, reset, or bus device reset occurred",
    (0x2C, 0x00): "command sequence error",
    (0x3A, 0x00): "medium not present",
    (0x44, 0x00): "internal target failure",
}

_SG_NAME = re.compile(r"sg[0-9]{1,6}")
_MAX_TIMEOUT_MS = 0x7FFF_FFFF


class SgIoHdr(ctypes.Structure):
    """`struct sg_io_hdr` of <scsi/sg.h> (sg(4)); ctypes lays the three user pointers out at the
    native width, so the same code fits 32- and 64-bit kernels' native ABI."""

    _fields_ = (
        ("interface_id", ctypes.c_int),
        ("dxfer_direction", ctypes.c_int),
        ("cmd_len", ctypes.c_ubyte),
        ("mx_sb_len", ctypes.c_ubyte),
        ("iovec_count", ctypes.c_ushort),
        ("dxfer_len", ctypes.c_uint),
        ("dxferp", ctypes.c_void_p),
        ("cmdp", ctypes.c_void_p),
        ("sbp", ctypes.c_void_p),
        ("timeout", ctypes.c_uint),  # milliseconds
        ("flags", ctypes.c_uint),
        ("pack_id", ctypes.c_int),
        ("usr_ptr", ctypes.c_void_p),
        ("status", ctypes.c_ubyte),
        ("masked_status", ctypes.c_ubyte),
        ("msg_status", ctypes.c_ubyte),
        ("sb_len_wr", ctypes.c_ubyte),
        ("host_status", ctypes.c_ushort),
        ("driver_status", ctypes.c_ushort),
        ("resid", ctypes.c_int),
        ("duration", ctypes.c_uint),
        ("info", ctypes.c_uint),
    )


@dataclass(frozen=True)
class Sense:
    """Decoded sense data (SPC-4 4.5)."""

    key: int
    asc: int
    ascq: int
    form: str  # "fixed" | "descriptor"

    def describe(self) -> str:
        code = _ASC.get((self.asc, self.ascq)) or _ASC.get((self.asc, 0x00), "")
        what = f"{code} " if code else ""
        return (
            f"{SENSE_KEYS[self.key]}, {what}(ASC {self.asc:02X}h ASCQ {self.ascq:02X}h, "
            f"{self.form} sense)"
        )

    @property
    def retryable(self) -> bool:
        return self.key in _KEYS_RETRYABLE


def decode_sense(raw: bytes) -> Sense | None:
    """Sense key, ASC and ASCQ of sense data in either format; None when it is too short or of
    no format SPC-4 defines (vendor-specific 7Fh, garbage). Reads at most 14 bytes."""
    if len(raw) < 2:
        return None
    code = raw[0] & 0x7F
    if code in (0x70, 0x71):
        # Fixed format: key in byte 2, ASC/ASCQ in bytes 12/13 (absent when the additional
        # length in byte 7 stops short of them: then they are unknown, reported as 0).
        if len(raw) < 3:
            return None
        asc = raw[12] if len(raw) > 12 else 0
        ascq = raw[13] if len(raw) > 13 else 0
        return Sense(raw[2] & 0x0F, asc, ascq, "fixed")
    if code in (0x72, 0x73):
        if len(raw) < 4:
            return None
        return Sense(raw[1] & 0x0F, raw[2], raw[3], "descriptor")
    return None


@dataclass(frozen=True)
class Outcome:
    """What sg_io_hdr said of one command, as the kernel (or an emulation) filled it in."""

    status: int = STATUS_GOOD
    host_status: int = DID_OK
    driver_status: int = 0
    info: int = SG_INFO_OK
    sense: bytes = b""
    resid: int = 0
    duration_ms: int = 0


def check(command: str, device: str, outcome: Outcome, wanted: int, timeout_s: float) -> int:
    """The number of bytes transferred, when the command succeeded; else the error (retryable
    or permanent) with a reason. `wanted` is the transfer length asked for. Pure."""
    problem, retryable = _problem(outcome, timeout_s)
    if problem:
        error = DeviceCommandRetryable if retryable else DeviceCommandFailed
        raise error(command=command, device=device, problem=problem)
    if not 0 <= outcome.resid <= wanted:
        raise DeviceCommandFailed(
            command=command,
            device=device,
            problem=f"the driver reports a residue of {outcome.resid} for {wanted} bytes",
        )
    return wanted - outcome.resid


def read_answer(
    command: str, device: str, outcome: Outcome, data: bytes, timeout_s: float
) -> bytes:
    """The answer of a read of len(`data`) bytes when the device sent all of them; a short
    transfer (resid > 0) is an error, never a shorter answer. Pure."""
    got = check(command, device, outcome, len(data), timeout_s)
    if got != len(data):
        raise DeviceCommandFailed(
            command=command, device=device, problem=f"short answer: {got} of {len(data)} bytes"
        )
    return data


def _problem(outcome: Outcome, timeout_s: float) -> tuple[str, bool]:
    """("", _) when the command succeeded, else (reason, retryable)."""
    if outcome.host_status == DID_TIME_OUT or outcome.driver_status & 0x0F == DRIVER_TIMEOUT:
        return f"no answer within {timeout_s:g} s", True
    if outcome.host_status != DID_OK:
        what = _HOST_STATUS.get(outcome.host_status, f"host status {outcome.host_status:#x}")
        return f"transport: {what}", outcome.host_status in _HOST_RETRYABLE
    return _status_problem(outcome)


def _status_problem(outcome: Outcome) -> tuple[str, bool]:
    """The SCSI status and sense data's verdict, once the transport delivered the command."""
    if outcome.status in (STATUS_BUSY, STATUS_TASK_SET_FULL):
        return "the device is busy", True
    if outcome.status == STATUS_CHECK_CONDITION or outcome.driver_status & 0x0F == DRIVER_SENSE:
        return _sense_problem(decode_sense(outcome.sense))
    if outcome.status != STATUS_GOOD:
        return f"SCSI status {outcome.status:#04x}", False
    if outcome.info & SG_INFO_OK_MASK != SG_INFO_OK:
        return "the sg driver flags an error it does not name", False
    return "", False


def _sense_problem(sense: Sense | None) -> tuple[str, bool]:
    if sense is None:
        return "CHECK CONDITION without readable sense data", False
    if sense.key == KEY_RECOVERED_ERROR:
        return "", False  # SPC-4: the command completed; the data is good
    return sense.describe(), sense.retryable


class Transport(Protocol):
    """One device's command channel, as the dialects see it: a read returns exactly `length`
    bytes or raises; a write sends `data` (b"" for none)."""

    def read(self, command: str, cdb: bytes, length: int) -> bytes: ...

    def write(self, command: str, cdb: bytes, data: bytes = b"") -> None: ...


class SgDevice:
    """An open /dev/sgN. Every command waits at most `timeout_s` (the kernel enforces it: SG_IO
    blocks until the command completes or its timeout fires, whatever O_NONBLOCK says)."""

    def __init__(self, path: str, timeout_s: float) -> None:
        if not 0 < timeout_s <= _MAX_TIMEOUT_MS / 1000:  # also refuses NaN
            raise ConfigError(where="profile [unlock]", problem=f"command_timeout_s {timeout_s!r}")
        self.path = path
        self.timeout_s = timeout_s
        # sg(4): O_RDWR because vendor commands are not in the kernel's read-only command
        # filter (and need CAP_SYS_RAWIO besides); O_NONBLOCK so that open(2) returns EBUSY
        # rather than waiting while another process holds the device with O_EXCL. The path
        # is /dev/ + a name of the sgN form taken from sysfs (sg_node_of), made by devtmpfs.
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error("open", path, exc) from exc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SgDevice:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def read(self, command: str, cdb: bytes, length: int) -> bytes:
        """`length` bytes read by `cdb`; one repeat when the device was busy or reset."""
        try:
            return self._read_once(command, cdb, length)
        except DeviceCommandRetryable as exc:
            if exc.fields.get("problem", "").startswith("no answer"):
                raise
            _log.info("scsi.read_repeated", command=command, device=self.path, reason=exc.message)
            return self._read_once(command, cdb, length)

    def _read_once(self, command: str, cdb: bytes, length: int) -> bytes:
        buffer = ctypes.create_string_buffer(max(length, 1))
        outcome = self._command(command, cdb, SG_DXFER_FROM_DEV, buffer, length)
        return read_answer(command, self.path, outcome, buffer.raw[:length], self.timeout_s)

    def write(self, command: str, cdb: bytes, data: bytes = b"") -> None:
        """Send `cdb` with `data`: never repeated (see the module's docstring)."""
        buffer = ctypes.create_string_buffer(data, max(len(data), 1))
        direction = SG_DXFER_TO_DEV if data else SG_DXFER_NONE
        outcome = self._command(command, cdb, direction, buffer, len(data))
        check(command, self.path, outcome, len(data), self.timeout_s)

    def _command(
        self, command: str, cdb: bytes, direction: int, buffer: ctypes.Array[ctypes.c_char], n: int
    ) -> Outcome:
        if not 6 <= len(cdb) <= 16:
            raise DeviceCommandFailed(command=command, device=self.path, problem="bad CDB length")
        cdb_buffer = ctypes.create_string_buffer(bytes(cdb), len(cdb))
        sense = ctypes.create_string_buffer(SENSE_MAX)
        hdr = SgIoHdr()
        hdr.interface_id = SG_INTERFACE_ID
        hdr.dxfer_direction = direction
        hdr.cmd_len = len(cdb)
        hdr.mx_sb_len = SENSE_MAX
        hdr.dxfer_len = n
        hdr.dxferp = ctypes.addressof(buffer) if n else None
        hdr.cmdp = ctypes.addressof(cdb_buffer)
        hdr.sbp = ctypes.addressof(sense)
        hdr.timeout = min(max(int(self.timeout_s * 1000), 1), _MAX_TIMEOUT_MS)
        try:
            fcntl.ioctl(self.fd, SG_IO, hdr, True)
        except OSError as exc:
            raise _os_error(command, self.path, exc) from exc
        return Outcome(
            status=hdr.status,
            host_status=hdr.host_status,
            driver_status=hdr.driver_status,
            info=hdr.info,
            sense=sense.raw[: min(hdr.sb_len_wr, SENSE_MAX)],
            resid=hdr.resid,
            duration_ms=hdr.duration,
        )


def _os_error(command: str, device: str, exc: OSError) -> AgentError:
    if exc.errno in (errno.EPERM, errno.EACCES):
        problem = f"{describe(exc)} (vendor commands need CAP_SYS_RAWIO and a read-write open)"
        return DeviceCommandFailed(command=command, device=device, problem=problem)
    error = DeviceCommandRetryable if classify(exc) is ErrorKind.RETRYABLE else DeviceCommandFailed
    return error(command=command, device=device, problem=describe(exc))


# ---- where a docked device's sg node is --------------------------------------------------


@dataclass(frozen=True)
class SgNode:
    """The SCSI generic node of a USB device, and its INQUIRY vendor+product as sysfs shows
    them (the kernel read them at probe time: no command is sent to learn them)."""

    devnode: str  # /dev/sgN
    inquiry: str  # vendor+product, spaces removed, lower-cased (UnlockSpec.inquiry)


def usb_device_of(sys_path: str) -> str:
    """The sysfs directory of the USB device above `sys_path` (a block device's, a SCSI
    device's, or the USB device's own), "" when there is none: the first directory upwards that
    has idVendor and idProduct (sysfs-bus-usb)."""
    path = os.path.realpath(sys_path)
    while path.startswith("/sys/devices/") and path.count("/") > 3:
        if os.path.exists(f"{path}/idVendor") and os.path.exists(f"{path}/idProduct"):
            return path
        path = os.path.dirname(path)
    return ""


def sg_node_of(usb_device: str, sys_root: str = "/sys") -> SgNode | None:
    """The first SCSI generic node (lowest N) below the USB device at sysfs path `usb_device`,
    None when it has none. Works before the camera shows a disk: /sys/class/scsi_generic/sgN
    exists as soon as the SCSI device does, with or without a medium."""
    base = os.path.realpath(usb_device)
    if not base.startswith("/sys/devices/"):
        return None
    try:
        names = os.listdir(f"{sys_root}/class/scsi_generic")
    except OSError:
        return None
    for name in sorted((n for n in names if _SG_NAME.fullmatch(n)), key=lambda n: int(n[2:])):
        real = os.path.realpath(f"{sys_root}/class/scsi_generic/{name}")
        if real.startswith(base + "/"):
            scsi_device = os.path.dirname(os.path.dirname(real))  # .../H:C:T:L/scsi_generic/sgN
            vendor = _attribute(f"{scsi_device}/vendor")
            model = _attribute(f"{scsi_device}/model")
            inquiry = (vendor + model).replace(" ", "").lower()
            return SgNode(f"/dev/{name}", inquiry)
    return None


def _attribute(path: str) -> str:
    """A short sysfs attribute (INQUIRY strings are 8 and 16 bytes) as text, "" if unreadable."""
    try:
        with open(path, "rb") as f:
            raw = f.read(64)
    except OSError:
        return ""
    return raw.decode("ascii", "replace").strip()
