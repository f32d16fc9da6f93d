"""Fleet metrics: the store's numbers as a Prometheus text file (node_exporter's textfile).

Everything is read through store queries (the same ones `status`, `queue` and `devices` use, so
the numbers agree) and written whole with a temp file and rename, so a scrape never sees half a
file. Metrics never stop the evidence pipeline: a failed write is logged and retried at the next
interval. This module writes nothing but the metrics file, and no rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from agent.core import durable, log, wallclock
from agent.core.model import AWAITING_UPLOAD, FileState
from agent.health import clock
from agent.reporting.readiness import readiness_by_camera
from agent.store import Store

_log = log.get(__name__)

# Read by node_exporter, which runs as another user; the numbers are not secret.
FILE_MODE = 0o644
# Readiness reasons are "area: text" (agent.reporting.readiness.readiness_by_camera); these
# areas alarm.
ALARM_AREAS = {"drift": "clock", "battery": "battery"}


def _epoch(iso: str | None) -> float:
    if not iso:
        return 0.0
    value = datetime.fromisoformat(iso)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass
class Snapshot:
    """One reading of the station, at `taken_at` (seconds since the epoch)."""

    taken_at: float
    states: dict[str, int]
    bytes_awaiting_upload: int
    oldest_unconfirmed_at: float  # 0: nothing unconfirmed
    last_confirmed_at: float  # 0: nothing ever confirmed
    cameras_docked: int
    refusals: int
    custody_records: int
    clock_synchronised: bool
    readiness: dict[str, int] = field(default_factory=dict)
    alarms: dict[str, int] = field(default_factory=dict)

    @property
    def oldest_unconfirmed_age_s(self) -> float:
        if not self.oldest_unconfirmed_at:
            return 0.0
        return max(0.0, self.taken_at - self.oldest_unconfirmed_at)

    def status_line(self) -> str:
        age = self.oldest_unconfirmed_age_s if self.oldest_unconfirmed_at else None
        return status_text(self.states, self.cameras_docked, age)


def status_text(states: dict[str, int], docked: int, oldest_age_s: float | None) -> str:
    """The systemd STATUS= text (sd_notify(3)): docked cameras and the queue."""
    queue = ", ".join(
        f"{states.get(s.value, 0)} {s.value}"
        for s in (
            FileState.COPYING,
            FileState.SEALED,
            FileState.UPLOADING,
            FileState.HELD,
            FileState.CONFIRMED,
        )
    )
    text = f"{docked} camera(s) docked; queue: {queue}"
    if oldest_age_s is not None:
        text += f"; oldest unconfirmed {oldest_age_s / 3600:.1f} h"
    return text


def quick_status(store: Store, now: datetime | None = None) -> str:
    """status_text from three cheap queries: often enough for STATUS=, unlike a snapshot."""
    oldest = store.oldest_unconfirmed()
    age = None
    if oldest:
        taken = (now or wallclock.now()).timestamp()
        age = max(0.0, taken - _epoch(oldest.discovered_at))
    return status_text(store.state_counts(), store.docked_count(), age)


def collect(store: Store, now: datetime | None = None) -> Snapshot:
    taken = (now or wallclock.now()).timestamp()
    counts = store.state_counts()
    oldest = store.oldest_unconfirmed()
    readiness: dict[str, int] = {}
    alarms = dict.fromkeys(ALARM_AREAS, 0)
    for camera in readiness_by_camera(store):
        readiness[camera["readiness"]] = readiness.get(camera["readiness"], 0) + 1
        areas = {reason.split(":", 1)[0] for reason in camera["reasons"]}
        for kind, area in ALARM_AREAS.items():
            alarms[kind] += area in areas
    return Snapshot(
        taken_at=taken,
        states={state.value: counts.get(state.value, 0) for state in FileState},
        bytes_awaiting_upload=store.bytes_in_states(AWAITING_UPLOAD),
        oldest_unconfirmed_at=_epoch(oldest.discovered_at) if oldest else 0.0,
        last_confirmed_at=_epoch(store.last_confirmed_at()),
        cameras_docked=store.docked_count(),
        refusals=store.refusal_count(),
        custody_records=(store.chain_head() or (0, ""))[0],
        clock_synchronised=clock.station_clock().read().synchronised,
        readiness=readiness,
        alarms=alarms,
    )


def _label(value: str) -> str:
    # Text exposition format: backslash, double quote and line feed are escaped in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(snap: Snapshot) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    out: list[str] = []

    def metric(
        name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]]
    ) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            shown = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            series = f"{name}{{{shown}}}" if shown else name
            out.append(f"{series} {_number(value)}")

    metric(
        "dockagent_files",
        "gauge",
        "Files per state (dockagent status).",
        [({"state": s}, n) for s, n in snap.states.items()],
    )
    metric(
        "dockagent_bytes_awaiting_upload",
        "gauge",
        "Bytes in staging not yet confirmed by the sink (staged, sealed, uploading, held).",
        [({}, snap.bytes_awaiting_upload)],
    )
    metric(
        "dockagent_oldest_unconfirmed_age_seconds",
        "gauge",
        "Age of the oldest file no sink has confirmed yet, since it was found; 0 if none.",
        [({}, round(snap.oldest_unconfirmed_age_s, 3))],
    )
    metric(
        "dockagent_oldest_unconfirmed_timestamp_seconds",
        "gauge",
        "When the oldest unconfirmed file was found (Unix time); 0 if none.",
        [({}, round(snap.oldest_unconfirmed_at, 3))],
    )
    metric(
        "dockagent_last_confirmed_upload_timestamp_seconds",
        "gauge",
        "When the sink last confirmed a file (Unix time); 0 if never.",
        [({}, round(snap.last_confirmed_at, 3))],
    )
    metric(
        "dockagent_cameras_docked",
        "gauge",
        "Cameras docked now (dockagent devices).",
        [({}, snap.cameras_docked)],
    )
    metric(
        "dockagent_refused_devices_total",
        "counter",
        "Devices refused since the station was set up (dockagent devices --refused).",
        [({}, snap.refusals)],
    )
    metric(
        "dockagent_camera_alarms",
        "gauge",
        "Cameras whose last dock raised a clock drift or battery alarm.",
        [({"kind": kind}, n) for kind, n in sorted(snap.alarms.items())],
    )
    metric(
        "dockagent_cameras_by_readiness",
        "gauge",
        "Cameras by their readiness verdict at their last dock.",
        [({"readiness": r}, n) for r, n in sorted(snap.readiness.items())],
    )
    metric(
        "dockagent_custody_records",
        "gauge",
        "Signed records in the custody chain.",
        [({}, snap.custody_records)],
    )
    metric(
        "dockagent_station_clock_synchronised",
        "gauge",
        "1 if the kernel says the station clock is synchronised (adjtimex(2)).",
        [({}, int(snap.clock_synchronised))],
    )
    metric(
        "dockagent_metrics_timestamp_seconds",
        "gauge",
        "When these metrics were taken (Unix time).",
        [({}, round(snap.taken_at, 3))],
    )
    return "\n".join(out) + "\n"


def write(path: Path, text: str) -> None:
    """Replace the file at path whole (temp file, fsync, rename, fsync of the directory).

    The directory must exist: it belongs to the collector, whose user must be able to read it,
    and one made here under the daemon's umask (0077) would lock the collector out.
    """
    directory = path.parent
    data = text.encode("utf-8")
    with durable.TempFile(directory, path.name, len(data)) as tmp:
        tmp.write_all(data)
        os.fchmod(tmp.fd, FILE_MODE)
        os.fsync(tmp.fd)
        os.close(tmp.fd)
        tmp.fd = -1
        # rename(2) replaces atomically: a scrape reads the old file or the new one, never a mix.
        os.replace(directory / tmp.temp_name, path)
        tmp.published = True
    durable.fsync_dir(directory)


class MetricsWriter:
    """Writes the metrics file; a failure is logged once per distinct error, never raised."""

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self._last_error = ""

    def write(self, snap: Snapshot) -> None:
        if self.path is None:
            return
        try:
            write(self.path, render(snap))
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != self._last_error:
                _log.warning("metrics.write_failed", path=str(self.path), error=error)
                self._last_error = error
            return
        if self._last_error:
            _log.info("metrics.write_recovered", path=str(self.path))
            self._last_error = ""
