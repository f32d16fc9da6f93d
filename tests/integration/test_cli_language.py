"""The technician's commands speak the station's language, in its time zone, the zone named.

A real station (the CLI run as processes over one data directory) enrols a roster with Chinese
names and takes a simulated camera in. Under [station] language = "zh_CN" and timezone =
"Asia/Shanghai", status, devices (docked now, enrolled, one camera's history), ledger, report
compliance and doctor print Chinese labels, and every station time shown is the stored UTC time
in Beijing time, named "CST"; under "en" the same data reads in English. Without a configured
language the locale decides. `--since` is read in the station's zone, so a time copied from the
output selects what it shows. A CSV export for Excel starts with the UTF-8 BOM, decodes as
utf-8-sig and round-trips through Python's csv with Chinese headers; JSON stays as it was.
Chinese names keep their table's columns aligned by display width.
"""

# ruff: noqa: RUF001 - the Chinese output is asserted with its own full-width punctuation

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.reporting import compliance, sessions
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera
from tests.support.evidence import rows

ZONE = "Asia/Shanghai"
BEIJING = ZoneInfo(ZONE)
BASE = (
    'station_id = "LANG-STATION"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
)
STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST")
# Words of the Chinese catalogue that no English output has (any CJK ideograph).
CJK = re.compile(r"[\u4e00-\u9fff]")
ROSTER = (
    "serial,badge,name,unit,unit name\r\n"
    "ZH0001,100001,王小明,110101,东城分局\r\n"
    "EN0002,100002,Li Hua,110102,West\r\n"
)


def _speak(station: Station, language: str, extra: str = "") -> None:
    station.configure(BASE + f'[station]\nlanguage = "{language}"\ntimezone = "{ZONE}"\n' + extra)


def _ok(station: Station, *args: str, **env: str) -> str:
    proc = station.run(*args, **env)
    assert proc.returncode == 0, (args, proc.stdout + proc.stderr)
    return proc.stdout


def _beijing(utc_text: str) -> str:
    """A stored station time as the station must show it: Beijing time, named."""
    moment = datetime.fromisoformat(utc_text.replace("Z", "+00:00")).astimezone(BEIJING)
    return f"{moment:%Y-%m-%d %H:%M:%S} CST"


@pytest.fixture
def taken_in(station: Station, tmp_path: Path) -> tuple[Station, str]:
    """The roster enrolled and ZH0001 (王小明's) taken in; its dock time as stored (UTC)."""
    _speak(station, "zh_CN")
    roster = tmp_path / "roster.csv"
    roster.write_bytes(ROSTER.encode("utf-8"))
    _ok(station, "devices", "enroll", "--csv", str(roster))
    cam = tmp_path / "cam"
    write_camera(CameraSpec(serial="ZH0001", officer_id="100001", days=1, files_per_day=3), cam)
    _ok(station, "import", str(cam), DOCKAGENT_TEST_STATION_CLOCK="synced")
    (docked,) = rows(station.data_dir, "SELECT docked_at FROM sessions")
    return station, str(docked["docked_at"])


def test_status_ledger_report_and_a_cameras_history_in_chinese_and_beijing_time(
    taken_in: tuple[Station, str],
) -> None:
    station, docked_at = taken_in
    shown = _beijing(docked_at)
    assert shown[:16] != docked_at.replace("T", " ")[:16]  # Beijing time is not the UTC text

    status = _ok(station, "status")
    assert "本站时钟：" in status and "时间按 Asia/Shanghai 显示" in status
    assert "入位会话（最近 20 个" in status and "入位时间" in status
    assert "已封存=" in status and "完成" in status
    assert shown in status
    assert re.search(r"ZH0001 +\d+ +\d+\.\d [KMG]iB ", status), status  # sizes for people

    ledger = _ok(station, "ledger")
    assert "会话" in ledger and "记录仪" in ledger and "偏差(秒)" in ledger
    assert "100001 王小明" in ledger and shown in ledger
    assert "偏差：检测到入位时记录仪时钟减本站时钟" in ledger

    report = _ok(station, "report", "compliance")
    head = report.splitlines()[0]
    assert head.startswith("合规报告，生成于 ") and STAMP.search(head), head
    assert "警员" in report and "文件数" in report and "100001 王小明" in report

    history = _ok(station, "devices", "show", "ZH0001")
    assert "记录仪 ZH0001：警员 100001 王小明, 东城分局" in history
    assert "入位记录（偏差 = 检测到入位时记录仪时钟减本站时钟）" in history
    assert f"会话 1  {shown}  警员 100001" in history

    enrolled = _ok(station, "devices", "enrolled")
    assert enrolled.splitlines()[0].split()[:4] == ["序列号", "警员", "姓名", "单位"]
    assert STAMP.search(enrolled)

    # The same station configured in English: English words, still Beijing time, named.
    _speak(station, "en")
    status = _ok(station, "status")
    assert "station clock:" in status and "times shown in Asia/Shanghai" in status
    assert "dock sessions (the latest 20" in status and "complete" in status
    assert shown in status and not CJK.search(status)
    ledger = _ok(station, "ledger")
    assert ledger.splitlines()[0].split()[:4] == ["session", "camera", "officer", "docked"]
    assert shown in ledger and "drift: camera clock minus station clock" in ledger
    report = _ok(station, "report", "compliance")
    assert report.startswith("compliance report at ") and STAMP.search(report.splitlines()[0])
    history = _ok(station, "devices", "show", "ZH0001")
    assert "camera ZH0001: officer 100001 王小明" in history
    assert f"session 1  {shown}  officer 100001" in history
    # JSON is for machines: the same keys and values in either language.
    _speak(station, "zh_CN")
    chinese = json.loads(_ok(station, "status", "--json"))
    _speak(station, "en")
    english = json.loads(_ok(station, "status", "--json"))
    assert chinese["sessions"] == english["sessions"]
    assert chinese["sessions"][0]["docked_at"] == docked_at
    assert chinese["sessions"][0]["outcome"] == "complete"


