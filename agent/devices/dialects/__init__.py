"""Vendor command dialects: how a camera that opens only after vendor SCSI commands is opened.

A dialect is one module with one object that has a `name` and an `unlock()`: given the device's
command channel (agent.devices.scsi.Transport), the profile's UnlockSpec, the clock plan and a
check of the identity, it reads who the camera is, refuses or opens it, and returns what it did
as an UnlockRecord. Another dialect is one more module and one more line in DIALECTS. Dialects
decide nothing about enrolment (the caller's `accept` does) and never log a password or a name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from agent.camera.methods import UnlockSpec
from agent.core.errors import ConfigError
from agent.core.model import DeviceInfo
from agent.devices.scsi import Transport


@dataclass(frozen=True)
class DeviceRecord:
    """Who the camera says it is (its vendor device record), checked and decoded."""

    serial: str
    officer_id: str  # badge number
    officer_name: str
    unit_id: str
    unit_name: str


@dataclass(frozen=True)
class ClockPlan:
    """The camera wall time to set (already in the camera's zone, no zone sent), or why not."""

    wall: datetime | None
    reason: str = ""


@dataclass(frozen=True)
class UnlockRecord:
    """What an unlock did: the identity read, the charge, the card, the clock. Data for the
    session's row; never holds the password."""

    dialect: str
    record: DeviceRecord
    id_code: str  # hex of the manufacturer + model code
    battery_pct: int | None
    battery_detail: str
    sd_ok: bool
    clock_set: bool
    clock_detail: str
    password_checked: bool
    opened: bool  # the switch to mass storage was accepted

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def device_info(self) -> DeviceInfo:
        """The camera's identity for the import, taken from the device record."""
        r = self.record
        return DeviceInfo(
            serial=r.serial,
            officer_id=r.officer_id,
            unit=r.unit_id,
            officer_name=r.officer_name,
            unit_name=r.unit_name,
            battery_pct=self.battery_pct,
        )

    def summary(self) -> str:
        """One line for the session's identity check (no names: serial and badge only)."""
        battery = f"{self.battery_pct}%" if self.battery_pct is not None else self.battery_detail
        clock = "clock set" if self.clock_set else f"clock not set ({self.clock_detail})"
        return (
            f"{self.dialect} device record: serial {self.record.serial}, badge "
            f"{self.record.officer_id or '(none)'}; battery {battery}; SD card ok; {clock}"
        )


class Dialect(Protocol):
    name: str

    def allows(self, command_block: bytes, write: bool, length: int) -> bool:
        """Whether this CDB, moving `length` bytes, is one of the dialect's commands: the only
        ones the SCSI relay sends (agent.devices.scsi_relay)."""
        ...

    def read_identity(
        self, transport: Transport, spec: UnlockSpec, where: str
    ) -> tuple[DeviceRecord, str]:
        """Who the camera is (device record, ID code in hex), by reads only and what a
        session needs before them: no clock, no switch, nothing the camera keeps."""
        ...

    def unlock(
        self,
        transport: Transport,
        spec: UnlockSpec,
        clock: ClockPlan,
        accept: Callable[[DeviceRecord], None],
        where: str,
    ) -> UnlockRecord:
        """Open the camera for this insertion. `accept` raises (UnlockRefused) to refuse the
        identity before anything is written to the device."""
        ...


def get(name: str) -> Dialect:
    """The dialect of that name; ConfigError for one this station does not speak."""
    from agent.devices.dialects import jl_dv16  # noqa: PLC0415 - the registry imports its members

    known: dict[str, Dialect] = {jl_dv16.DIALECT.name: jl_dv16.DIALECT}
    try:
        return known[name]
    except KeyError:
        raise ConfigError(where="unlock", problem=f"no SCSI dialect named {name!r}") from None
