"""The daemon as a real process with the `mountwatch` source over FUSE-mounted camera images.

Eight cameras appear under the watched root within seconds of each other; all are taken in;
one pulled out mid-copy does not disturb the others and completes when docked again; a volume
that is not a camera is refused without being read; SIGTERM drains within its deadline and a
restart finishes the job with nothing lost or duplicated.
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, build_image
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, sealed_count, wait_until
from tests.support.evidence import assert_all_sealed, assert_no_temp_files, rows
from tests.support.volumes import mount_fat

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]


def _config(root: Path, deadline: int = 20) -> str:
    return f"""station_id = "E2E"
[storage]
reserve_bytes = 0
[ingest]
wipe_policy = "never"
[devices]
sources = ["mountwatch"]
mount_root = "{root}"
require_enrollment = false
drain_deadline_s = {deadline}
"""


def _images(
    tmp_path: Path, count: int, large: int = 16 << 20
) -> list[tuple[str, Path, dict[bytes, str]]]:
    out = []
    for i in range(count):
        serial = f"CAM{i:04d}"
        image = tmp_path / f"{serial}.img"
        spec = CameraSpec(
            serial=serial,
            days=1,
            files_per_day=8,
            file_size=512 << 10,
            large_files=1,
            large_size=large,
            seed=i + 1,
        )
        manifest = build_image(spec, image, "fat32")
        out.append((serial, image, {e.rel_path: e.sha256 for e in manifest.entries}))
    return out


def test_eight_cameras_one_unplugged_and_redocked(station: Station, tmp_path: Path) -> None:
    root = tmp_path / "media"
    root.mkdir()
    station.configure(_config(root))
    cameras = _images(tmp_path, 8, large=48 << 20)
    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    with contextlib.ExitStack() as stack:
        try:
            daemon.wait_event("daemon.started")
            mounted = {}
            for serial, image, _ in cameras:  # docked one after another, seconds apart at most
                point = root / serial
                point.mkdir()
                mounted[serial] = stack.enter_context(mount_fat(image, point))
            victim = "CAM0003"
            # Pull the victim out while its large file is being copied.
            wait_until(
                lambda: (
                    any(p.stat().st_size > 0 for p in (station.staging / victim).glob(".*.part"))
                    if (station.staging / victim).exists()
                    else False
                ),
                120,
                "the victim's copy",
            )
            mounted[victim].unplug(detach=True)
            others = [c for c in cameras if c[0] != victim]
            for serial, _, expected in others:
                wait_until(
                    lambda s=serial, e=expected: sealed_count(station.data_dir, s) == len(e),
                    300,
                    f"{serial} sealed",
                )
            for serial, _, expected in others:
                assert_all_sealed(station.data_dir, serial, expected, settled=False)
            victim_rows = rows(
                station.data_dir, "SELECT * FROM files WHERE device_serial=?", (victim,)
            )
            assert any(
                r["state"] not in ("sealed", "uploading", "confirmed") for r in victim_rows
            ), "the unplug came too late"
            # Docked again: the same image mounted at the same place.
            _, image, expected = next(c for c in cameras if c[0] == victim)
            wait_until(lambda: not (root / victim).is_mount(), 30, "the dead mount to go")
            stack.enter_context(mount_fat(image, root / victim))
            wait_until(
                lambda: sealed_count(station.data_dir, victim) == len(expected),
                300,
                "victim sealed",
            )
            assert_all_sealed(station.data_dir, victim, expected, settled=False)
        finally:
            code = daemon.stop()
    assert code == 0
    assert_no_temp_files(station.data_dir)
    sessions = rows(station.data_dir, "SELECT * FROM sessions")
    assert {s["device_serial"] for s in sessions} == {c[0] for c in cameras}
    assert station.run("verify").returncode == 0
    events = [e["event"] for e in daemon.events()]
    assert events.count("device.taken_in") >= 9


def test_a_volume_that_is_not_a_camera_is_refused_unread(station: Station, tmp_path: Path) -> None:
    root = tmp_path / "media"
    root.mkdir()
    station.configure(_config(root))
    stick = tmp_path / "stick.img"
    # A USB stick: a FAT volume with holiday photos and no DEVICE.INF.
    import subprocess

    subprocess.run(["mkfs.vfat", "-C", str(stick), "8192"], check=True, capture_output=True)
    (tmp_path / "IMG_0001.JPG").write_bytes(b"\xff\xd8" + b"x" * 5000)
    subprocess.run(
        ["mcopy", "-i", str(stick), str(tmp_path / "IMG_0001.JPG"), "::/IMG_0001.JPG"],
        check=True,
        capture_output=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    )
    # A camera whose DEVICE.INF names another serial than the one it was mounted as.
    ((serial, image, _),) = _images(tmp_path, 1, large=1 << 20)
    daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
    try:
        daemon.wait_event("daemon.started")
        (root / "STICK01").mkdir()
        (root / "CAMSPOOF").mkdir()
        with mount_fat(stick, root / "STICK01"), mount_fat(image, root / "CAMSPOOF"):
            daemon.wait_event(
                "device.refused",
                reason=f"camera at {root / 'STICK01'} refused: no DEVICE.INF: not a camera volume",
            )
            spoof = daemon.wait_event(
                "device.refused", device=f"serial=CAMSPOOF fs=fuse.fusefat {root / 'CAMSPOOF'}"
            )
            assert (
                f"DEVICE.INF serial {serial} does not match the USB serial CAMSPOOF"
                in spoof["reason"]
            )
    finally:
        assert daemon.stop() == 0
    refused = station.json("devices", "--refused")["refused"]
    assert len(refused) == 2
    assert rows(station.data_dir, "SELECT * FROM files") == []
    assert not station.staging.exists() or not any(station.staging.rglob("*.*"))


def test_sigterm_drains_within_the_deadline_and_a_restart_finishes(
    station: Station, tmp_path: Path
) -> None:
    root = tmp_path / "media"
    root.mkdir()
    station.configure(_config(root, deadline=5))
    cameras = _images(tmp_path, 4, large=64 << 20)
    with contextlib.ExitStack() as stack:
        for serial, image, _ in cameras:
            (root / serial).mkdir()
            stack.enter_context(mount_fat(image, root / serial))
        daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
        try:
            daemon.wait_event("device.present")
            wait_until(
                lambda: station.staging.exists() and any(station.staging.rglob(".*.part")),
                60,
                "copies in flight",
            )
        finally:
            started = time.monotonic()
            daemon.proc.send_signal(signal.SIGTERM)
            code = daemon.proc.wait(timeout=30)
            took = time.monotonic() - started
        assert took < 5 + 3, took
        assert code in (0, 70)
        # Restart with the cameras still docked: present at start, taken in, nothing twice.
        again = DaemonProcess(station.env(), tmp_path / "daemon2.log")
        try:
            for serial, _, expected in cameras:
                wait_until(
                    lambda s=serial, e=expected: sealed_count(station.data_dir, s) == len(e),
                    300,
                    f"{serial} sealed after restart",
                )
        finally:
            assert again.stop() == 0
    for serial, _, expected in cameras:
        assert_all_sealed(station.data_dir, serial, expected)
    assert station.run("verify").returncode == 0


def test_a_second_sigterm_exits_at_once(station: Station, tmp_path: Path) -> None:
    root = tmp_path / "media"
    root.mkdir()
    station.configure(_config(root, deadline=60))
    ((serial, image, expected),) = _images(tmp_path, 1, large=96 << 20)
    (root / serial).mkdir()
    with mount_fat(image, root / serial):
        daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
        wait_until(
            lambda: station.staging.exists() and any(station.staging.rglob(".*.part")), 60, "copy"
        )
        daemon.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        code = daemon.proc.wait(timeout=10)
        assert time.monotonic() - started < 3
        assert code != 0
        # Whatever was cut off is copied by the next run.
        assert station.run("import", str(root / serial)).returncode == 0
    assert_all_sealed(station.data_dir, serial, expected)
