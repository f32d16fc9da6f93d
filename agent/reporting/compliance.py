"""The 24-hour rule and what else a supervisor must see explained: late files, gaps, interruptions.

A file is late when the station held its copy more than `compliance.late_after_h` hours after
the recording ended, the end measured on the camera clock corrected by the dock's drift (or, with
no drift known, on the camera clock read in `ingest.camera_timezone`, and said so). A file not
yet ingested counts to now. Consecutive segments with a short silence between them, and the
camera's REC_INTERRUPT events, are findings too. Each finding names its officer: the camera's
assignment at the recording time, else the badge on the camera, with the name and unit the
roster gave that badge and the supervisor's written explanation of the file, if any
(agent.reporting.explanations). Queries and arithmetic only.
"""

from __future__ import annotations

import itertools
import posixpath
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from agent.core import wallclock
from agent.core.config import Config
from agent.health import clock
from agent.reporting.handovers import officer_at
from agent.reporting.sessions import officer_columns
from agent.reporting.times import hours, instant, iso_utc
from agent.store import Recording, Store

FINDING_COLUMNS = (
    "finding",
    "officer",
    "officer_name",
    "unit_id",
    "unit_name",
    "camera",
    "session_id",
    "file_id",
    "file",
    "camera_time",
    "corrected_time",
    "clock_drift_s",
    "time_basis",
    "ingested_at_utc",
    "hours_to_ingest",
    "detail",
    "retention_class",
    "explanation",
)

FILE_COLUMNS = (
    "officer",
    "officer_name",
    "unit_id",
    "unit_name",
    "camera",
    "session_id",
    "file_id",
    "file",
    "kind",
    "important",
    "camera_time",
    "corrected_time",
    "clock_drift_s",
    "time_basis",
    "ingested_at_utc",
    "hours_to_ingest",
    "late",
    "retention_class",
    "state",
    "explanation",
)


def end_instant(row: Recording, config: Config) -> tuple[datetime | None, str]:
    """When a recording ended, and on what basis: corrected, else the camera clock as is."""
    corrected = instant(row.recorded_end_corrected)
    if corrected is not None:
        return corrected, str(row.time_basis)
    try:
        wall = datetime.fromisoformat(row.recorded_end or row.recorded_start)
    except ValueError:
        return None, "no recording time"
    zone = clock.camera_zone(config.ingest.camera_timezone)
    return clock.to_instant(wall, zone), "camera clock, uncorrected: drift unknown"


def _file_item(
    store: Store, config: Config, r: Recording, now: datetime, late_after: timedelta
) -> dict[str, Any]:
    end, basis = end_instant(r, config)
    ingested = instant(r.staged_at)
    start = instant(r.recorded_start_corrected)
    delay = ((ingested or now) - end) if end is not None else None
    return {
        "officer": officer_at(store, r.device_serial, start, r.officer_on_camera),
        "camera": r.device_serial,
        "session_id": r.session_id,
        "file_id": r.id,
        "file": r.camera_name,
        "kind": r.kind,
        "important": bool(r.important),
        "state": r.state,
        "camera_time": r.recorded_end,
        "corrected_time": r.recorded_end_corrected,
        "clock_drift_s": r.clock_drift_s,
        "time_basis": basis,
        "ingested_at_utc": r.staged_at or "",
        "hours_to_ingest": hours(delay.total_seconds()) if delay is not None else None,
        "late": bool(delay is not None and delay > late_after),
        "retention_class": r.retention_class,
        "detail": "" if ingested else "not ingested yet (hours counted to now)",
    }


