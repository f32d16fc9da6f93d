"""Reading the whole database costs a second per 300 MB, so it is not done before the daemon is
ready nor by every doctor: the daemon reads it after READY (and daily) and records when it
passed; doctor reads a small database itself, shows a large one as last read, and reads it with
--full; damage found after READY stops the daemon with the store's error, naming rebuild.

The station's database is made large with a table of padding (the agent never reads it), and
damaged there only: the cheap checks at every open pass, only a whole read finds it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess
from tests.support.evidence import rows

PADDING_MB = 70  # over doctor's 64 MiB read-it-now limit
SYNCED = {"DOCKAGENT_TEST_STATION_CLOCK": "synced"}


def _station(station: Station, tmp_path: Path) -> None:
    station.configure(f"""station_id = "WHOLE"
[storage]
reserve_bytes = 0
[ingest]
wipe_policy = "never"
[devices]
sources = ["fake"]
fake_spool = "{tmp_path / "spool"}"
require_enrollment = false
drain_deadline_s = 2
""")
    camera = tmp_path / "cam"
    write_camera(CameraSpec(serial="WHL001", days=1, files_per_day=3), camera)
    proc = station.run("import", str(camera))
    assert proc.returncode == 0, proc.stderr


def _pad(db: Path, *, damage: bool = False) -> None:
    """PADDING_MB of padding rows; with damage, the padding table's root page made invalid."""
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE test_padding(x BLOB)")
    for _ in range(PADDING_MB):
        conn.execute("INSERT INTO test_padding VALUES (randomblob(1000000))")
    conn.commit()
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='test_padding'").fetchone()[
        0
    ]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    if damage:
        with open(db, "r+b") as fh:
            fh.seek((root - 1) * page)
            fh.write(b"\x00")  # not a b-tree page type


def _doctor(station: Station, *args: str) -> dict[str, str]:
    proc = station.run("doctor", "--json", *args, **SYNCED)
    checks = {c["check"]: c for c in json.loads(proc.stdout)["checks"]}
    return dict(checks["database"])


def test_the_daemon_reads_the_whole_database_after_ready_and_doctor_shows_it(
    station: Station, tmp_path: Path
) -> None:
    _station(station, tmp_path)
    _pad(station.data_dir / "dockagent.db")
    never = _doctor(station)
    assert never["status"] == "yellow", never
    assert "never read whole yet" in never["detail"] and "MiB" in never["detail"]
    assert "dockagent doctor --full" in never["fix"]

    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    try:
        checked = daemon.wait_event("store.checked", timeout=60)
        names = [e.get("event") for e in daemon.events()]
        assert names.index("daemon.started") < names.index("store.checked")
        assert checked["seconds"] >= 0
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    (at,) = rows(station.data_dir, "SELECT value FROM meta WHERE key='whole_checked_at'")
    assert at["value"].startswith("20")
    read = _doctor(station)
    assert read["status"] == "green", read
    assert "read whole 0 h ago, ok" in read["detail"]
    full = _doctor(station, "--full")
    assert (full["status"], full["detail"].endswith("integrity check ok")) == ("green", True)


def test_damage_found_after_ready_stops_the_daemon_naming_rebuild(
    station: Station, tmp_path: Path
) -> None:
    _station(station, tmp_path)
    _pad(station.data_dir / "dockagent.db", damage=True)
    assert station.run("status").returncode == 0  # the cheap checks at open pass
    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    try:
        code = daemon.proc.wait(timeout=120)
    finally:
        daemon.kill()
    assert code == 65  # EX_DATAERR, as a damaged store at start
    names = [e.get("event") for e in daemon.events()]
    assert "daemon.started" in names and "store.damaged" in names
    log = (tmp_path / "daemon.log").read_text()
    assert "run `dockagent rebuild`" in log
    assert len(log) < 200_000  # the damaged pages' report is cut, not megabytes
    assert not rows(station.data_dir, "SELECT value FROM meta WHERE key='whole_checked_at'")
    # doctor does not read a large database unasked; --full does, and finds the damage.
    assert _doctor(station)["status"] == "yellow"
    full = _doctor(station, "--full")
    assert full["status"] == "red" and "restore dockagent.db from backup" in full["fix"]


def test_a_small_database_is_read_whole_by_every_doctor(station: Station, tmp_path: Path) -> None:
    _station(station, tmp_path)
    found = _doctor(station)
    assert found["status"] == "green" and found["detail"].endswith("integrity check ok")
