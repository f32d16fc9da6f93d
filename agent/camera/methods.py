"""How a camera model is reached, named, clocked and charged: the method tables of a profile.

A camera profile (agent.camera.profile) says *where* a model keeps its files; these small,
frozen records say *how* the station talks to it: the transport and, for cameras that open
only after vendor SCSI commands, the unlock (real-cameras.md, "Transports"); where its
identity comes from, in order; how its clock is set and checked; where its charge is read.
They are data only: the SCSI transport (agent.devices), the clock and battery checks
(agent.health) act on them. Nothing here opens a file or a device.
"""

from __future__ import annotations

from dataclasses import dataclass

TRANSPORTS = ("ums", "ums-unlock", "mtp")
# "usb": the USB serial the kernel read from the device descriptor (udev ID_SERIAL_SHORT), for
# cameras that say nothing of themselves on their volume (Novatek CarDV firmware).
IDENTITY_SOURCES = ("scsi", "file", "names", "usb")
# "file:<format>" methods write a file the camera's firmware reads; the formats are named
# here so that a profile cannot name one the station does not know how to write.
CLOCK_FILE_FORMATS = ("generic", "novatek-timeset")
CLOCK_METHODS = ("scsi", "none", *(f"file:{f}" for f in CLOCK_FILE_FORMATS))
BATTERY_SOURCES = ("log:generic-csv", "scsi", "none")
DIALECTS = ("jl-dv16",)
RECORD_SIZES = (89, 94)


@dataclass(frozen=True)
class UnlockSpec:
    """The vendor SCSI unlock of an `ums-unlock` camera, for this insertion only."""

    dialect: str  # one of DIALECTS
    record_size: int = 89  # device record variant: 89 packed or 94 NUL-terminated bytes
    # Compared with what the device reads back (jl-dv16 0x0D). Not a security boundary
    # (the device hands it out in clear); never logged. None: the profile asks for no check.
    password: str | None = None
    # SCSI INQUIRY vendor+product, spaces removed, lower-cased ("" = any): "dv16devicev1.00".
    inquiry: str = ""
    command_timeout_s: float = 5.0  # one SG_IO command
    appear_timeout_s: float = 30.0  # from "switch to mass storage" until the disk is there


@dataclass(frozen=True)
class ClockSpec:
    """How the camera's clock is set and checked (real-cameras.md, "Clocks")."""

    method: str = "file:generic"  # one of CLOCK_METHODS
    path: str = "TIME.TXT"  # for file:<format> methods, below the volume root
    readback: bool = False  # the method can read the camera's time back at once
    # Largest error the method itself makes (Novatek clamps: up to ~60 s): a drift within it
    # after a correction is not a fault. The threshold is when the station sets the clock.
    max_error_s: int = 2
    threshold_s: int = 30

    @property
    def file_format(self) -> str:
        """The file format of a file:<format> method, "" for the others."""
        return self.method.partition(":")[2] if self.method.startswith("file:") else ""


@dataclass(frozen=True)
class BatterySpec:
    """Where the camera's charge and battery history are read."""

    source: str = "log:generic-csv"  # one of BATTERY_SOURCES
    path: str = "LOG/BATTERY.CSV"  # for log:<format> sources, below the volume root
