"""The external mount of a camera is found by its block device, never by mountinfo's source text.

A FUSE mount may name any source it likes (`-o fsname=/dev/...`, what an unprivileged user can
do through fusermount); only the device number of the mounted file system (mountinfo field 3)
against the device node's st_rdev identifies the camera's mount. exfat-fuse on a loop device
mounts as fuseblk, whose file system carries the block device's number, as a kernel mount does.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.devices import mounts
from tests.support.volumes import fuse_available, mount_exfat, mount_fat

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(not fuse_available(), reason="needs root, /dev/fuse and the FUSE tools"),
]


def _image(path: Path, mkfs: str) -> Path:
    with path.open("wb") as fh:
        fh.truncate(16 << 20)
    subprocess.run([mkfs, str(path)], check=True, capture_output=True)
    return path


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[str]:
    """A block device holding an exFAT camera image, attached but not mounted."""
    image = _image(tmp_path / "camera.img", "mkfs.exfat")
    proc = subprocess.run(
        ["losetup", "--find", "--show", "--read-only", str(image)],
        check=True,
        capture_output=True,
        text=True,
    )
    device = proc.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


def test_a_forged_source_is_not_taken_for_the_camera(tmp_path: Path, loop: str) -> None:
    forged_point = tmp_path / "forged"
    forged_point.mkdir()
    forged = _image(tmp_path / "forged.img", "mkfs.vfat")
    with mount_fat(forged, forged_point, fsname=loop):
        sources = Path("/proc/self/mountinfo").read_text()
        assert f" - fuse {loop} " in sources  # the forgery is in place
        assert mounts.find_mount(loop) == ""
        assert mounts.wait_for_mount(loop, 0.5) == ""


def test_the_camera_mount_is_found_beside_a_forged_one(tmp_path: Path) -> None:
    real_point, forged_point = tmp_path / "camera", tmp_path / "forged"
    real_point.mkdir()
    forged_point.mkdir()
    image = _image(tmp_path / "camera.img", "mkfs.exfat")
    forged = _image(tmp_path / "forged.img", "mkfs.vfat")
    with mount_exfat(image, real_point) as camera:
        assert camera.loop_device is not None
        with mount_fat(forged, forged_point, fsname=camera.loop_device):
            assert mounts.find_mount(camera.loop_device) == str(real_point)


def test_what_is_not_a_block_device_has_no_mount(tmp_path: Path) -> None:
    # A regular file named as the source of a mount is still not a device.
    point = tmp_path / "forged"
    point.mkdir()
    forged = _image(tmp_path / "forged.img", "mkfs.vfat")
    with mount_fat(forged, point, fsname=str(forged)):
        assert mounts.find_mount(str(forged)) == ""
    assert mounts.find_mount(str(tmp_path / "absent")) == ""


def test_mount_points_with_escaped_characters_are_read_back(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_bytes(
        b"45 27 7:3 / /media/dock\\040agent/CAM\\134 rw,nosuid - fuseblk /dev/loop3 rw\n"
    )
    (entry,) = mounts.mount_entries(mountinfo)
    assert entry.point == "/media/dock agent/CAM\\"
    assert (entry.dev, entry.root, entry.fs_type) == (7 << 8 | 3, "/", "fuseblk")
    assert mounts.options_of("/media/dock agent/CAM\\", mountinfo) == "rw,nosuid"
