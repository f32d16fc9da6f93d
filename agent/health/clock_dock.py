"""The clock of one dock by the profile's clock method: measured, checked, corrected.

agent.health.dock runs the dock's checks; this module is their clock part for every method of
a profile's ClockSpec (agent.camera.methods):

- `file:generic` / `file:novatek-timeset`: the station writes the camera's clock file (TIME.TXT,
  TIMESET.txt) from a synchronised station above the threshold; the next dock checks it took.
- `scsi`: the vendor unlock set the clock over SCSI before the take-in (agent.devices); what it
  did is handed in (UnlockReadings) and checked at the next dock like a file method's.
- `none`: the station can neither read nor set the clock: drift not checkable, no fault.

A camera with a log (SYSTEM.LOG's USB_CONNECT) has its drift measured (agent.health.clock);
one without has it bounded by its recordings (agent.health.clock_files), never guessed.
Nothing here reads evidence or decides a wipe; the one write is the clock file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from agent.camera import volume
from agent.camera.methods import ClockSpec
from agent.health import clock, clock_files
from agent.health.logs import LogEvent
from agent.store import Store

_READBACK_LIMIT_S = 100 * 366 * 86400


class Readings(Protocol):
    """What the dock's checks read of a vendor unlock's result (agent.devices.dialects'
    UnlockRecord has these attributes, as UnlockReadings does)."""

    @property
    def battery_pct(self) -> int | None: ...
    @property
    def clock_set(self) -> bool: ...
    @property
    def clock_detail(self) -> str: ...


@dataclass(frozen=True)
class UnlockReadings:
    """What a camera's vendor unlock read or did before the take-in (e.g. the jl-dv16 dialect),
    handed to the dock's checks. The device's answers are hostile: checked where used."""

    battery_pct: int | None = None  # the charge the device reported, None: not read
    clock_set: bool = False  # the unlock set the camera's clock at this dock
    clock_detail: str = ""  # what it set (camera zone), or why it did not
    drift_s: int | None = None  # a drift read back at once (a dialect with read-back)


def clock_file_present(root_fd: int, rel: str) -> bool:
    """Is the clock file the station wrote still on the camera (its firmware deletes it once
    read)? A link or anything but a regular file there counts as present: not ours to judge."""
    if not rel:
        return False
    try:
        parent, name = volume.open_parent(root_fd, rel.encode())
    except OSError:
        return False
    try:
        os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return False
    finally:
        os.close(parent)
    return True


def last_undock(store: Store, serial: str, session_id: int) -> datetime | None:
    """When the camera last left this station before this session (station time), if ever."""
    last = store.previous_session(serial, session_id)
    if last is None:
        return None
    text = last.undocked_at or last.ended_at or last.docked_at
    return clock.parse_station_time(str(text))


def recording_bounds(
    store: Store,
    session_id: int,
    file_ids: Sequence[int],
    zone: tzinfo | None,
    since: datetime | None,
    docked_at: datetime,
) -> clock_files.Bounds:
    """Drift bounds from the recordings first seen at this session (older ones were on the
    camera before its last undock and bound nothing), by the start their names give."""
    # A generator: drift_bounds keeps the earliest and latest, never a list of every start.
    starts = (
        clock.to_instant(wall, zone)
        for row in store.file_times(file_ids)
        if row.session_id == session_id and (wall := _wall(row.recorded_start)) is not None
    )
    return clock_files.drift_bounds(starts, since, docked_at)


def _wall(recorded_start: str) -> datetime | None:
    """A file's recorded start as camera wall time (None: no start, or not a time)."""
    if not recorded_start:
        return None
    try:
        return datetime.fromisoformat(recorded_start)
    except ValueError:
        return None


def effective_drift(drift_s: int | None, bounds: clock_files.Bounds) -> int | None:
    """The drift to act on: the measured one, else the least the recordings prove."""
    return drift_s if drift_s is not None else bounds.proven()


def check_last_correction(
    spec: ClockSpec,
    *,
    new_events: Sequence[LogEvent],
    has_log: bool,
    file_present: bool,
    drift_s: int | None,
    bounds: clock_files.Bounds,
) -> tuple[str, str]:
    """At the dock after the station corrected the clock: (status, detail) by the method.

    A generic camera's log says TIME_SET when it applied TIME.TXT (camera-layout.md); other
    cameras say nothing, and their clock file's absence and their recordings are the witness.
    """
    if spec.method == "scsi":
        return clock_files.check_scsi_correction(spec, drift_s, bounds)
    if spec.file_format == "generic" and has_log and not file_present:
        return clock.check_correction(new_events, drift_s, spec.max_error_s + 2)
    return clock_files.check_file_correction(spec, file_present, drift_s, bounds)


def readback_drift(readings: Readings | None) -> int | None:
    """A drift the unlock read back at once (a dialect that can read the time), if any."""
    value = getattr(readings, "drift_s", None)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    # A device's answer: a clock off by more than a century is no reading (and would overflow
    # the corrected times).
    return value if abs(value) <= _READBACK_LIMIT_S else None


def scsi_correction(readings: Readings | None) -> tuple[str, str]:
    """(status, detail) of this dock's correction for a clock the unlock sets over SCSI."""
    if readings is None:
        return "not written", "no SCSI unlock at this dock: the clock was not set"
    if readings.clock_set:
        return "written", readings.clock_detail or "set over SCSI at this dock"
    return "not written", readings.clock_detail or "the SCSI unlock did not set the clock"


def write_clock_file(
    root_fd: int, spec: ClockSpec, now: datetime, zone: tzinfo | None
) -> tuple[bytes, str]:
    """Write the method's clock file (raises OSError); returns (text, detail of the write)."""
    text = clock_files.clock_file_text(spec, now, zone)
    clock.write_time_file(root_fd, spec.path.encode(), text)
    return text, (
        f"{spec.path} set to {text.decode(errors='replace').strip()} (camera zone) at "
        f"{now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    )
