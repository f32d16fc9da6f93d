"""`mount_strategy = "mount"`: the daemon mounts an admitted camera itself, read-only with
nosuid,nodev,noexec in a private directory, remounts read-write only to wipe, and unmounts when
the session ends; it mounts FAT and exFAT only, named with -t.

The kernel here has no vfat or exfat driver (and FUSE exFAT cannot be remounted writable), so
the camera is an ext4 image on a loop device standing in for an exFAT one: a stand-in mount(8)
first on PATH records the arguments the daemon gave and runs the real mount(8) with `-t exfat`
replaced by `-t ext4`. A camera whose volume udev calls ext4 is refused before any mount.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera, sealed_count, wait_until
from tests.support.evidence import assert_all_sealed

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

STAND_IN = """#!/bin/sh
printf '%s\\n' "$*" >> {calls}
for arg do
  shift
  [ "$arg" = exfat ] && arg=ext4
  set -- "$@" "$arg"
done
exec {mount} "$@"
"""


def _mount_stand_in(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose mount(8) records its arguments (one line per call, into the returned file)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "mount-calls"
    bin_dir.mkdir()
    real = shutil.which("mount")
    assert real is not None
    (bin_dir / "mount").write_text(STAND_IN.format(calls=calls, mount=real))
    (bin_dir / "mount").chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}", calls


def _configure_mount_strategy(
    station: Station, tmp_path: Path, wipe_policy: str
) -> tuple[Path, Path]:
    """The fake source with the agent's own `mount` strategy; returns (spool, mount_dir)."""
    spool, mount_dir = tmp_path / "spool", tmp_path / "mnt"
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n'
        f'[ingest]\nwipe_policy = "{wipe_policy}"\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
        f'mount_strategy = "mount"\nmount_dir = "{mount_dir}"\n'
    )
    return spool, mount_dir


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
    spool, mount_dir = _configure_mount_strategy(station, tmp_path, "after_seal")
    path, calls = _mount_stand_in(tmp_path)
    daemon = DaemonProcess(station.env(PATH=path), tmp_path / "daemon.log")
    try:
        daemon.wait_event("daemon.started")
        dock_camera(spool, "MNT0001", fs_type="exfat", devnode=loop)
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
    point = mount_dir / "MNT0001"
    assert calls.read_text().splitlines()[0] == f"-t exfat -o ro,nosuid,nodev,noexec {loop} {point}"


def test_a_volume_that_is_not_fat_or_exfat_is_refused_unmounted(
    station: Station, tmp_path: Path
) -> None:
    spool, _ = _configure_mount_strategy(station, tmp_path, "never")
    path, calls = _mount_stand_in(tmp_path)
    daemon = DaemonProcess(station.env(PATH=path), tmp_path / "daemon.log")
    try:
        daemon.wait_event("daemon.started")
        dock_camera(spool, "EXT0001", fs_type="ext4", devnode="/dev/loop-not-a-camera")
        refused = daemon.wait_event("device.refused")
    finally:
        assert daemon.stop() == 0
    assert "file system 'ext4' is not FAT or exFAT" in refused["reason"]
    assert not calls.exists()  # mount(8) never ran
    reasons = [r["reason"] for r in station.json("devices", "--refused")["refused"]]
    assert any("is not FAT or exFAT" in r for r in reasons), reasons
