"""Real camera volumes: FAT32 through fusefat and exFAT through exfat-fuse, imported whole."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, build_image
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows
from tests.support.volumes import mount_exfat, mount_fat

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

# 3 days x 20 recordings (split segments and markers come on top), two of them 64 MiB.
SPEC = {
    "days": 3,
    "files_per_day": 20,
    "file_size": 192 * 1024,
    "large_files": 2,
    "large_size": 64 << 20,
}


def _sha256sum(root: Path) -> dict[bytes, str]:
    """Hashes of the mounted source as the coreutils tool computes them."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    out = subprocess.run(
        ["sha256sum", "--", *map(str, files)], capture_output=True, check=True
    ).stdout
    result = {}
    for line in out.splitlines():
        digest, _, name = line.partition(b"  ")
        result[name[len(bytes(root)) + 1 :]] = digest.decode()
    return result


def _import_and_check(station: Station, mount: Path, serial: str, files_min: int) -> None:
    source = _sha256sum(mount)
    assert len(source) >= files_min
    days = {p.split(b"/")[1] for p in source if p.startswith(b"RECORD/")}
    assert len(days) >= 3
    assert sum(1 for p in mount.rglob("*") if p.is_file() and p.stat().st_size >= 64 << 20) >= 2
    proc = station.run("import", str(mount), "--json", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["files_sealed"] == len(source) and summary["problems"] == []
    assert_all_sealed(station.data_dir, serial, source)
    assert len(rows(station.data_dir, "SELECT * FROM records WHERE kind='file'")) == len(source)
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout
    again = station.run("import", str(mount))
    assert again.returncode == 0 and "nothing new" in again.stdout
    assert len(rows(station.data_dir, "SELECT * FROM records")) == len(source)


def test_fat32_image_through_fusefat(station: Station, tmp_path: Path) -> None:
    image = tmp_path / "cam.img"
    manifest = build_image(CameraSpec(serial="FAT32CAM", **SPEC), image, "fat32")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mount_fat(image, mnt) as mounted:
        _import_and_check(station, mounted.path, "FAT32CAM", 60)
        assert set(_sha256sum(mounted.path)) == {e.rel_path for e in manifest.entries}


def test_exfat_image_through_exfat_fuse_and_wipe_after_seal(
    station: Station, tmp_path: Path
) -> None:
    image = tmp_path / "cam.img"
    manifest = build_image(CameraSpec(serial="EXFATCAM", **SPEC), image, "exfat")
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mount_exfat(image, mnt) as mounted:
        _import_and_check(station, mounted.path, "EXFATCAM", 60)
        # exfat-fuse reports times correctly: recording ends are the camera's close times
        video = rows(station.data_dir, "SELECT * FROM files WHERE kind='video' LIMIT 1")[0]
        entry = manifest.by_path()[bytes(video["camera_path"])]
        assert video["mtime_ns"] // 10**9 == entry.mtime
    # Now with after_seal on a writable mount: the real volume's used-space accounting must let
    # a legitimate wipe through, and only recordings go.
    station.configure(station.config_text.replace('"never"', '"after_seal"'))
    with mount_exfat(image, mnt, readonly=False) as mounted:
        proc = station.run("import", str(mounted.path), "--json", timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        summary = json.loads(proc.stdout)
        recordings = [p for p in expected if p.startswith(b"RECORD/")]
        assert summary["wipe"]["state"] == "wiped", summary["wipe"]
        assert summary["wipe"]["wiped"] == len(recordings)
        left = sorted(
            p.relative_to(mounted.path).as_posix() for p in mounted.path.rglob("*") if p.is_file()
        )
        assert left == ["DEVICE.INF", "LOG/BATTERY.CSV", "LOG/SYSTEM.LOG"]
    assert_all_sealed(station.data_dir, "EXFATCAM", expected)
    assert station.run("verify").returncode == 0
