"""A rack of cameras docked at once is taken in at once: no camera waits for another's worker.

Each camera reads at USB speed, so a camera left waiting for a worker is a bus idle for a
whole other camera's copy. The cameras are exFAT images on their own loop devices, mounted
through exfat-fuse, each limited to 1 MiB/s of reads by a block-I/O cgroup (the throttle of
`scripts/bench devices`), so that every camera takes seconds and a camera that had to wait
would show: its session would open only after another's ended.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.bench_cameras import Camera, ReadThrottle, attached
from scripts.simulator.cameras import MIB, CameraSpec, build_image
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera, sealed_count, wait_until
from tests.support.evidence import assert_all_sealed, rows

pytestmark = [pytest.mark.fuse, pytest.mark.slow, pytest.mark.usefixtures("fuse")]

# One more than the station used to take in at once (max_parallel_devices = 8).
CAMERAS = 9
READ_BPS = 1 * MIB  # each camera's ~6 MiB take several seconds


def _spec(i: int) -> CameraSpec:
    return CameraSpec(
        serial=f"RACK{i:03d}",
        days=1,
        files_per_day=3,
        file_size=2 * MIB,
        size_jitter=0,
        split_every=0,
        important_every=0,
        other_files=0,
        seed=i + 1,
    )


def test_every_camera_of_a_rack_is_taken_in_at_once(station: Station, tmp_path: Path) -> None:
    cameras, expected = [], {}
    for i in range(CAMERAS):
        spec = _spec(i)
        manifest = build_image(spec, tmp_path / f"{spec.serial}.exfat", "exfat")
        expected[spec.serial] = {e.rel_path: e.sha256 for e in manifest.entries}
        cameras.append(
            Camera(
                spec.serial,
                tmp_path / f"{spec.serial}.exfat",
                tmp_path / "cams" / spec.serial,
                len(manifest.entries),
                manifest.total_bytes,
            )
        )
    spool = tmp_path / "spool"
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
    )
    throttle = ReadThrottle()
    try:
        with attached(cameras, throttle, READ_BPS):
            daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
            try:
                daemon.wait_event("daemon.started")
                for cam in cameras:
                    dock_camera(spool, cam.serial, cam.mountpoint, fs_type="exfat")
                sessions: list[dict[str, object]] = []

                def all_open_or_one_ended() -> bool:
                    nonlocal sessions
                    sessions = rows(station.data_dir, "SELECT * FROM sessions")
                    ended = any(s["ended_at"] is not None for s in sessions)
                    return len(sessions) == CAMERAS or ended

                wait_until(all_open_or_one_ended, 60, "every camera's session")
                assert [s["device_serial"] for s in sessions if s["ended_at"]] == []
                assert len(sessions) == CAMERAS
                for cam in cameras:
                    wait_until(
                        lambda cam=cam: sealed_count(station.data_dir, cam.serial) == cam.files,
                        120,
                        f"{cam.serial} taken in",
                    )
                    assert_all_sealed(
                        station.data_dir, cam.serial, expected[cam.serial], settled=False
                    )
                assert daemon.stop() == 0
            finally:
                daemon.kill()
    finally:
        throttle.remove()
