"""Health through the real CLI process: drift and TIME.TXT by station state, garbled logs.

The station's clock state is injected with $DOCKAGENT_TEST_STATION_CLOCK (the process reads
the kernel otherwise). The dock time of `import` is when its session opens, so the measured
drift here also holds the process start-up (about a second) on top of the camera's offset.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime
from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows

CONFIG = (
    'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
    "[devices]\nrequire_enrollment = false\n"
)


def _camera(
    tmp_path: Path, serial: str, offset: float, **extra: object
) -> tuple[Path, dict[bytes, str]]:
    spec = CameraSpec(
        serial=serial,
        days=1,
        files_per_day=3,
        file_size=4096,
        other_files=0,
        clock_offset_s=offset,
        **extra,  # type: ignore[arg-type]
    )
    cam = tmp_path / serial
    manifest = write_camera(spec, cam)
    return cam, {e.rel_path: e.sha256 for e in manifest.entries}


def _usb_connect(cam: Path) -> datetime:
    line = (cam / "LOG" / "SYSTEM.LOG").read_text().splitlines()[-1]
    assert line.endswith("USB_CONNECT")
    return datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")


def test_import_sets_a_drifting_camera_only_from_a_synchronised_station(
    station: Station, tmp_path: Path
) -> None:
    station.configure(CONFIG)
    made = time.monotonic()
    synced, _ = _camera(tmp_path, "SYNC90", -90.0)
    unsynced, _ = _camera(tmp_path, "UNSYNC90", -90.0)
    a = station.run("import", str(synced), DOCKAGENT_TEST_STATION_CLOCK="synced")
    b = station.run("import", str(unsynced), DOCKAGENT_TEST_STATION_CLOCK="unsynced")
    # The seconds between writing the cameras' logs and their docks: on top of the 90 s drift.
    lag = time.monotonic() - made
    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr
    assert (synced / "TIME.TXT").exists()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n", (synced / "TIME.TXT").read_text())
    assert not (unsynced / "TIME.TXT").exists()
    assert '"event": "clock.correction_written"' in a.stderr
    assert '"event": "clock.drift_measured"' in b.stderr

    data = station.json("ledger")
    by_camera = {s["device_serial"]: s for s in data["sessions"]}
    for serial, cam in (("SYNC90", synced), ("UNSYNC90", unsynced)):
        session = by_camera[serial]
        # independently: USB_CONNECT (camera clock, local zone) minus the session's dock time
        docked = datetime.fromisoformat(session["docked_at"])
        expected = round((_usb_connect(cam).astimezone() - docked).total_seconds())
        assert session["clock_drift_s"] == expected
        assert -90 - lag - 2 <= session["clock_drift_s"] <= -90 + 2
        assert "camera clock minus drift" in session["time_basis"]
    assert by_camera["SYNC90"]["clock_correction"].startswith("written")
    assert by_camera["UNSYNC90"]["clock_correction"].startswith("not written")
    assert "not synchronised" in by_camera["UNSYNC90"]["station_clock"]
    assert by_camera["UNSYNC90"]["readiness"] == "warning"

    status = station.json("status")
    assert status["station_clock"]["source"] == "adjtimex"  # status reads the real kernel
    readiness = {c["device_serial"]: c for c in status["readiness"]}
    # a one-day simulated shift ends at 3 % charge: both warn about charge; only the camera the
    # station could not set warns about its clock
    assert readiness["UNSYNC90"]["readiness"] == "warning"
    assert any(r.startswith("clock: clock off by") for r in readiness["UNSYNC90"]["reasons"])
    assert not any(r.startswith("clock") for r in readiness["SYNC90"]["reasons"])
    assert any("charge 3 %" in r for r in readiness["SYNC90"]["reasons"])


def test_garbled_logs_never_abort_an_offload(station: Station, tmp_path: Path) -> None:
    station.configure(CONFIG)
    cam, expected = _camera(
        tmp_path, "GARBLE1", 0.0, battery="garbled", docked_at=datetime.now().replace(microsecond=0)
    )
    log = cam / "LOG" / "SYSTEM.LOG"
    good = log.read_bytes()
    junk = b"\x00\xff\xfe\x9c\x80 not a line\n" + b"#" * 5000 + b"\n2024-99-99 25:61:61 BOOT\n"
    log.write_bytes(junk + good[: len(good) // 2] + b"\xff\xfe truncated by a flat batt")
    expected[b"LOG/SYSTEM.LOG"] = hashlib.sha256(log.read_bytes()).hexdigest()
    proc = station.run("import", str(cam), "--json", DOCKAGENT_TEST_STATION_CLOCK="unsynced")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["complete"] is True
    assert_all_sealed(station.data_dir, "GARBLE1", expected)

    health = rows(station.data_dir, "SELECT * FROM session_health")[0]
    system_log = json.loads(health["system_log"])
    assert system_log["malformed"] >= 4  # junk lines, impossible date, the cut last line
    assert health["clock_drift_s"] is None  # the USB_CONNECT line was cut off
    battery = json.loads(health["battery"])
    lines = (cam / "LOG" / "BATTERY.CSV").read_bytes().split(b"\n")[1:-1]
    valid = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+,\d+,-?\d+,-?[\d.]+,\d+,\d+,\d+$")
    assert battery["truncated"] + battery["garbled"] == sum(1 for x in lines if not valid.match(x))
    assert battery["valid"] == sum(1 for x in lines if valid.match(x))
    assert health["battery_verdict"] == "warning"
    assert health["readiness"] == "warning"

    csv_text = station.run("ledger", "--csv").stdout
    assert "battery log partly unreadable" in csv_text
    assert "drift unknown" in csv_text
