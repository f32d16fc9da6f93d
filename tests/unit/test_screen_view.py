"""The bay status screen's view of the store: the bays named by their USB port, read over a
read-only connection that leaves the data directory exactly as it was, hostile values shown
escaped and bounded, and its configuration checked.
"""

from __future__ import annotations

import os
import sqlite3
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core import config, i18n
from agent.core.errors import ConfigError
from agent.core.model import Candidate, FileKind, FileState, display_name
from agent.core.wallclock import iso
from agent.screen import times, view
from agent.store import Store, readonly

PORT = "pci-0000:00:14.0-usb-0:{n}:1.0-scsi-0:0:0:0"
NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


def _config(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(path, {"DOCKAGENT_DATA_DIR": str(tmp_path / "data")})


def _context(cfg: config.Config, language: str = "en") -> view.Context:
    return view.Context(
        config=cfg,
        words=i18n.translations(language).gettext,
        zone=times.station_zone(cfg.station.timezone),
        now=NOW,
        disk_free=None,
    )


def _docked(store: Store, serial: str, port: str, officer: str = "100234") -> int:
    return store.open_session(
        {
            "device_serial": serial,
            "officer_id": officer,
            "source": "/media/x",
            "docked_at": iso(NOW),
            "port_path": port,
        }
    )


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


BAYS = '[screen]\nbays = ["1=pci-0000:00:14.0-usb-0:1", "2=pci-0000:00:14.0-usb-0:2"]\n'


def test_the_screen_names_bays_by_port_and_reads_without_writing(tmp_path: Path) -> None:
    cfg = _config(tmp_path, BAYS + '[station]\nlanguage = "zh_CN"\ntimezone = "Asia/Shanghai"\n')
    store = Store.open(cfg.data_path, create=True)
    _docked(store, "CAM0002", PORT.format(n=2))
    _docked(store, "CAM0012", PORT.format(n=12))  # usb-0:12 is not bay 1's usb-0:1
    store.close()
    before = _listing(cfg.data_path)

    reader = Store.open_read_only(cfg.data_path)
    try:
        shown = view.state(reader, _context(cfg, "zh_CN"))
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.conn.execute("UPDATE sessions SET officer_id='x'")
    finally:
        reader.close()

    assert _listing(cfg.data_path) == before  # no -wal, -shm, marker or database change
    tiles = {t["bay"]: t for t in shown["tiles"]}
    assert list(tiles) == ["1", "2", "usb-0:12:1.0"]
    assert tiles["1"]["state"] == "empty" and tiles["1"]["activity"] == "空闲"
    assert tiles["2"]["serial"] == "CAM0002" and tiles["2"]["activity"] == "正在封存"
    assert tiles["2"]["verdict"] == "尚未评估"
    assert tiles["2"]["docked"] == "12:00:00"  # 04:00 UTC is noon in Beijing
    assert shown["zone"] == "北京时间" and shown["clock"] == "12:00:00"
    assert shown["alarms"] == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(officer=st.text(max_size=5000), serial=st.text(min_size=1, max_size=300))
def test_hostile_values_are_shown_escaped_and_bounded(
    tmp_path: Path, officer: str, serial: str
) -> None:
    cfg = _config(tmp_path, "")
    data = cfg.data_path
    store = Store.open(data, create=True) if not (data / "dockagent.db").exists() else None
    store = store or Store.open(data, create=False)
    try:
        store.conn.execute("UPDATE sessions SET undocked_at='x'")
        _docked(store, serial.replace("\x00", ""), "", officer.replace("\x00", ""))
        (tile,) = view.state(store, _context(cfg))["tiles"]
    finally:
        store.close()
    for shown in (tile["officer"], tile["serial"]):
        assert len(shown) <= 10 * 160
        assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in shown), shown
    assert tile["bay"] == "?"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[screen]\nbays = ["1=pci-a", "1=pci-b"]\n', "bays"),
        ('[screen]\nbays = ["no label"]\n', "bays"),
        ('[screen]\nbays = ["1=pci a<script>"]\n', "bays"),
        ('[screen]\nbind = "127.0.0.1; rm"\n', "bind"),
        ("[screen]\nport = 0\n", "port"),
        ('[station]\nlanguage = "fr"\n', "language"),
        ('[station]\ntimezone = "Mars/Olympus_Mons"\n', "timezone"),
    ],
)
def test_a_wrong_screen_or_station_key_is_refused_by_name(
    tmp_path: Path, text: str, key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(tmp_path, text)
    assert key in raised.value.message


def test_the_defaults_serve_loopback_in_the_systems_language_and_zone(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "")
    assert cfg.screen.bind == "127.0.0.1" and cfg.screen.bays == ()
    assert cfg.station.language == "" and cfg.station.timezone == ""
    assert times.station_zone("").key == (
        os.path.realpath("/etc/localtime").partition("/zoneinfo/")[2] or "UTC"
    )


def _file(store: Store, sid: int, n: int, size: int, state: FileState) -> int:
    name = f"RECORD/F{n}.MP4".encode()
    cand = Candidate(name, size, 1, 0, 0, FileKind.VIDEO, "2026-12-07T03:00:00", "", n, False, True)
    fid = store.register(sid, "CAM0001", cand, display_name(name), iso(NOW))[0]
    steps = [
        (FileState.DISCOVERED, FileState.COPYING, {}),
        (FileState.COPYING, FileState.STAGED, {"sha256": "ab" * 32, "staged_path": f"C/{fid}"}),
        (FileState.STAGED, FileState.SEALED, {"record_seq": fid}),
        (FileState.SEALED, FileState.UPLOADING, {}),
    ]
    for before, after, fields in steps:
        if state == before:
            break
        store.transition(fid, before, after, **fields)
    return fid


def test_a_copy_shows_bytes_rate_and_time_left(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "")
    store = Store.open(cfg.data_path, create=True)
    try:
        sid = store.open_session(
            {
                "device_serial": "CAM0001",
                "source": "/media/x",
                # Docked 10 s before NOW: 30 MB held in 10 s is 3 MB/s; 60 MB left is 20 s.
                "docked_at": iso(NOW - timedelta(seconds=10)),
            }
        )
        _file(store, sid, 1, 30_000_000, FileState.STAGED)
        _file(store, sid, 2, 40_000_000, FileState.COPYING)
        _file(store, sid, 3, 20_000_000, FileState.DISCOVERED)
        (tile,) = view.state(store, _context(cfg))["tiles"]
    finally:
        store.close()
    assert tile["state"] == "copying" and tile["activity"] == "Copying"
    assert tile["detail"] == "30.0 MB of 90.0 MB · 3.0 MB/s · 20 s left"
    assert tile["percent"] == 33


def test_alarms_name_a_low_disk_and_an_unreachable_server(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "[storage]\nreserve_bytes = 0\n")
    store = Store.open(cfg.data_path, create=True)
    try:
        sid = _docked(store, "CAM0001", "")
        fid = _file(store, sid, 1, 1000, FileState.UPLOADING)
        store.defer_upload(
            fid, "connection refused by https://user:pw@evidence.example", iso(NOW), iso(NOW)
        )
        ctx = _context(cfg)
        low = view.Context(ctx.config, ctx.words, ctx.zone, ctx.now, (5_000_000, 100_000_000))
        shown = view.state(store, low)["alarms"]
        fine = view.Context(ctx.config, ctx.words, ctx.zone, ctx.now, (50_000_000, 100_000_000))
        healthy_disk = view.state(store, fine)["alarms"]
    finally:
        store.close()
    assert shown[0] == "Station disk low: 5.0 MB free"
    assert shown[1] == "Central server unreachable: 1 files waiting (last try 04:00:00)"
    assert len(healthy_disk) == 1
    assert "evidence.example" not in "".join(shown)  # the server's address is not shown


def test_a_database_no_process_holds_open_is_the_alarm_of_a_stopped_service(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path, "")
    writer = Store.open(cfg.data_path, create=True)
    running = readonly.writer_present(cfg.db_path)
    writer.close()
    assert running and not readonly.writer_present(cfg.db_path)
    ctx = _context(cfg)
    stopped = view.Context(ctx.config, ctx.words, ctx.zone, ctx.now, None, daemon_running=False)
    reader = Store.open_read_only(cfg.data_path)
    try:
        shown = view.alarms(reader, stopped)
    finally:
        reader.close()
    assert shown == ["The station's service is not running: cameras are not taken in"]


def test_a_tile_names_the_officer_the_camera_is_issued_to_from_the_roster(tmp_path: Path) -> None:
    """The officer at the dock sees their name: the roster's name for the badge the health
    record resolved (a handover's officer, not the stale badge in DEVICE.INF); a badge the
    roster does not name is shown as it is."""
    cfg = _config(tmp_path, BAYS)
    store = Store.open(cfg.data_path, create=True)
    handed = _docked(store, "CAM0001", PORT.format(n=1), officer="100234")
    store.open_health(handed, "CAM0001", iso(NOW), iso(NOW))
    store.update_health(handed, iso(NOW), officer="200555", officer_source="assignment")
    _docked(store, "CAM0002", PORT.format(n=2), officer="300777")
    store.save_officer("200555", "张伟", "110101", "第一派出所", "root", iso(NOW))
    store.save_officer("100234", "Old Name", "110101", "x", "root", iso(NOW))
    store.conn.commit()
    store.close()

    reader = Store.open_read_only(cfg.data_path)
    try:
        shown = {t["bay"]: t for t in view.state(reader, _context(cfg))["tiles"]}
    finally:
        reader.close()

    assert shown["1"]["officer"] == "张伟 (200555)"
    assert shown["2"]["officer"] == "300777"
