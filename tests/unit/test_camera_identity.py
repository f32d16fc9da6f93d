"""agent.camera.identity: who a camera is, from its profile's sources in order; a source that
says nothing passes to the next, two that disagree refuse the camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.camera import identity, profile, volume
from agent.core.errors import CameraRefused
from agent.core.model import DeviceInfo

NOVATEK = profile.load("novatek-cardv")
ANDROID = profile.load("android-dcam")
JL = profile.load("jl-dv16")


@pytest.fixture
def cam(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "cam"
    root.mkdir()
    yield root


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _read(root: Path, prof: profile.Profile, **kw: object) -> DeviceInfo:
    with volume.open_root(str(root)) as fd:
        return identity.read_identity(fd, prof, str(root), **kw)  # type: ignore[arg-type]


def test_novatek_reads_its_device_file_then_the_usb_serial(cam: Path) -> None:
    with pytest.raises(
        CameraRefused, match=r"no identity: none of its profile's sources \(file, usb\)"
    ):
        _read(cam, NOVATEK)
    assert _read(cam, NOVATEK, usb_serial="NTK-77") == DeviceInfo(serial="NTK-77")
    with pytest.raises(CameraRefused, match="no identity"):
        _read(cam, NOVATEK, usb_serial="NTK\n77")  # a serial that is not one says nothing
    _write(cam, {"DEVICE.INF": b"serial=NTK1\nofficer_id=5\n"})
    assert _read(cam, NOVATEK) == DeviceInfo(serial="NTK1", officer_id="5")
    assert _read(cam, NOVATEK, usb_serial="NTK1").serial == "NTK1"
    with pytest.raises(CameraRefused, match="its file names serial NTK1 but its usb names NTK2"):
        _read(cam, NOVATEK, usb_serial="NTK2")


def test_a_malformed_device_file_refuses_rather_than_falling_through(cam: Path) -> None:
    _write(cam, {"DEVICE.INF": b"serial=not ok!\n"})
    with pytest.raises(CameraRefused, match="serial"):
        _read(cam, NOVATEK, usb_serial="NTK2")


def test_jl_dv16_takes_the_scsi_record_first_and_checks_the_file(cam: Path) -> None:
    record = DeviceInfo(serial="DV16A", officer_id="")
    assert _read(cam, JL, device_record=record) == record  # no DEVICE.INF: the record alone
    _write(cam, {"DEVICE.INF": b"serial=DV16A\nofficer_id=0042\n"})
    assert _read(cam, JL, device_record=record) == DeviceInfo(serial="DV16A", officer_id="0042")
    assert _read(cam, JL).serial == "DV16A"  # no record read: the file answers
    with pytest.raises(CameraRefused, match="its scsi names serial DV16B but its file names DV16A"):
        _read(cam, JL, device_record=DeviceInfo(serial="DV16B"))


def test_android_names_must_agree_on_the_camera(cam: Path) -> None:
    folder = "DCIM/Camera/"
    _write(
        cam,
        {
            folder + "DCAM_PH1_100_20260301_081500.mp4": b"v",
            folder + "DCAM_PH1_200_20260301_081501_IMP.jpg": b"p",
            folder + "IMG_1.jpg": b"p",
            "Download/DCAM_PH9_100_20260301_081500.mp4": b"outside the root: says nothing",
        },
    )
    # The officer differs between names: the camera is known, its officer is not.
    assert _read(cam, ANDROID) == DeviceInfo(serial="PH1", officer_id="")
    _write(cam, {folder + "DCAM_PH2_100_20260301_081502.mp4": b"v"})
    with pytest.raises(CameraRefused, match="names disagree on the camera"):
        _read(cam, ANDROID)


def test_a_phone_with_no_named_recording_has_no_identity(cam: Path) -> None:
    _write(cam, {"DCIM/Camera/IMG_1.jpg": b"p"})
    with pytest.raises(CameraRefused, match="no identity"):
        _read(cam, ANDROID)
