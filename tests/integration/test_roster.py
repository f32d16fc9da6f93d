"""The unit's ledger at the station: a roster CSV enrolled in one command, handovers, unknown
serials refused, and usage errors exiting 64, all through the real CLI on a real station."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows

ENFORCING = (
    'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
    "[devices]\nrequire_enrollment = true\n"
)
HEADER = "序列号,警号,姓名,单位编号,单位名称\r\n"


def _roster(n: int, *, changed: int | None = None) -> str:
    """n cameras, each issued to its own officer; `changed` gives that one another officer."""
    lines = [HEADER]
    for i in range(n):
        badge = f"9{i:05d}" if i == changed else f"1{i:05d}"
        lines.append(f"CAM{i:03d},{badge},警员{i}号,110101{i % 3},东城分局第{i % 3}派出所\r\n")
    return "".join(lines)


def _serials(station: Station) -> list[str]:
    return [r["serial"] for r in rows(station.data_dir, "SELECT serial FROM devices")]


def _audits(station: Station) -> list[dict[str, object]]:
    found = rows(station.data_dir, "SELECT body FROM records WHERE kind='audit' ORDER BY seq")
    return [json.loads(r["body"]) for r in found]


@pytest.mark.parametrize(
    ("encoding", "said"),
    [("utf-8-sig", "UTF-8 with BOM"), ("utf-8", "UTF-8"), ("gbk", "GBK")],
)
def test_a_roster_of_50_cameras_with_one_changed_officer_gives_exactly_one_handover(
    station: Station, tmp_path: Path, encoding: str, said: str
) -> None:
    station.configure(ENFORCING)
    roster = tmp_path / "roster.csv"
    roster.write_bytes(_roster(50).encode(encoding))
    first = station.run("devices", "enroll", "--csv", str(roster))
    assert first.returncode == 0, first.stderr
    assert f"50 cameras in {roster} (read as {said}): 50 enrolled" in first.stdout
    enrolled = station.json("devices", "enrolled")["enrolled"]
    assert len(enrolled) == 50
    cam7 = next(d for d in enrolled if d["device_serial"] == "CAM007")
    assert (cam7["officer_id"], cam7["officer_name"]) == ("100007", "警员7号")
    assert (cam7["unit_id"], cam7["unit_name"]) == ("1101011", "东城分局第1派出所")
    assert station.json("ledger")["handovers"] == []  # a first issue hands nothing over

    roster.write_bytes(_roster(50, changed=7).encode(encoding))
    again = station.run("devices", "enroll", "--csv", str(roster))
    assert again.returncode == 0, again.stderr
    assert "0 enrolled, 1 updated, 49 unchanged, 1 handovers" in again.stdout
    handed = station.json("ledger")["handovers"]
    assert [(h["device_serial"], h["previous_officer_id"], h["officer_id"]) for h in handed] == [
        ("CAM007", "100007", "900007")
    ]
    assert handed[0]["assigned_by"] and handed[0]["record_seq"]
    assert (handed[0]["previous_officer_name"], handed[0]["officer_name"]) == ("警员7号", "警员7号")
    text = station.run("ledger").stdout
    assert "100007 警员7号" in text and "900007 警员7号" in text
    assigned = [a for a in _audits(station) if a["action"] == "device.assigned"]
    assert len(assigned) == 1
    assert assigned[0]["details"] == {
        "serial": "CAM007",
        "officer_id": "900007",
        "previous_officer": "100007",
        "via": "enrolment",
    }
    assert assigned[0]["operator"] and assigned[0]["at"]
    assert station.run("verify").returncode == 0


def test_one_bad_row_enrols_nothing_and_each_bad_row_is_named(
    station: Station, tmp_path: Path
) -> None:
    text = _roster(5).splitlines(keepends=True)
    text[2] = "CAM/01,100001,张三,110101,东城\r\n"  # line 3: a bad serial
    text[4] = "CAM003,100003,李四\x07,110101,东城\r\n"  # line 5: a bell in the name
    text.append("CAM004,100009,王五,110101,东城\r\n")  # line 7: CAM004 again
    roster = tmp_path / "bad.csv"
    roster.write_bytes("".join(text).encode("utf-8"))
    assert station.run("devices", "enroll", "CAMPRE").returncode == 0
    proc = station.run("devices", "enroll", "--csv", str(roster))
    assert proc.returncode == 65, proc.stderr
    lines = proc.stderr.splitlines()
    assert "3 bad rows; nothing enrolled" in lines[0]
    assert lines[1].strip().startswith("row 3: ") and "is not a camera serial" in lines[1]
    assert lines[2].strip().startswith("row 5: ") and "control character" in lines[2]
    assert "\x07" not in proc.stderr
    assert lines[3].strip() == "row 7: camera CAM004 is listed twice (also row 6)"
    assert _serials(station) == ["CAMPRE"]
    assert [a["action"] for a in _audits(station)] == ["device.enrolled"]


def test_a_file_neither_utf8_nor_gbk_is_refused_and_named(station: Station, tmp_path: Path) -> None:
    assert station.run("devices", "enroll", "CAMPRE").returncode == 0
    roster = tmp_path / "latin.csv"
    roster.write_bytes(b"CAM1,100001,\xff\xfe\xff,1,x\r\n")
    proc = station.run("devices", "enroll", "--csv", str(roster))
    assert proc.returncode == 65
    assert "neither UTF-8 nor GBK" in proc.stderr and "nothing enrolled" in proc.stderr
    assert _serials(station) == ["CAMPRE"]


def test_long_input_is_refused_quickly_without_reading_it_all(
    station: Station, tmp_path: Path
) -> None:
    assert station.run("devices", "enroll", "CAMPRE").returncode == 0
    huge = tmp_path / "huge.csv"
    with open(huge, "wb") as f:  # 64 MiB of one endless line, a sparse file
        f.truncate(64 * 1024 * 1024)
        f.seek(0)
        f.write(b"CAM1,100001,")
    started = time.monotonic()
    proc = station.run("devices", "enroll", "--csv", str(huge))
    assert proc.returncode == 65
    assert "larger than 1048576 bytes" in proc.stderr
    long_line = tmp_path / "long.csv"
    long_line.write_bytes(b"CAM1,100001," + "名".encode() * 5000 + b",1,x\r\n")
    proc = station.run("devices", "enroll", "--csv", str(long_line))
    assert proc.returncode == 65
    assert "line 1 is longer than 1024 characters" in proc.stderr
    assert time.monotonic() - started < 30
    assert _serials(station) == ["CAMPRE"]


def test_enrolling_one_camera_to_another_officer_is_a_handover(station: Station) -> None:
    assert station.run("devices", "enroll", "CAMX", "--officer", "100001").returncode == 0
    assert station.run("devices", "enroll", "CAMX", "--officer", "100001").returncode == 0
    proc = station.run(
        "devices", "enroll", "CAMX", "--officer", "100002", "--name", "赵六", "--unit-id", "1101"
    )
    assert proc.returncode == 0, proc.stderr
    assert "a handover" in proc.stdout
    handed = station.json("ledger")["handovers"]
    assert [(h["previous_officer_id"], h["officer_id"]) for h in handed] == [("100001", "100002")]
    # assign to the officer it is enrolled to: nothing changes
    same = station.run("assign", "CAMX", "100002")
    assert same.returncode == 0 and "nothing changed" in same.stdout
    assert len(station.json("ledger")["handovers"]) == 1


def test_assign_and_show_refuse_a_serial_the_station_does_not_know(station: Station) -> None:
    assert station.run("devices", "enroll", "CAMKNOWN").returncode == 0
    assign = station.run("assign", "CAMNONE", "100001")
    assert assign.returncode == 66, assign.stderr
    assert "CAMNONE is not a camera this station knows" in assign.stderr
    assert rows(station.data_dir, "SELECT * FROM assignments") == []
    show = station.run("devices", "show", "CAMNONE")
    assert show.returncode == 66
    assert "CAMNONE is not a camera this station knows" in show.stderr
    assert "66" in station.run("devices", "show", "--help").stdout
    assert station.run("devices", "show", "CAMKNOWN").returncode == 0
    assert station.run("assign", "CAMKNOWN", "100001").returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("no-such-command",),
        ("devices", "enroll"),
        ("devices", "enroll", "--csv"),
        ("devices", "enroll", "CAM1", "--csv", "x.csv"),
        ("devices", "enroll", "CAM1", "--name", "张三"),
        ("assign", "CAM1"),
        ("ledger", "--csv", "--json"),
        ("report",),
        ("report", "explain", "notanumber", "text"),
        ("report", "explain", "1", "   "),
        ("report", "compliance", "--bogus"),
        ("status", "--bogus"),
    ],
)
def test_usage_errors_exit_64(station: Station, args: tuple[str, ...]) -> None:
    proc = station.run(*args)
    assert proc.returncode == 64, (args, proc.returncode, proc.stderr)
    assert proc.stderr.strip()


def test_the_roster_names_reach_the_ledger_csv_for_excel(station: Station, tmp_path: Path) -> None:
    """A spreadsheet's reading of the export: the BOM says UTF-8 (Excel's utf-8-sig)."""
    roster = tmp_path / "roster.csv"
    roster.write_bytes(_roster(2).encode("gbk"))
    assert station.run("devices", "enroll", "--csv", str(roster)).returncode == 0
    exported = station.run_bytes("ledger", "--faults", "--csv").stdout
    assert exported.startswith(b"\xef\xbb\xbf")
    assert not station.run_bytes("ledger", "--csv", "--no-bom").stdout.startswith(b"\xef")
    header = next(csv.reader(io.StringIO(exported.decode("utf-8-sig"), newline="")))
    assert header[0] == "at"
    show = station.run("devices", "show", "CAM001")
    assert show.returncode == 0, show.stderr
    assert "officer 100001 警员1号, 东城分局第1派出所 (enrolment)" in show.stdout
    listing = station.run("devices", "enrolled").stdout.splitlines()
    assert "警员0号" in listing[1] and "东城分局第0派出所" in listing[1]
    # wide characters take two columns: the next column starts at the same place on each line
    starts = {
        line.index("20") + sum(1 for c in line[: line.index("20")] if ord(c) > 0x2E80)
        for line in listing[1:]
    }
    assert len(starts) == 1


def test_a_rebuilt_store_keeps_names_handovers_and_explanations(
    station: Station, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_bytes(_roster(3).encode("utf-8-sig"))
    assert station.run("devices", "enroll", "--csv", str(roster)).returncode == 0
    cam = tmp_path / "cam"
    write_camera(CameraSpec(serial="CAM001", days=1, files_per_day=2, file_size=4096), cam)
    assert station.run("import", str(cam)).returncode == 0
    roster.write_bytes(_roster(3, changed=1).encode("utf-8-sig"))
    assert station.run("devices", "enroll", "--csv", str(roster)).returncode == 0
    file_id = station.json("report", "compliance")["files"][0]["file_id"]
    assert station.run("report", "explain", str(file_id), "电池故障").returncode == 0
    before = station.json("devices", "enrolled")["enrolled"]
    report = station.json("report", "compliance")
    assert {f["file_id"]: f["explanation"] for f in report["files"]}[file_id] == "电池故障"
    officers = rows(station.data_dir, "SELECT * FROM officers ORDER BY badge")
    assert ("900001", "警员1号") in [(o["badge"], o["name"]) for o in officers]

    (station.data_dir / "dockagent.db").write_bytes(b"")  # the database lost
    rebuilt = station.run("rebuild", "--json")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert station.json("devices", "enrolled")["enrolled"] == before
    handed = station.json("ledger")["handovers"]
    assert [(h["previous_officer_id"], h["officer_id"]) for h in handed] == [("100001", "900001")]
    again = station.json("report", "compliance")
    explained = {f["file_id"]: f["explanation"] for f in again["files"]}
    assert explained[file_id] == "电池故障"
    assert rows(station.data_dir, "SELECT * FROM officers ORDER BY badge") == officers


def test_a_roster_does_not_take_back_a_revoked_camera(station: Station, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_bytes(_roster(3).encode("utf-8"))
    assert station.run("devices", "enroll", "--csv", str(roster)).returncode == 0
    assert station.run("devices", "revoke", "CAM001").returncode == 0
    audits = _audits(station)
    roster.write_bytes(_roster(3, changed=2).encode("utf-8"))
    proc = station.run("devices", "enroll", "--csv", str(roster))
    assert proc.returncode == 65, proc.stderr
    assert f"{roster}: 1 bad rows; nothing enrolled" in proc.stderr
    assert "row 3: camera CAM001 was revoked at" in proc.stderr
    assert _audits(station) == audits  # not even CAM002's handover
    enrolled = station.json("devices", "enrolled")["enrolled"]
    revoked = {d["device_serial"]: d["revoked_at"] for d in enrolled}
    assert revoked["CAM001"] is not None
