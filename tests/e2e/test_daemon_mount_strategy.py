"""`mount_strategy = "mount"`: the daemon mounts an admitted camera itself, read-only with
nosuid,nodev,noexec in a private directory, remounts read-write only to wipe, and unmounts when
the session ends. The camera is an ext4 image on a loop device (the kernel here has no vfat)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera, sealed_count, wait_until
from tests.support.evidence import assert_all_sealed

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]


def test_the_agent_mounts_read_only_wipes_via_remount_and_unmounts(
    station: Station, tmp_path: Path
) -> None:
    cam = tmp_path / "cam"
    manifest = write_camera(
        CameraSpec(serial="MNT0001", days=1, files_per_day=5, file_size=256 << 10), cam
    )
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    image = tmp_path / "cam.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(cam), str(image), "64M"], check=True)
    loop = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    spool, mount_dir = tmp_path / "spool", tmp_path / "mnt"
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "after_seal"\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
        f'mount_strategy = "mount"\nmount_dir = "{mount_dir}"\n'
    )
    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    try:
        daemon.wait_event("daemon.started")
        dock_camera(spool, "MNT0001", fs_type="ext4", devnode=loop)
        mounted = daemon.wait_event("device.mounted")
        options = mounted["options"].split(",")
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(options), options
        assert mounted["mountpoint"] == str(mount_dir / "MNT0001")
        wait_until(lambda: sealed_count(station.data_dir, "MNT0001") == len(expected), 60, "sealed")
        daemon.wait_event("device.taken_in")
        wait_until(
            lambda: not Path(mounted["mountpoint"]).is_mount(), 30, "unmounted at session end"
        )
    finally:
        assert daemon.stop() == 0
    assert_all_sealed(station.data_dir, "MNT0001", expected)
    check = tmp_path / "check"
    check.mkdir()
    subprocess.run(["mount", "-o", "ro", loop, str(check)], check=True)
    try:
        left = sorted(
            p.relative_to(check).as_posix()
            for p in check.rglob("*")
            if p.is_file() and "lost+found" not in p.parts
        )
    finally:
        subprocess.run(["umount", str(check)], check=True)
        subprocess.run(["losetup", "-d", loop], check=False)
    assert left == ["DEVICE.INF", "LOG/BATTERY.CSV", "LOG/SYSTEM.LOG"]
