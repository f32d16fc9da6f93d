"""The ledger and the compliance report a supervisor reads, from real docks and the real CLI.

Docks run in-process at chosen station times (tests/support/docking.py); `assign`, `ledger`,
`report compliance` and `verify` run as processes over the same data directory. Checked:
recordings that ended 30 h before docking are late, per officer, measured on drift-corrected
times; REC_INTERRUPT events and a gap between split segments are listed; the ledger CSV parses
with one row per session and shows the handover; the assignment is an audit record in the chain.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Station
from tests.support.docking import DockingStation, inject_station_clock, make_camera
from tests.support.evidence import rows

TODAY = date.today()
DOCK_A = datetime.combine(TODAY - timedelta(days=3), time(1, 0))  # LATE1 and ONTIME1 dock
DOCK_B = datetime.combine(TODAY + timedelta(days=2), time(1, 0))  # LATE1 again, after handover
SLOW = -8 * 3600.0  # ONTIME1's clock runs 8 h behind: raw times alone would look late
_NAME = re.compile(r"^(.+_)(\d{14})(_(\d{4})\.\w+)$")


def _recordings(cam: Path) -> list[Path]:
    return sorted(p for p in (cam / "RECORD").rglob("*") if _NAME.match(p.name))


def _open_a_gap(cam: Path, seconds: int) -> str:
    """Move the last segment of a split recording `seconds` later; returns its new name."""
    files = _recordings(cam)
    for a, b in itertools.pairwise(files):
        ma, mb = _NAME.match(a.name), _NAME.match(b.name)
        assert ma and mb
        if a.parent != b.parent or int(mb.group(4)) != int(ma.group(4)) + 1:
            continue
        start_b = datetime.strptime(mb.group(2), "%Y%m%d%H%M%S")
        end_a = datetime.fromtimestamp(a.stat().st_mtime)
        if 0 < (start_b - end_a).total_seconds() <= 2:  # a split: the next segment follows
            later = start_b + timedelta(seconds=seconds)
            moved = b.with_name(f"{mb.group(1)}{later:%Y%m%d%H%M%S}{mb.group(3)}")
            mtime = b.stat().st_mtime + seconds
            b.rename(moved)
            os.utime(moved, (mtime, mtime))
            return moved.name
    raise AssertionError("the simulated camera has no split recording")


@pytest.fixture
def docked(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Station, dict[str, Any]]:
    inject_station_clock(monkeypatch, synchronised=False)
    facts: dict[str, Any] = {}
    late_cam, _ = make_camera(
        tmp_path,
        "late-a",
        serial="LATE1",
        officer_id="100001",
        first_day=DOCK_A.date() - timedelta(days=2),
        docked_at=DOCK_A,
        files_per_day=4,
    )
    ontime_cam, _ = make_camera(
        tmp_path,
        "ontime",
        serial="ONTIME1",
        officer_id="100002",
        first_day=DOCK_A.date() - timedelta(days=1),
        docked_at=DOCK_A,
        files_per_day=8,
        clock_offset_s=SLOW,
    )
    facts["gap_file"] = _open_a_gap(ontime_cam, 40)
    facts["late_names"] = {p.name for p in _recordings(late_cam)}
    facts["late_ends"] = {
        p.name: datetime.fromtimestamp(p.stat().st_mtime) for p in _recordings(late_cam)
    }

    dock = DockingStation.open(station.data_dir, station.config_path)
    try:
        for cam in (late_cam, ontime_cam):
            summary = dock.dock(cam, DOCK_A)
            assert summary.complete, summary.problems
        # the camera is handed over to another officer (the CLI, at the real time: between docks)
        proc = station.run("assign", "LATE1", "200001")
        assert proc.returncode == 0, proc.stderr
        assert "LATE1 assigned to 200001" in proc.stdout
        again = station.run("assign", "LATE1", "200001")
        assert "nothing changed" in again.stdout
        second, _ = make_camera(
            tmp_path,
            "late-b",
            serial="LATE1",
            officer_id="100001",  # DEVICE.INF not reprogrammed: a disagreement to flag
            first_day=DOCK_B.date() - timedelta(days=1),
            docked_at=DOCK_B,
            files_per_day=4,
        )
        summary = dock.dock(second, DOCK_B)
        assert summary.complete, summary.problems
        facts["second_names"] = {p.name for p in _recordings(second)}
    finally:
        dock.close()
    return station, facts


def test_late_recordings_interruptions_and_gaps_per_officer(
    docked: tuple[Station, dict[str, Any]],
) -> None:
    station, facts = docked
    report = station.json("report", "compliance")

    late = report["late"]
    assert {Path(x["file"]).name for x in late} == facts["late_names"]
    for item in late:
        assert item["officer_id"] == "100001" and item["device_serial"] == "LATE1"
        assert item["hours_to_ingest"] >= 30
        # independently: true end (camera clock is right) to the dock, 0.4 s detection latency
        end = facts["late_ends"][Path(item["file"]).name].astimezone()
        ingested = datetime.fromisoformat(item["ingested_at"])
        assert item["hours_to_ingest"] == pytest.approx(
            (ingested - end).total_seconds() / 3600, abs=0.01
        )
        assert "camera clock minus drift" in item["time_basis"]
    officers = report["officers"]
    assert officers["100001"]["late"] == len(facts["late_names"])
    assert officers["100002"]["late"] == 0  # its slow clock is corrected before judging
    assert officers["200001"]["late"] == 0
    assert officers["200001"]["files"] == len(facts["second_names"])
    ontime = [f for f in report["files"] if f["device_serial"] == "ONTIME1"]
    assert all(f["clock_drift_s"] == pytest.approx(SLOW, abs=2) for f in ontime)
    raw_late = [
        f
        for f in ontime
        if (
            datetime.fromisoformat(f["ingested_at"])
            - datetime.fromisoformat(f["camera_time"]).astimezone()
        )
        > timedelta(hours=24)
    ]
    assert raw_late, "the slow clock must make raw times look late, or this proves nothing"

    interruptions = report["interruptions"]
    assert sorted(i["officer_id"] for i in interruptions) == ["100001", "100002", "200001"]
    for item in interruptions:
        assert item["reason"] == "battery"
        assert item["file_id"] is not None  # tied to the file that was recording
        assert item["corrected_time"]

    gaps = report["gaps"]
    assert len(gaps) == 1
    assert gaps[0]["officer_id"] == "100002" and gaps[0]["device_serial"] == "ONTIME1"
    assert Path(gaps[0]["file"]).name == facts["gap_file"]
    assert 40 < gaps[0]["gap_s"] <= 43

    text = station.run_bytes("report", "compliance", "--csv").stdout.decode("utf-8-sig")
    found = list(csv.DictReader(io.StringIO(text, newline="")))
    kinds = [r["finding"] for r in found]
    assert kinds.count("late") == len(late)
    assert kinds.count("interruption") == 3 and kinds.count("gap") == 1
    assert {r["officer"] for r in found if r["finding"] == "late"} == {"100001"}
    assert all(r["explanation"] == "" for r in found)  # a column for the supervisor


def test_ledger_csv_has_one_row_per_session_and_the_handover(
    docked: tuple[Station, dict[str, Any]],
) -> None:
    station, _ = docked
    proc = station.run_bytes("ledger", "--csv")
    assert proc.returncode == 0, proc.stderr
    table = list(csv.DictReader(io.StringIO(proc.stdout.decode("utf-8-sig"), newline="")))
    sessions = rows(station.data_dir, "SELECT id FROM sessions ORDER BY docked_at, id")
    assert [int(r["session_id"]) for r in table] == [s["id"] for s in sessions]
    first, ontime, second = table
    assert (first["camera"], first["officer"], first["officer_source"]) == (
        "LATE1",
        "100001",
        "DEVICE.INF",
    )
    assert (ontime["camera"], ontime["officer"]) == ("ONTIME1", "100002")
    assert (second["camera"], second["officer"], second["officer_source"]) == (
        "LATE1",
        "200001",
        "assignment",
    )
    assert second["officer_on_camera"] == "100001"
    assert "DEVICE.INF says 100001" in second["officer_mismatch"]
    assert "100001 -> 200001" in second["handovers_since_last_dock"]
    assert first["handovers_since_last_dock"] == ""
    for row in table:
        assert row["docked_at_utc"] and row["undocked_at_utc"]
        assert float(row["hours_recorded"]) > 0
        assert row["first_recording_corrected"] <= row["last_recording_corrected"]
        assert row["battery_verdict"] and row["readiness"]
        assert "docked/undocked: station clock UTC" in row["time_basis"]
    assert int(ontime["clock_drift_s"]) == pytest.approx(SLOW, abs=2)
    assert ontime["readiness"] == "not ready"  # 8 h off and the station could not set it

    only = list(
        csv.DictReader(
            io.StringIO(station.run("ledger", "--csv", "--officer", "200001", "--no-bom").stdout)
        )
    )
    assert [r["session_id"] for r in only] == [second["session_id"]]

    data = station.json("ledger", "--camera", "LATE1")
    assert len(data["sessions"]) == 2
    assert [(h["officer_id"], h["previous_officer_id"]) for h in data["handovers"]] == [
        ("200001", "100001")
    ]
    audit = [a for a in data["audit"] if a["action"] == "device.assigned"]
    assert len(audit) == 1
    assert audit[0]["details"] == {
        "serial": "LATE1",
        "officer_id": "200001",
        "previous_officer": "100001",
    }
    assert audit[0]["operator"]
    chain = rows(station.data_dir, "SELECT kind, body FROM records WHERE kind='audit'")
    assert any(json.loads(r["body"])["action"] == "device.assigned" for r in chain)
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout


def test_names_units_and_explanations_reach_the_report_and_its_excel_csv(
    docked: tuple[Station, dict[str, Any]], tmp_path: Path
) -> None:
    station, facts = docked
    roster = tmp_path / "roster.csv"
    roster.write_bytes(
        "serial,badge,name,unit,unit name\r\n"
        "LATE1,200001,王小明,110101,东城分局\r\n"
        "ONTIME1,100002,李华,110102,西城分局\r\n".encode("gbk")
    )
    enrolled = station.run("devices", "enroll", "--csv", str(roster))
    assert enrolled.returncode == 0, enrolled.stderr
    assert "(read as GBK)" in enrolled.stdout
    # LATE1 is already 200001's (assigned): no second handover
    assert "0 handovers" in enrolled.stdout

    report = station.json("report", "compliance")
    late = report["late"][0]
    assert late["officer_id"] == "100001" and late["officer_name"] == ""  # not on the roster
    gap = report["gaps"][0]
    assert (gap["officer_name"], gap["unit_id"], gap["unit_name"]) == ("李华", "110102", "西城分局")
    assert report["officers"]["200001"]["officer_name"] == "王小明"

    text = "民警在外执勤 12月3日方回所 已补充说明"
    explain = station.run("report", "explain", str(late["file_id"]), text)
    assert explain.returncode == 0, explain.stderr
    too_long = station.run("report", "explain", str(late["file_id"]), "x" * 2001)
    assert too_long.returncode == 64 and "longer than 2000" in too_long.stderr
    assert station.run("report", "explain", "999999", "why").returncode == 64

    exported = station.run_bytes("report", "compliance", "--csv").stdout
    assert exported.startswith(b"\xef\xbb\xbf")  # Excel reads it as UTF-8, not GBK
    found = list(csv.DictReader(io.StringIO(exported.decode("utf-8-sig"), newline="")))
    explained = [r for r in found if r["file_id"] == str(late["file_id"])]
    assert explained and all(r["explanation"] == text for r in explained)
    assert {r["officer_name"] for r in found if r["finding"] == "gap"} == {"李华"}
    files = list(
        csv.DictReader(
            io.StringIO(
                station.run_bytes("report", "compliance", "--csv", "--files").stdout.decode(
                    "utf-8-sig"
                ),
                newline="",
            )
        )
    )
    assert {r["unit_name"] for r in files if r["camera"] == "ONTIME1"} == {"西城分局"}
    ledger = list(
        csv.DictReader(
            io.StringIO(station.run_bytes("ledger", "--csv").stdout.decode("utf-8-sig"), newline="")
        )
    )
    assert [r["officer_name"] for r in ledger] == ["", "李华", "王小明"]

    audit = [a for a in station.json("ledger")["audit"] if a["action"] == "file.explained"]
    assert [a["details"] for a in audit] == [{"file_id": late["file_id"], "text": text}]
    assert station.run("verify").returncode == 0
    assert facts["late_names"]


def test_ledger_and_report_show_the_last_week_unless_asked_for_more(
    station: Station, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A year of docks is 18,000 sessions: the default reads the last 7 days, not all of it.
    inject_station_clock(monkeypatch, synchronised=False)
    old_at = datetime.combine(TODAY - timedelta(days=20), time(9, 0))
    new_at = datetime.now().replace(microsecond=0) - timedelta(hours=1)
    old_cam, _ = make_camera(
        tmp_path,
        "old",
        serial="OLD1",
        first_day=old_at.date() - timedelta(days=1),
        docked_at=old_at,
    )
    new_cam, _ = make_camera(
        tmp_path,
        "new",
        serial="NEW1",
        first_day=new_at.date() - timedelta(days=1),
        docked_at=new_at,
    )
    dock = DockingStation.open(station.data_dir, station.config_path)
    try:
        for cam, at in ((old_cam, old_at), (new_cam, new_at)):
            assert dock.dock(cam, at).complete
    finally:
        dock.close()

    def serials(*args: str) -> list[str]:
        return [s["device_serial"] for s in station.json("ledger", *args)["sessions"]]

    assert serials() == ["NEW1"]
    assert serials("--all") == ["OLD1", "NEW1"]
    assert serials("--since", (TODAY - timedelta(days=30)).isoformat()) == ["OLD1", "NEW1"]
    # The window's first day is read when the command runs: the module's TODAY is the day the
    # suite started, which a run across midnight has left behind.
    before = date.today()
    text = station.run("ledger", LC_ALL="C").stdout
    footers = {
        f"sessions docked since {(day - timedelta(days=6)).isoformat()} (the last 7 days); "
        "--since DATE or --all for earlier ones"
        for day in (before, date.today())
    }
    assert any(text.rstrip().endswith(footer) for footer in footers), text[-300:]
    assert "since" not in station.run("ledger", "--all", LC_ALL="C").stdout.splitlines()[-1]

    def reported(*args: str) -> set[str]:
        files = station.json("report", "compliance", *args)["files"]
        return {f["device_serial"] for f in files}

    assert reported() == {"NEW1"}
    assert reported("--all") == {"OLD1", "NEW1"}
