"""`dockagent import PATH` of a jl-dv16 camera's disk asks the camera who it is.

The camera is a real exFAT image on a loop device mounted by exfat-fuse; under umockdev that
block device is the disk of a USB jl-dv16 camera whose /dev/sg2 answers SG_IO as the simulated
camera (tests/support/umockdev/sg_bed.py). Its profile ("ums-unlock", no identity list: the
device record) makes the import read the record with reads only (init, ID code, record): the
session is the record's camera and badge, not DEVICE.INF's, and the camera is left as it was
(no password read, no clock set, no switch). Without a USB device there is no record to read,
and a profile that names no other identity source refuses the import.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, build_image, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.umockdev_sg import bed_env, in_sg_bed, locked_description, write_profile
from tests.support.umockdev_station import umockdev_station_missing
from tests.support.volumes import mount_exfat

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

SERIAL = "JL00001"
INIT, LAST_STATUS, ID_CODE, RECORD = 0x01, 0x0E, 0x02, 0x03


def _configure(station: Station, tmp_path: Path) -> str:
    name = write_profile(tmp_path / "profiles", "jl-test", {"dialect": "jl-dv16"})
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        f'[devices]\nrequire_enrollment = true\nprofiles = ["generic", "{name}"]\n'
        f'profile_dir = "{tmp_path / "profiles"}"\nscsi_relay = ""\n'
    )
    return name


def test_import_of_a_jl_dv16_disk_reads_the_device_record_and_changes_nothing(
    station: Station, tmp_path: Path
) -> None:
    missing = umockdev_station_missing()
    if missing:
        pytest.fail("needs " + "; ".join(missing), pytrace=False)
    name = _configure(station, tmp_path)
    assert station.run("devices", "enroll", SERIAL, "--officer", "001234").returncode == 0
    # DEVICE.INF names another badge: the import must go by the camera's record.
    spec = CameraSpec(serial=SERIAL, officer_id="100234", days=1, files_per_day=2, file_size=8192)
    image = tmp_path / "cam.img"
    manifest = build_image(spec, image, "exfat")
    point = tmp_path / "media" / SERIAL
    point.mkdir(parents=True)
    with mount_exfat(image, point) as camera:
        assert camera.loop_device is not None
        command = [sys.executable, "-m", "agent.cli.main", "import", str(point),
                   "--profile", name, "--json"]  # fmt: skip
        env = station.env()
        argv, state = in_sg_bed(
            command, {}, tmp_path / "bed", env, locked_description(camera.loop_device)
        )
        base = bed_env()
        base.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=base, check=False
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["device_serial"] == SERIAL
    assert summary["files_sealed"] == len(manifest.entries)
    (session,) = rows(station.data_dir, "SELECT * FROM sessions")
    assert session["officer_id"] == "001234"  # the record's badge, not DEVICE.INF's 100234
    assert session["identity_check"] == (
        "jl-dv16 device record read at import (reads only): serial JL00001, badge 001234; "
        "matches USB serial JL00001"
    )
    assert json.loads(session["unlock"])["record"]["unit_name"] == "东城分局"
    after = json.loads(state.read_text("utf-8"))
    assert after["commands"] == [INIT, LAST_STATUS, ID_CODE, RECORD]  # reads only
    assert after["clock"] is None and after["mass_storage"] is False


def test_import_of_a_copy_without_a_usb_device_is_refused_when_the_record_is_all_it_trusts(
    station: Station, tmp_path: Path
) -> None:
    name = _configure(station, tmp_path)
    cam = tmp_path / "cam"
    write_camera(CameraSpec(serial=SERIAL, days=1, files_per_day=1, file_size=4096), cam)
    proc = station.run("import", str(cam), "--profile", name, "--enroll")
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert (
        "profile jl-test identifies cameras by their SCSI device record (only), and the "
        "volume is on no USB device" in proc.stderr
    )
    assert rows(station.data_dir, "SELECT * FROM files") == []
    assert rows(station.data_dir, "SELECT * FROM sessions") == []
    (refusal,) = station.json("devices", "--refused")["refused"]
    assert refusal["source"] == "import" and "SCSI device record" in refusal["reason"]
