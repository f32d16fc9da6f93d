"""A handover to another badge than the one a camera's own device record names is warned of.

The camera is a real jl-dv16 under umockdev (tests/support/umockdev_sg.py): `dockagent import`
reads its SCSI device record (badge 001234), which the session keeps. Assigning it to another
badge warns that its recordings go on naming 001234 until it is reprogrammed; enrolling it to
another badge (a roster) warns that its next dock will be refused, and it is. A camera whose
record names the new badge, or that no unlock ever read, gets no warning.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, build_image
from tests.conftest import Station
from tests.support.umockdev_sg import bed_env, in_sg_bed, locked_description, write_profile
from tests.support.umockdev_station import umockdev_station_missing
from tests.support.volumes import mount_exfat

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

SERIAL = "JL00001"
ON_CAMERA = "001234"  # the badge the simulated camera's device record names


def _import(
    station: Station, tmp_path: Path, profile: str, n: int
) -> subprocess.CompletedProcess[str]:
    """`dockagent import` of the camera's disk on its (simulated) USB device."""
    spec = CameraSpec(serial=SERIAL, officer_id="100234", days=1, files_per_day=1, file_size=4096)
    image = tmp_path / f"cam{n}.img"
    build_image(spec, image, "exfat")
    point = tmp_path / f"media{n}" / SERIAL
    point.mkdir(parents=True)
    with mount_exfat(image, point) as camera:
        assert camera.loop_device is not None
        command = [sys.executable, "-m", "agent.cli.main", "import", str(point),
                   "--profile", profile, "--json"]  # fmt: skip
        env = station.env()
        argv, _state = in_sg_bed(
            command, {}, tmp_path / f"bed{n}", env, locked_description(camera.loop_device)
        )
        base = bed_env()
        base.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=base, check=False
        )


def test_a_handover_against_the_cameras_own_record_warns_what_to_do(
    station: Station, tmp_path: Path
) -> None:
    missing = umockdev_station_missing()
    if missing:
        pytest.fail("needs " + "; ".join(missing), pytrace=False)
    profile = write_profile(tmp_path / "profiles", "jl-test", {"dialect": "jl-dv16"})
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        f'[devices]\nrequire_enrollment = true\nprofiles = ["generic", "{profile}"]\n'
        f'profile_dir = "{tmp_path / "profiles"}"\nscsi_relay = ""\n'
    )
    assert station.run("devices", "enroll", SERIAL, "--officer", ON_CAMERA).returncode == 0
    assert station.run("devices", "enroll", "PLAIN01", "--officer", "005000").returncode == 0
    first = _import(station, tmp_path, profile, 1)
    assert first.returncode == 0, first.stdout + first.stderr

    # An assignment alone: the camera still docks (its enrolment is unchanged), but it goes
    # on naming the badge on it until it is reprogrammed.
    proc = station.run("assign", SERIAL, "002000", "--json")
    assert proc.returncode == 0, proc.stderr
    (warning,) = json.loads(proc.stdout)["warnings"]
    assert warning["device_serial"] == SERIAL and warning["officer_id"] == "002000"
    assert warning["officer_on_camera"] == ON_CAMERA
    assert warning["refused_at_next_dock"] is False
    assert f"camera {SERIAL}: its own device record" in proc.stderr
    assert f"names badge {ON_CAMERA}, not 002000" in proc.stderr
    assert "until it is reprogrammed with badge 002000" in proc.stderr
    # Back to the badge on the camera, and a camera no unlock ever read: no warning.
    back = station.run("assign", SERIAL, ON_CAMERA, "--json")
    assert json.loads(back.stdout)["warnings"] == [] and "dockagent: warning" not in back.stderr
    plain = station.run("assign", "PLAIN01", "006000", "--json")
    assert json.loads(plain.stdout)["warnings"] == [] and "dockagent: warning" not in plain.stderr

    # A roster enrolling it to another badge: its next dock is refused, and the warning says so.
    roster = tmp_path / "roster.csv"
    roster.write_text(f"{SERIAL},003000,Wang Wei,U1,Unit one\nPLAIN01,007000,Li Na,U1,Unit one\n")
    proc = station.run("devices", "enroll", "--csv", str(roster))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("dockagent: warning:")]
    assert len(lines) == 1, proc.stderr
    assert f"camera {SERIAL}" in lines[0] and f"names badge {ON_CAMERA}, not 003000" in lines[0]
    assert "will be refused at its next dock until it is reprogrammed with badge 003000" in lines[0]
    assert f"or enrolled back to {ON_CAMERA}" in lines[0]
    refused = _import(station, tmp_path, profile, 2)
    assert refused.returncode != 0
    assert f"names badge {ON_CAMERA}" in refused.stderr and "enrolled to 003000" in refused.stderr