def _file_findings(
    store: Store, config: Config, rows: Sequence[Recording], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every file with its hours to ingest, and the late ones as findings."""
    late_after = timedelta(hours=config.compliance.late_after_h)
    files = [_file_item(store, config, r, now, late_after) for r in rows]
    late = [
        {
            **item,
            "finding": "late",
            "detail": (
                f"ingested {item['hours_to_ingest']} h after the recording ended "
                f"(limit {config.compliance.late_after_h} h)"
                + (f"; {item['detail']}" if item["detail"] else "")
            ),
        }
        for item in files
        if item["late"]
    ]
    return files, late


def _gap_seconds(a: Recording, b: Recording) -> float | None:
    """Seconds between segment a's end and segment b's start, if b follows a directly."""
    if a.segment is None or b.segment is None or b.segment != a.segment + 1:
        return None
    try:
        return (
            datetime.fromisoformat(b.recorded_start) - datetime.fromisoformat(a.recorded_end)
        ).total_seconds()
    except ValueError:
        return None


def _gap_finding(store: Store, a: Recording, b: Recording, gap: float) -> dict[str, Any]:
    serial = b.device_serial
    start = instant(b.recorded_start_corrected)
    return {
        "finding": "gap",
        "officer": officer_at(store, serial, start, b.officer_on_camera),
        "camera": serial,
        "session_id": b.session_id,
        "file_id": b.id,
        "file": b.camera_name,
        "camera_time": b.recorded_start,
        "corrected_time": b.recorded_start_corrected,
        "clock_drift_s": b.clock_drift_s,
        "time_basis": b.time_basis,
        "gap_s": int(gap),
        "previous_file": a.camera_name,
        "detail": (
            f"{int(gap)} s without recording between segment {a.segment} "
            f"({posixpath.basename(a.camera_name)}, ended {a.recorded_end} "
            f"camera clock) and segment {b.segment}"
        ),
        "retention_class": b.retention_class,
    }


def _gaps(store: Store, config: Config, rows: Sequence[Recording]) -> list[dict[str, Any]]:
    """Consecutive segments (NNNN, NNNN+1, same directory and kind) with a gap between them."""
    groups: dict[tuple[str, str, str], list[Recording]] = {}
    for r in rows:
        if r.segment is None or not r.recorded_end:
            continue
        key = (r.device_serial, posixpath.dirname(r.camera_name), r.kind)
        groups.setdefault(key, []).append(r)
    found: list[dict[str, Any]] = []
    limits = config.compliance
    for _key, items in sorted(groups.items()):
        items.sort(key=lambda x: x.segment or 0)  # each has one: those without are skipped
        for a, b in itertools.pairwise(items):
            gap = _gap_seconds(a, b)
            if gap is not None and limits.segment_gap_s < gap <= limits.segment_window_s:
                found.append(_gap_finding(store, a, b, gap))
    return found


def _interruptions(
    store: Store, rows: Sequence[Recording], since: str | None
) -> list[dict[str, Any]]:
    """The cameras' REC_INTERRUPT events, each with the file it names when the station has it."""
    by_name: dict[tuple[str, str], Recording] = {}
    for r in rows:
        by_name[(r.device_serial, posixpath.basename(r.camera_name))] = r
    out = []
    for e in store.camera_events(["REC_INTERRUPT"], docked_since=since):
        name = str(e.fields.get("file", ""))
        row = by_name.get((e.device_serial, name))
        corrected = instant(e.corrected_time)
        out.append(
            {
                "finding": "interruption",
                "officer": officer_at(store, e.device_serial, corrected, e.officer_on_camera),
                "camera": e.device_serial,
                "session_id": e.session_id,
                "file_id": row.id if row else None,
                "file": row.camera_name if row else name,
                "camera_time": e.camera_time,
                "corrected_time": e.corrected_time,
                "clock_drift_s": row.clock_drift_s if row else None,
                "time_basis": (
                    "camera clock minus the dock's drift"
                    if e.corrected_time
                    else "camera clock, uncorrected: drift unknown"
                ),
                "reason": str(e.fields.get("reason", "")),
                "detail": f"REC_INTERRUPT reason={e.fields.get('reason', '?')}",
                "retention_class": row.retention_class if row else "",
            }
        )
    return out


def _officer_totals(
    files: list[dict[str, Any]],
    interruptions: list[dict[str, Any]],
    gaps: list[dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Per officer ("-" for none): files, late ones, the longest wait, interruptions, gaps."""
    officers: dict[str, dict[str, Any]] = {}

    def entry(officer: str) -> dict[str, Any]:
        return officers.setdefault(
            officer or "-",
            {"files": 0, "late": 0, "max_hours_to_ingest": 0.0, "interruptions": 0, "gaps": 0},
        )

    for item in files:
        totals = entry(item["officer"])
        totals["files"] += 1
        totals["late"] += int(item["late"])
        if item["hours_to_ingest"] is not None:
            totals["max_hours_to_ingest"] = max(
                totals["max_hours_to_ingest"], item["hours_to_ingest"]
            )
    for kind, items in (("interruptions", interruptions), ("gaps", gaps)):
        for item in items:
            entry(item["officer"])[kind] += 1
    return dict(sorted(officers.items()))


def compliance(
    store: Store, config: Config, *, since: str | None = None, now: str | None = None
) -> dict[str, Any]:
    """Late files, interruptions and segment gaps, per officer; every file with its class."""
    at = instant(now) or wallclock.now()
    rows = store.recordings(ingested_since=since)
    files, late = _file_findings(store, config, rows, at)
    gaps = _gaps(store, config, rows)
    interruptions = _interruptions(store, rows, since)
    officers, explained = store.officers(), store.explanations()
    for item in itertools.chain(files, late, gaps, interruptions):
        item.update(officer_columns(officers, str(item["officer"])))
        why = explained.get(item["file_id"]) if item["file_id"] is not None else None
        item["explanation"] = why.text if why else ""
    totals = _officer_totals(files, interruptions, gaps)
    for badge, entry in totals.items():
        entry.update(officer_columns(officers, badge))
    return {
        "generated_at_utc": iso_utc(at),
        "since": since,
        "late_after_h": config.compliance.late_after_h,
        "officers": totals,
        "late": late,
        "interruptions": interruptions,
        "gaps": gaps,
        "files": files,
    }


def findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything a supervisor must see explained, one row each, by officer."""
    rows = [*report["late"], *report["interruptions"], *report["gaps"]]
    return sorted(rows, key=lambda r: (str(r["officer"]), r["camera"], str(r["camera_time"])))
