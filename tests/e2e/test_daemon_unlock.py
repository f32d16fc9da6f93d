"""The daemon opens a jl-dv16 camera at dock: vendor SCSI commands through real SG_IO ioctls,
then the disk it shows is taken in under the identity of the camera's own device record.

`dockagent run` runs inside a umockdev testbed (tests/support/umockdev/sg_bed.py) whose
/dev/sg2 answers SG_IO as the simulated camera (scripts/simulator/jl_dv16.py) does; the `fake`
source brings the dock events: first the locked camera's block device (its sysfs path in the
testbed, no medium), then, once the camera was told to switch, the disk it shows, a real FAT
image mounted with fusefat. The camera's DEVICE.INF names another officer than its SCSI
record: the session must name the record's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.devices.fake import write_event
from scripts.simulator.cameras import CameraSpec, build_image
from tests.conftest import Station
from tests.support.daemon import EventLog, sealed_count, wait_until
from tests.support.evidence import rows
from tests.support.umockdev_run import umockdev_missing
from tests.support.umockdev_sg import BLOCK_KEY, bed_env, in_sg_bed, write_profile
from tests.support.volumes import mount_fat

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

SERIAL = "JL00001"
EVENT = {"vendor_id": "1f3a", "model_id": "5016", "usb_interfaces": ":080650:"}


@pytest.fixture(scope="module", autouse=True)
def _umockdev() -> None:
    missing = umockdev_missing()
    if missing:
        pytest.skip("; ".join(missing))


class BedDaemon(EventLog):
    """`dockagent run` inside the SG_IO testbed; its log (stdout and stderr) in log_path."""

    def __init__(self, station: Station, workdir: Path, recorder: dict[str, Any]) -> None:
        command = [sys.executable, "-m", "agent.cli.main", "run"]
        env = station.env(DOCKAGENT_TEST_STATION_CLOCK="synced")
        argv, self.state = in_sg_bed(command, recorder, workdir, env)
        self.log_path = workdir / "daemon.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - open while the daemon runs
        base = bed_env()
        base.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=self._log, env=base)

    def camera(self) -> dict[str, Any]:
        return dict(json.loads(self.state.read_text("utf-8")))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        code = self.proc.wait(timeout=60)
        self._log.close()
        return code


def _station(
    station: Station, tmp_path: Path, spool: Path, appear_timeout_s: int = 30, **unlock: Any
) -> None:
    name = write_profile(
        tmp_path / "profiles",
        "jl-test",
        {
            "dialect": "jl-dv16",
            "password": "123456",
            "inquiry": "dv16devicev1.00",
            "appear_timeout_s": appear_timeout_s,
            **unlock,
        },
    )
    # scsi_relay = "": SG_IO from the daemon itself (root here); the installed station's
    # relay is tests/e2e/test_installed_station.py's.
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
        f'profiles = ["{name}"]\nprofile_dir = "{tmp_path / "profiles"}"\nscsi_relay = ""\n'
    )


def _dock_locked(spool: Path, serial: str = SERIAL) -> None:
    # As from udev: the locked camera's disk, no medium and no file system.
    write_event(
        spool, "locked", action="inserted", key=BLOCK_KEY, serial=serial, devnode="/dev/sdc",
        **EVENT,
    )  # fmt: skip


def _disk_appears(spool: Path, point: Path, serial: str = SERIAL) -> None:
    write_event(
        spool,
        "opened",
        action="inserted",
        key=BLOCK_KEY + "/sdc1",
        serial=serial,
        fs_type="vfat",
        mountpoint=str(point),
        **EVENT,
    )


def test_a_locked_camera_is_opened_and_taken_in_under_its_device_record(
    station: Station, tmp_path: Path
) -> None:
    spec = CameraSpec(
        serial=SERIAL, officer_id="100234", days=1, files_per_day=3, file_size=32 << 10
    )
    manifest = build_image(spec, tmp_path / "cam.img", "fat32")
    spool, point = tmp_path / "spool", tmp_path / "cam"
    point.mkdir()
    _station(station, tmp_path, spool)
    with mount_fat(tmp_path / "cam.img", point, readonly=True):
        daemon = BedDaemon(station, tmp_path, {"battery": 12})
        try:
            daemon.wait_event("daemon.started")
            _dock_locked(spool)
            unlocked = daemon.wait_event("device.unlocked", timeout=60)
            assert daemon.camera()["mass_storage"] is True
            _disk_appears(spool, point)
            taken = daemon.wait_event("device.taken_in", timeout=60)
            wait_until(
                lambda: sealed_count(station.data_dir, SERIAL) == len(manifest.entries),
                60,
                "sealed",
            )
        finally:
            assert daemon.stop() == 0
    assert unlocked["device_serial"] == SERIAL and unlocked["battery_pct"] == 12
    assert daemon.camera()["clock"] is not None  # set from the synchronised station
    (session,) = rows(station.data_dir, "SELECT * FROM sessions")
    assert session["id"] == taken["session_id"]
    assert session["device_serial"] == SERIAL
    assert session["officer_id"] == "001234"  # the SCSI record's badge, not DEVICE.INF's
    assert session["unit"] == "110101000001"
    assert "jl-dv16 device record: serial JL00001, badge 001234" in session["identity_check"]
    unlock = json.loads(session["unlock"])
    assert unlock["record"]["officer_name"] == "张三"
    assert unlock["record"]["unit_name"] == "东城分局"
    assert unlock["battery_pct"] == 12 and unlock["clock_set"] and unlock["sd_ok"]
    assert "123456" not in session["unlock"]
    (health,) = rows(station.data_dir, "SELECT battery FROM session_health")
    assert json.loads(health["battery"])["charge_pct"] == 12
    log = daemon.log_path.read_text("utf-8", errors="replace")
    assert "123456" not in log
    # The ledger names the officer and unit as the camera's record (GBK) gave them.
    (entry,) = station.json("ledger")["sessions"]
    assert (entry["officer_id"], entry["officer_name"]) == ("001234", "张三")
    assert (entry["unit_id"], entry["unit_name"]) == ("110101000001", "东城分局")


def test_a_camera_whose_record_is_not_its_usb_serial_is_refused_and_nothing_taken(
    station: Station, tmp_path: Path
) -> None:
    spec = CameraSpec(serial=SERIAL, days=1, files_per_day=2, file_size=32 << 10)
    build_image(spec, tmp_path / "cam.img", "fat32")
    spool, point = tmp_path / "spool", tmp_path / "cam"
    point.mkdir()
    _station(station, tmp_path, spool)
    with mount_fat(tmp_path / "cam.img", point, readonly=True):
        daemon = BedDaemon(station, tmp_path, {"serial": "JL99999"})
        try:
            daemon.wait_event("daemon.started")
            _dock_locked(spool)
            refused = daemon.wait_event("device.unlock_refused", timeout=60)
            _disk_appears(spool, point)  # even if a disk shows up, it is not taken
            daemon.wait_event("device.volume_appeared", timeout=30)
        finally:
            assert daemon.stop() == 0
    assert "device record names serial JL99999, the USB serial is JL00001" in refused["reason"]
    camera = daemon.camera()
    assert camera["mass_storage"] is False and camera["clock"] is None
    (refusal,) = rows(station.data_dir, "SELECT * FROM refusals")
    assert "JL99999" in refusal["reason"]
    assert rows(station.data_dir, "SELECT * FROM sessions") == []
    assert rows(station.data_dir, "SELECT * FROM files") == []


def test_a_camera_whose_disk_never_appears_is_recorded_and_nothing_taken(
    station: Station, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    _station(station, tmp_path, spool, appear_timeout_s=2)
    daemon = BedDaemon(station, tmp_path, {})
    try:
        daemon.wait_event("daemon.started")
        _dock_locked(spool)
        daemon.wait_event("device.unlocked", timeout=60)
        refused = daemon.wait_event("device.unlock_refused", timeout=30)
    finally:
        assert daemon.stop() == 0
    assert "opened, but no disk appeared within 2 s" in refused["reason"]
    assert daemon.camera()["mass_storage"] is True
    (refusal,) = rows(station.data_dir, "SELECT * FROM refusals")
    assert "no disk appeared" in refusal["reason"]
    assert rows(station.data_dir, "SELECT * FROM sessions") == []


def test_a_camera_not_ready_yet_is_unlocked_again_while_docked(
    station: Station, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    _station(station, tmp_path, spool, appear_timeout_s=1, retry_backoff_s=0.2)
    # NOT READY to the first two inits (the camera still starting up), then as usual.
    daemon = BedDaemon(station, tmp_path, {"fault": "not_ready", "fault_on": 1, "fault_times": 2})
    try:
        daemon.wait_event("daemon.started")
        _dock_locked(spool)
        unlocked = daemon.wait_event("device.unlocked", timeout=60)
    finally:
        assert daemon.stop() == 0
    retried = [e for e in daemon.events() if e.get("event") == "device.unlock_retried"]
    assert [(e["attempt"], e["delay_s"]) for e in retried] == [(1, 0.2), (2, 0.4)]
    assert "NOT READY" in retried[0]["reason"]
    assert unlocked["device_serial"] == SERIAL
    camera = daemon.camera()
    assert camera["commands"].count(1) == 3 and camera["mass_storage"] is True


@pytest.mark.parametrize(
    ("recorder", "reason", "tries"),
    [
        # Never ready: retryable, three attempts (the profile's default), then the refusal row.
        (
            {"fault": "not_ready", "fault_on": 1},
            "unlock failed (retryable, gave up after 3 attempts): SCSI command init",
            3,
        ),
        # A command the camera refuses: permanent, tried once.
        (
            {"fault": "illegal", "fault_on": 3},
            "unlock failed (permanent, not retried): SCSI command read device record",
            1,
        ),
    ],
)
def test_a_failed_unlock_is_retried_only_when_retryable_and_the_row_says_which(
    station: Station, tmp_path: Path, recorder: dict[str, Any], reason: str, tries: int
) -> None:
    spool = tmp_path / "spool"
    _station(station, tmp_path, spool, retry_backoff_s=0.1)
    daemon = BedDaemon(station, tmp_path, recorder)
    try:
        daemon.wait_event("daemon.started")
        _dock_locked(spool)
        refused = daemon.wait_event("device.unlock_refused", timeout=60)
    finally:
        assert daemon.stop() == 0
    assert reason in refused["reason"]
    (refusal,) = rows(station.data_dir, "SELECT * FROM refusals")
    assert reason in refusal["reason"]
    camera = daemon.camera()
    assert camera["commands"].count(recorder["fault_on"]) == tries
    assert camera["mass_storage"] is False
    assert rows(station.data_dir, "SELECT * FROM sessions") == []