def test_without_a_configured_language_the_locale_decides(taken_in: tuple[Station, str]) -> None:
    station, docked_at = taken_in
    _speak(station, "")
    chinese = _ok(station, "ledger", LC_ALL="zh_CN.UTF-8")
    assert "偏差：检测到入位时记录仪时钟减本站时钟" in chinese
    english = _ok(station, "ledger", LC_ALL="C")
    assert "drift: camera clock minus station clock" in english and "偏差：" not in english
    assert _beijing(docked_at) in chinese and _beijing(docked_at) in english


def test_since_is_read_in_the_station_zone_as_the_times_are_shown(
    taken_in: tuple[Station, str],
) -> None:
    """A time copied from the output selects what the output shows: a minute before the dock
    (Beijing time) lists the session, two minutes after does not. Read as the system's zone
    (UTC here), the same text would be eight hours off and select the wrong way."""
    station, docked_at = taken_in
    local = datetime.fromisoformat(docked_at.replace("Z", "+00:00")).astimezone(BEIJING)
    before = (local - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    after = (local + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")  # past every file too
    listed = json.loads(_ok(station, "ledger", "--since", before, "--json"))["sessions"]
    assert [s["device_serial"] for s in listed] == ["ZH0001"]
    assert json.loads(_ok(station, "ledger", "--since", after, "--json"))["sessions"] == []
    assert json.loads(_ok(station, "status", "--since", after, "--json"))["sessions"] == []
    status = _ok(station, "status", "--since", before)
    assert f"自 {before.replace('T', ' ')}:00 CST 起入位" in status
    assert _beijing(docked_at) in status
    report = json.loads(_ok(station, "report", "compliance", "--since", after, "--json"))
    assert report["files"] == []


def test_doctor_names_checks_verdicts_and_fixes_in_the_stations_language(
    taken_in: tuple[Station, str],
) -> None:
    station, _ = taken_in
    proc = station.run("doctor", DOCKAGENT_TEST_STATION_CLOCK="synced")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("正常   配置 "), lines[0]
    assert lines[-1].startswith("体检：") and f"（退出码 {proc.returncode}）" in lines[-1]
    clock_line = next(line for line in lines if line.split()[1] == "时钟")
    assert re.search(r"；现在 " + STAMP.pattern, clock_line), clock_line
    install = next(line for line in lines if line.split()[1] == "安装")
    assert install.startswith("故障") and "处理：（以 root）运行 scripts/install" in install

    under_c = station.run("doctor", LC_ALL="C", DOCKAGENT_TEST_STATION_CLOCK="synced")
    assert under_c.returncode == proc.returncode
    assert "体检：" in under_c.stdout  # the configuration wins over the locale
    _speak(station, "en")
    english = station.run("doctor", LC_ALL="zh_CN.UTF-8", DOCKAGENT_TEST_STATION_CLOCK="synced")
    lines = english.stdout.splitlines()
    assert english.returncode == proc.returncode
    assert lines[0].startswith("GREEN  config ")
    assert re.search(r"; now " + STAMP.pattern, next(x for x in lines if " clock " in x))
    assert any(
        x.startswith("RED    install") and " -- fix: run scripts/install" in x for x in lines
    )
    assert lines[-1].startswith("doctor: ") and not CJK.search(english.stdout)
    _speak(station, "zh_CN")
    checks = json.loads(station.run("doctor", "--json").stdout)["checks"]
    assert [c["check"] for c in checks][:3] == ["config", "key", "database"]
    assert checks[0]["status"] == "green"


def test_a_csv_with_a_chinese_officer_opens_in_excel_and_reads_back_with_chinese_headers(
    taken_in: tuple[Station, str],
) -> None:
    station, docked_at = taken_in
    exported = station.run_bytes("ledger", "--csv").stdout
    assert exported.startswith(b"\xef\xbb\xbf")  # Excel's cue for UTF-8
    table = list(csv.DictReader(io.StringIO(exported.decode("utf-8-sig"), newline="")))
    assert len(table) == 1
    row = table[0]
    assert list(row)[:4] == ["会话编号", "记录仪", "警号", "警员姓名"]
    assert len(row) == len(sessions.SESSION_COLUMNS)
    assert (row["记录仪"], row["警号"], row["警员姓名"], row["单位名称"]) == (
        "ZH0001",
        "100001",
        "王小明",
        "东城分局",
    )
    assert row["入位时间(UTC)"] == docked_at  # values stay as stored: a spreadsheet's data

    findings = station.run_bytes("report", "compliance", "--csv").stdout
    assert findings.startswith(b"\xef\xbb\xbf")
    header = next(csv.reader(io.StringIO(findings.decode("utf-8-sig"), newline="")))
    assert header[:3] == ["问题类型", "警号", "警员姓名"]
    assert len(header) == len(compliance.FINDING_COLUMNS)

    _speak(station, "en")
    english = station.run_bytes("ledger", "--csv").stdout.decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(english, newline="")))
    assert header == list(sessions.SESSION_COLUMNS)  # scripts read the English keys


