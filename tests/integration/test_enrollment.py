"""The allow-list on `dockagent import`: enrolment, refusal, --enroll, revoke; all audited."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows

ENFORCING = 'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n[devices]\nrequire_enrollment = true\n'


def _camera(tmp_path: Path, serial: str) -> Path:
    cam = tmp_path / serial
    write_camera(CameraSpec(serial=serial, days=1, files_per_day=2, file_size=4096), cam)
    return cam


def test_an_unenrolled_camera_is_refused_before_any_evidence_is_read(
    station: Station, tmp_path: Path
) -> None:
    station.configure(ENFORCING)
    cam = _camera(tmp_path, "CAMNEW1")
    proc = station.run("import", str(cam))
    assert proc.returncode == 77, proc.stderr
    assert "serial CAMNEW1 is not enrolled" in proc.stderr
    assert rows(station.data_dir, "SELECT * FROM files") == []
    assert rows(station.data_dir, "SELECT * FROM sessions") == []
    refused = station.json("devices", "--refused")["refused"]
    assert refused[0]["source"] == "import" and "CAMNEW1 is not enrolled" in refused[0]["reason"]


def test_enroll_import_revoke_are_audited_in_the_chain(station: Station, tmp_path: Path) -> None:
    station.configure(ENFORCING)
    cam = _camera(tmp_path, "CAMOK1")
    enroll = station.run("devices", "enroll", "CAMOK1", "--officer", "100234")
    assert enroll.returncode == 0, enroll.stderr
    assert station.run("import", str(cam)).returncode == 0
    assert station.run("devices", "revoke", "CAMOK1").returncode == 0
    assert station.run("import", str(cam)).returncode == 77
    other = _camera(tmp_path, "CAMSPOT")
    assert station.run("import", str(other), "--enroll").returncode == 0
    audits = [
        json.loads(r["body"])
        for r in rows(station.data_dir, "SELECT body FROM records WHERE kind='audit'")
    ]
    assert [(a["action"], a["details"]["serial"]) for a in audits] == [
        ("device.enrolled", "CAMOK1"),
        ("device.revoked", "CAMOK1"),
        ("device.enrolled", "CAMSPOT"),
    ]
    assert all(a["operator"] for a in audits)
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout


def test_a_bad_serial_argument_is_a_usage_error(station: Station) -> None:
    proc = station.run("devices", "enroll", "bad/serial\x1b")
    assert proc.returncode == 64
    assert "\x1b" not in proc.stderr and "is not a camera serial" in proc.stderr
