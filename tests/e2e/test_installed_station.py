"""The shipped configuration end to end, on the production device path.

`dockagent run` with `sources = ["udev"]`, the external mount strategy, enrolment required,
wipe_policy after_confirm and a directory sink, seeing cameras as udev announces them (under
umockdev: add and remove uevents), mounted by the shipped mount helper where it puts them
(<mount root>/<USB serial>) as real FUSE exFAT mounts of loop devices, found by device number
(tests/support/umockdev_station.py says what stands in for what, and why).

First as shipped, read-only: dock, sealed, confirmed, not wiped with the reason recorded once,
left docked 60 s without being taken in again, undocked. Then as a site that wipes configures
the mount (DOCKAGENT_MOUNT_ACCESS=rw): dock, sealed, confirmed, wiped while still docked,
undocked. The ledger shows exactly one session per dock, each with its dock and undock times.

A jl-dv16 camera, which shows its disk only after vendor SCSI commands, as installed: the
daemon (no capability) sends them through the SCSI relay's socket, whose relay runs the unit's
command line (dockagent-scsi@.service) with the connection as its standard input and output;
the relay checks in sysfs that the node is an allowed camera's and passes the dialect's
commands to its /dev/sg2 (emulated SG_IO); the disk the camera then shows is matched by the
udev rule generated from the station's profiles and mounted read-only by the shipped mount
helper, and the evidence is taken in under the camera's SCSI device record.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from agent.camera import profile
from agent.devices import rules
from scripts.simulator.cameras import CameraSpec, Manifest, build_image
from tests.conftest import Station
from tests.support.daemon import sealed_count, wait_until
from tests.support.evidence import rows
from tests.support.umockdev_sg import RELAY_SOCKET_NAME, locked_description, write_profile
from tests.support.umockdev_station import (
    UmockdevStation,
    description,
    loop_device,
    run_mount_helper,
    umockdev_station,
    umockdev_station_missing,
)

pytestmark = [pytest.mark.fuse, pytest.mark.slow, pytest.mark.usefixtures("fuse")]

LEFT_DOCKED_S = 60
READ_ONLY, WIPES = "STN0001", "STN0002"


def _config(tmp_path: Path) -> str:
    # The shipped [devices] and [ingest] defaults, spelt out; the sink off the data directory.
    return (
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n'
        f'[sync]\nkind = "directory"\ndirectory_root = "{tmp_path / "archive"}"\n'
        '[ingest]\nwipe_policy = "after_confirm"\n'
        '[devices]\nsources = ["udev"]\nmount_strategy = "external"\nrequire_enrollment = true\n'
    )


def _sessions(station: Station, serial: str) -> list[dict[str, Any]]:
    sql = "SELECT * FROM sessions WHERE device_serial=? ORDER BY id"
    return rows(station.data_dir, sql, (serial,))


def _all_confirmed(station: Station, serial: str, count: int) -> bool:
    sql = "SELECT state FROM files WHERE device_serial=?"
    states = [r["state"] for r in rows(station.data_dir, sql, (serial,))]
    return len(states) == count and set(states) == {"confirmed"}


def _camera(tmp_path: Path, serial: str) -> tuple[Path, Manifest]:
    spec = CameraSpec(serial=serial, days=1, files_per_day=3, file_size=64 << 10)
    image = tmp_path / f"{serial}.img"
    return image, build_image(spec, image, "exfat")


class Dock:
    """One camera on the station's USB: plugged (udev add, then the mount unit), unplugged
    (udev remove, then the unit's stop, which unmounts)."""

    def __init__(self, udev: UmockdevStation, work: Path, media: Path, serial: str) -> None:
        self.udev, self.work, self.media, self.serial = udev, work / serial, media, serial
        self.text = self.loop = self.access = ""

    def plug(self, loop: str, access: str) -> None:
        self.loop, self.access = loop, access
        self.text = description(self.serial, loop)
        self.udev.plug(self.serial, self.text)
        helper = self._helper("start")
        assert helper.returncode == 0, helper.stderr
        assert f"at {self.point} ({access}," in helper.stderr

    @property
    def point(self) -> Path:
        return self.media / self.serial

    def unplug(self) -> None:
        self.udev.unplug(self.serial)
        helper = self._helper("stop")
        assert helper.returncode == 0, helper.stderr
        assert not self.point.is_mount()

    def _helper(self, action: str) -> Any:
        return run_mount_helper(action, self.work, self.text, self.loop, self.media, self.access)


def _read_only_dock(station: Station, udev: UmockdevStation, dock: Dock, entries: int) -> None:
    taken = udev.wait_event("device.taken_in", timeout=90)
    (session,) = _sessions(station, READ_ONLY)
    assert session["id"] == taken["session_id"]
    assert session["source"] == str(dock.point)  # where the helper mounted it, by device number
    assert session["usb_serial"] == READ_ONLY
    assert taken["port"] == "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0"  # udev's ID_PATH
    wait_until(lambda: _all_confirmed(station, READ_ONLY, entries), 60, "confirmed")
    blocked = udev.wait_event("device.wipe_impossible", timeout=30)
    assert blocked["session_id"] == session["id"]
    time.sleep(LEFT_DOCKED_S)
    (session,) = _sessions(station, READ_ONLY)
    assert session["undocked_at"] is None  # still docked, still the one session
    dock.unplug()
    wait_until(lambda: _sessions(station, READ_ONLY)[0]["undocked_at"] is not None, 15, "undock")


def _wiped(station: Station, serial: str) -> int:
    sql = "SELECT wiped_at FROM files WHERE device_serial=?"
    return sum(1 for r in rows(station.data_dir, sql, (serial,)) if r["wiped_at"])


def _wiping_dock(station: Station, udev: UmockdevStation, dock: Dock, recordings: int) -> None:
    wait_until(lambda: len(_sessions(station, WIPES)) == 1, 90, "the second camera's session")
    rechecked = udev.wait_event("device.rechecked", timeout=90)
    (session,) = _sessions(station, WIPES)
    assert rechecked["session_id"] == session["id"]
    wait_until(lambda: _wiped(station, WIPES) == recordings, 60, "wiped")
    wait_until(lambda: _sessions(station, WIPES)[0]["wipe_state"] == "wiped", 30, "recorded")
    (session,) = _sessions(station, WIPES)
    assert session["undocked_at"] is None  # wiped while still docked
    on_camera = [p.relative_to(dock.point).as_posix() for p in dock.point.rglob("*")]
    assert not [p for p in on_camera if p.startswith("RECORD/") and "." in p], on_camera
    dock.unplug()
    wait_until(lambda: _sessions(station, WIPES)[0]["undocked_at"] is not None, 15, "undock")


def test_the_shipped_station_read_only_then_wiping(station: Station, tmp_path: Path) -> None:
    missing = umockdev_station_missing()
    if missing:
        pytest.fail("needs " + "; ".join(missing), pytrace=False)
    station.configure(_config(tmp_path))
    for serial in (READ_ONLY, WIPES):
        assert station.run("devices", "enroll", serial).returncode == 0
    media = tmp_path / "media"
    ro_image, ro_manifest = _camera(tmp_path, READ_ONLY)
    rw_image, rw_manifest = _camera(tmp_path, WIPES)
    recordings = sum(1 for e in rw_manifest.entries if e.rel_path.startswith(b"RECORD/"))
    with umockdev_station(station.env(), tmp_path / "udev") as udev:
        udev.wait_event("daemon.started", timeout=60)
        first = Dock(udev, tmp_path / "docks", media, READ_ONLY)
        with loop_device(ro_image, readonly=True) as loop:
            first.plug(loop, "ro")
            _read_only_dock(station, udev, first, len(ro_manifest.entries))
        second = Dock(udev, tmp_path / "docks", media, WIPES)
        with loop_device(rw_image, readonly=False) as loop:
            second.plug(loop, "rw")
            _wiping_dock(station, udev, second, recordings)
        assert udev.stop() == 0
        events = udev.events()
    names = [e.get("event") for e in events]
    assert names.count("device.wipe_impossible") == 1
    assert "file.wipe_refused" not in names
    assert names.count("session.opened") == 2  # one per dock

    (ro,) = _sessions(station, READ_ONLY)
    assert ro["outcome"] == "complete" and ro["wipe_state"] == "not wiped"
    assert "mounted read-only" in ro["wipe_detail"]
    (rw,) = _sessions(station, WIPES)
    assert rw["outcome"] == "complete" and rw["wipe_state"] == "wiped"
    assert rw["files_sealed"] == len(rw_manifest.entries)
    assert rw["source"] == str(media / WIPES)

    ledger = station.json("ledger")
    by_camera: dict[str, list[dict[str, Any]]] = {}
    for entry in ledger["sessions"]:
        by_camera.setdefault(entry["device_serial"], []).append(entry)
    assert sorted(by_camera) == [READ_ONLY, WIPES]
    for serial, entries in by_camera.items():
        assert len(entries) == 1, (serial, entries)
        assert entries[0]["docked_at"] and entries[0]["undocked_at"]
    assert by_camera[READ_ONLY][0]["wipe"].startswith("not wiped the camera is mounted read-only")
    assert by_camera[WIPES][0]["wipe"].startswith("wiped")
    assert station.run("verify").returncode == 0


# ---- a camera opened by vendor SCSI commands, through the relay ------------------------------

JL = "JL00001"
OPENED = {"ID_FS_TYPE": "exfat", "ID_FS_USAGE": "filesystem"}


def _disk_properties(text: str) -> dict[str, str]:
    """sdc's udev properties once the camera shows its medium (what `udevadm info` prints)."""
    block = text.partition("/block/sdc\n")[2].split("\n\n", 1)[0]
    props = dict(line[3:].split("=", 1) for line in block.splitlines() if line.startswith("E: "))
    return {**props, **OPENED, "DEVNAME": "/dev/sdc"}


def _rule_matches(rule: str, props: dict[str, str]) -> bool:
    """Whether the ENV{KEY}=="PATTERN" tests of a generated rule (udev(7) glob patterns, `|`
    alternatives) all hold for these properties; the rule's other tests (ACTION, SUBSYSTEM)
    are the kernel's and hold for an added or changed block device."""
    tests = re.findall(r'ENV\{(\w+)\}=="([^"]*)"', rule)
    return bool(tests) and all(
        any(fnmatch.fnmatchcase(props.get(key, ""), alt) for alt in pattern.split("|"))
        for key, pattern in tests
    )


def test_the_shipped_station_opens_a_jl_dv16_camera_through_the_scsi_relay(
    station: Station, tmp_path: Path
) -> None:
    missing = umockdev_station_missing()
    if missing:
        pytest.fail("needs " + "; ".join(missing), pytrace=False)
    profiles = tmp_path / "profiles"
    name = write_profile(
        profiles,
        "jl-test",
        {"dialect": "jl-dv16", "password": "123456", "inquiry": "dv16devicev1.00"},
    )
    socket_path = tmp_path / RELAY_SOCKET_NAME
    station.configure(
        _config(tmp_path).replace("[devices]\n", f'[devices]\nscsi_relay = "{socket_path}"\n')
        + f'profiles = ["generic", "{name}"]\nprofile_dir = "{profiles}"\n'
    )
    assert station.run("devices", "enroll", JL, "--officer", "001234").returncode == 0
    image, manifest = _camera(tmp_path, JL)
    media, state = tmp_path / "media", tmp_path / "camera-state.json"
    relay = (socket_path, station.config_path)
    with (
        loop_device(image, readonly=True) as loop,
        umockdev_station(
            station.env(DOCKAGENT_TEST_STATION_CLOCK="synced"), tmp_path / "udev", relay
        ) as udev,
    ):
        udev.wait_event("daemon.started", timeout=60)
        text = locked_description(loop)
        udev.plug_locked(JL, text, {"battery": 64}, state)
        unlocked = udev.wait_event("device.unlocked", timeout=60)
        assert json.loads(state.read_text("utf-8"))["mass_storage"] is True
        # The opened camera's disk: the rule generated for the station's profiles wants its
        # mount unit, which runs the shipped helper with the disk's kernel name.
        udev.medium(JL, "sdc", OPENED)
        props = _disk_properties(text)
        generated = rules.generate(profile.load_all(("generic", name), str(profiles)))
        wanted = [r for r in generated.splitlines() if r and not r.startswith("#")]
        assert [_rule_matches(r, props) for r in wanted] == [False, True]
        udev_text = "".join(f"{k}={v}\n" for k, v in props.items())
        helper = run_mount_helper(
            "start", tmp_path / "dock", text, loop, media, "ro", "sdc", udev_text
        )
        assert helper.returncode == 0, helper.stderr
        taken = udev.wait_event("device.taken_in", timeout=90)
        wait_until(
            lambda: sealed_count(station.data_dir, JL) == len(manifest.entries), 60, "sealed"
        )
        assert udev.stop() == 0
        run_mount_helper("stop", tmp_path / "dock", text, loop, media, "ro", "sdc", udev_text)
    assert unlocked["device_serial"] == JL and unlocked["battery_pct"] == 64
    relayed = [e for e in udev.events() if e.get("event") == "relay.opened"]
    assert relayed and relayed[0]["sg"] == "/dev/sg2"  # the relay, not the daemon, sent them
    (session,) = _sessions(station, JL)
    assert session["id"] == taken["session_id"]
    assert session["source"] == str(media / JL)  # the helper's read-only mount, by device number
    assert session["officer_id"] == "001234"  # the SCSI record's badge, agreeing with enrolment
    assert "jl-dv16 device record: serial JL00001, badge 001234" in session["identity_check"]
    assert json.loads(state.read_text("utf-8"))["clock"] is not None