def _columns(line: str) -> list[int]:
    """The display column each cell of a table line starts at (two for a wide character,
    UAX #11), cells being separated by two spaces or more."""
    starts, col, prev_space = [], 0, 2
    for ch in line:
        if ch != " " and prev_space >= 2:
            starts.append(col)
        prev_space = prev_space + 1 if ch == " " else 0
        col += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return starts


def test_chinese_names_and_headers_keep_the_columns_aligned(
    taken_in: tuple[Station, str],
) -> None:
    station, _ = taken_in
    lines = _ok(station, "devices", "enrolled").splitlines()
    assert len(lines) == 3
    header, *body = lines
    assert any("王小明" in line for line in body) and any("Li Hua" in line for line in body)
    # The enrolment time starts at the same display column under its header on every line.
    at = [_columns(line)[4] for line in body]
    assert at[0] == at[1] == _columns(header)[4], lines
    assert all(STAMP.match(line[_index_at(line, at[0]) :]) for line in body)


def _index_at(line: str, column: int) -> int:
    """The index of the character at display column `column`."""
    col = 0
    for index, ch in enumerate(line):
        if col == column:
            return index
        col += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    raise AssertionError(f"no column {column} in {line!r}")


def test_cameras_docked_now_in_chinese_with_the_readiness_judged_in_beijing_time(
    station: Station, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    _speak(station, "zh_CN", f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\n'
           "require_enrollment = false\n")  # fmt: skip
    roster = tmp_path / "roster.csv"
    roster.write_bytes(ROSTER.encode("gbk"))
    _ok(station, "devices", "enroll", "--csv", str(roster))
    cam = tmp_path / "cam"
    write_camera(CameraSpec(serial="ZH0001", officer_id="100001", days=1, files_per_day=2), cam)
    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    try:
        daemon.wait_event("service.ready_notified")
        dock_camera(spool, "ZH0001", cam)
        daemon.wait_event("device.taken_in", timeout=60)
        chinese = _ok(station, "devices")
        _speak(station, "en", f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\n'
               "require_enrollment = false\n")  # fmt: skip
        english = _ok(station, "devices")
    finally:
        daemon.stop()
    head, row = chinese.splitlines()[:2]
    assert head.split()[:4] == ["记录仪", "型号配置", "警员", "会话"]
    assert "100001 王小明" in row and "完成；擦除：" in row
    assert STAMP.search(row), row  # the readiness, judged at a Beijing time
    head, row = english.splitlines()[:2]
    assert head.split()[:4] == ["camera", "profile", "officer", "session"]
    assert "complete; wipe: " in row and STAMP.search(row)
