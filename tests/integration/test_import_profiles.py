"""`dockagent import` of cameras laid out as the shipped format 2 profiles say: a Novatek CarDV
card and an Android recorder's folder, as a directory and as a FAT32 image through fusefat.

Every file is sealed with the kind, start, segment, channel and marker its profile gives it; a
partner file (`.THM`) is sealed with its clip, its one custody record naming both; a partner
without a clip is sealed alone, saying so; an ignored file is accounted for in the summary and
never copied; the identity comes from DEVICE.INF or from the names, as the profile says. The
trees are built here (small files: the suite's time is short).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows
from tests.support.volumes import mount_fat, sha256_file

NOVATEK = {
    b"DEVICE.INF": b"serial=NTK0042\nofficer_id=7\n",
    b"CarDV/Movie/2016_0729_112129_001.MOV": b"front clip " * 300,
    b"CarDV/Movie/2016_0729_112129_001.THM": b"thumbnail",
    b"CarDV/Movie/2016_0729_112129_002_R.MOV": b"rear clip " * 200,
    b"CarDV/Movie/RO/20251003172400_000001A.TS": b"locked stream " * 100,
    b"CarDV/Movie/2016_0729_999999_009.THM": b"orphan thumbnail",
    b"CarDV/Photo/2016_0729_112130_003.JPG": b"photo",
    b"MISC/readme-first.txt": b"not a recording",
}
ANDROID = {
    b"DCIM/Camera/DCAM_PH0007_100234_20260301_081500.mp4": b"video " * 300,
    b"DCIM/Camera/DCAM_PH0007_100234_20260301_081500_IMP.jpg": b"photo",
    b"DCIM/Camera/DCAM_PH0007_100234_20260301_081501.m4a": b"audio " * 50,
    b"DCIM/Camera/IMG_20260301_0001.jpg": b"a photo of another app",
}
NOMEDIA = b"DCIM/Camera/.nomedia"


def _write_tree(root: Path, files: dict[bytes, bytes]) -> None:
    for rel, data in files.items():
        path = Path(os.fsdecode(rel))
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)


def _fat_image(tree: Path, image: Path) -> None:
    """A FAT32 image holding the tree (mkfs.vfat, then mtools' mcopy: no mount needed)."""
    with open(image, "wb") as fh:
        fh.truncate(64 << 20)
    subprocess.run(["mkfs.vfat", "-F", "32", str(image)], check=True, capture_output=True)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    for top in sorted(tree.iterdir()):
        subprocess.run(
            ["mcopy", "-s", "-m", "-i", str(image), str(top), "::/"],
            check=True,
            capture_output=True,
            env=env,
        )


def _import(station: Station, path: Path, profile: str) -> dict[str, Any]:
    proc = station.run("import", str(path), "--profile", profile, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


def _held(station: Station, serial: str) -> dict[bytes, dict[str, Any]]:
    held = rows(
        station.data_dir,
        "SELECT f.*, COALESCE(c.channel, '') AS channel, c.partner_of AS partner_of "
        "FROM files f LEFT JOIN file_classes c ON c.file_id = f.id WHERE f.device_serial=?",
        (serial,),
    )
    return {bytes(r["camera_path"]): r for r in held}


def _record(station: Station, file_id: int) -> dict[str, Any]:
    (record,) = rows(
        station.data_dir, "SELECT body FROM records WHERE kind='file' AND file_id=?", (file_id,)
    )
    body: dict[str, Any] = json.loads(record["body"])
    return body


def _check_novatek(station: Station, source: Path) -> None:
    summary = _import(station, source, "novatek-cardv")
    assert summary["device_serial"] == "NTK0042" and summary["officer_id"] == "7"
    assert summary["files_sealed"] == len(NOVATEK) and summary["problems"] == []
    assert_all_sealed(
        station.data_dir, "NTK0042", {p: sha256_file(source / os.fsdecode(p)) for p in NOVATEK}
    )
    held = _held(station, "NTK0042")
    fields = ("kind", "recorded_start", "segment", "channel", "important", "wipeable")
    assert {p: tuple(held[p][f] for f in fields) for p in held} == {
        b"DEVICE.INF": ("other", "", None, "", 0, 0),
        b"MISC/readme-first.txt": ("other", "", None, "", 0, 0),
        b"CarDV/Movie/2016_0729_112129_001.MOV": ("video", "2016-07-29T11:21:29", 1, "", 0, 1),
        b"CarDV/Movie/2016_0729_112129_001.THM": ("other", "2016-07-29T11:21:29", 1, "", 0, 1),
        b"CarDV/Movie/2016_0729_112129_002_R.MOV": ("video", "2016-07-29T11:21:29", 2, "R", 0, 1),
        b"CarDV/Movie/RO/20251003172400_000001A.TS": ("video", "2025-10-03T17:24:00", 1, "A", 1, 1),
        b"CarDV/Movie/2016_0729_999999_009.THM": ("other", "", None, "", 0, 1),
        b"CarDV/Photo/2016_0729_112130_003.JPG": ("photo", "2016-07-29T11:21:30", 3, "", 0, 1),
    }
    # The partner's one record names both files: itself, and its clip by name and raw bytes.
    partner = held[b"CarDV/Movie/2016_0729_112129_001.THM"]
    clip = held[b"CarDV/Movie/2016_0729_112129_001.MOV"]
    body = _record(station, partner["id"])
    assert body["original_name"] == "CarDV/Movie/2016_0729_112129_001.THM"
    assert body["sha256"] == partner["sha256"]
    assert body["partner_of"] == "CarDV/Movie/2016_0729_112129_001.MOV"
    assert base64.b64decode(body["partner_of_b64"]) == bytes(clip["camera_path"])
    assert _record(station, clip["id"])["session_id"] == body["session_id"]  # the same dock
    orphan = _record(station, held[b"CarDV/Movie/2016_0729_999999_009.THM"]["id"])
    assert "partner_of" not in orphan and "without its clip" in orphan["class_note"]
    assert _record(station, held[b"CarDV/Movie/2016_0729_112129_002_R.MOV"]["id"])["channel"] == "R"
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_novatek_card_directory_is_sealed_as_its_profile_says(
    station: Station, tmp_path: Path
) -> None:
    card = tmp_path / "card"
    _write_tree(card, NOVATEK)
    _check_novatek(station, card)
    # The store rebuilt from the sidecars alone knows the partner's clip again.
    (station.data_dir / "dockagent.db").write_bytes(b"")
    rebuilt = station.run("rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    partner = _held(station, "NTK0042")[b"CarDV/Movie/2016_0729_112129_001.THM"]
    assert bytes(partner["partner_of"]) == b"CarDV/Movie/2016_0729_112129_001.MOV"
    assert station.run("verify").returncode == 0


def _check_android(station: Station, source: Path) -> None:
    summary = _import(station, source, "android-dcam")
    # No device file on a phone: the names say which camera and which officer.
    assert (summary["device_serial"], summary["officer_id"]) == ("PH0007", "100234")
    assert summary["files_sealed"] == len(ANDROID) and summary["problems"] == []
    assert [e["file"] for e in summary["ignored"]] == [NOMEDIA.decode()]
    assert "android-dcam" in summary["ignored"][0]["reason"]
    assert_all_sealed(
        station.data_dir, "PH0007", {p: sha256_file(source / os.fsdecode(p)) for p in ANDROID}
    )
    held = _held(station, "PH0007")
    assert NOMEDIA not in held
    fields = ("kind", "recorded_start", "important", "wipeable")
    assert {p.rpartition(b"/")[2]: tuple(held[p][f] for f in fields) for p in held} == {
        b"DCAM_PH0007_100234_20260301_081500.mp4": ("video", "2026-03-01T08:15:00", 0, 1),
        b"DCAM_PH0007_100234_20260301_081500_IMP.jpg": ("photo", "2026-03-01T08:15:00", 1, 1),
        b"DCAM_PH0007_100234_20260301_081501.m4a": ("audio", "2026-03-01T08:15:01", 0, 1),
        b"IMG_20260301_0001.jpg": ("photo", "", 0, 1),
    }


def test_an_android_folder_is_sealed_with_the_identity_its_names_carry(
    station: Station, tmp_path: Path
) -> None:
    phone = tmp_path / "phone"
    _write_tree(phone, {**ANDROID, NOMEDIA: b""})
    _check_android(station, phone)
    again = station.run("import", str(phone), "--profile", "android-dcam")
    assert again.returncode == 0 and "IGNORED     DCIM/Camera/.nomedia" in again.stdout


def test_android_names_that_disagree_on_the_camera_refuse_it(
    station: Station, tmp_path: Path
) -> None:
    phone = tmp_path / "phone"
    _write_tree(phone, {**ANDROID, b"DCIM/Camera/DCAM_OTHER1_9_20260301_090000.mp4": b"x"})
    proc = station.run("import", str(phone), "--profile", "android-dcam")
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert "names disagree on the camera" in proc.stderr
    assert not rows(station.data_dir, "SELECT * FROM files WHERE kind != 'other'")


@pytest.mark.fuse
@pytest.mark.usefixtures("fuse")
def test_novatek_and_android_fat_images_through_fusefat(station: Station, tmp_path: Path) -> None:
    for name, files, check in (
        ("novatek", NOVATEK, _check_novatek),
        ("android", {**ANDROID, NOMEDIA: b""}, _check_android),
    ):
        tree = tmp_path / f"{name}-tree"
        _write_tree(tree, files)
        image = tmp_path / f"{name}.img"
        _fat_image(tree, image)
        mnt = tmp_path / f"{name}-mnt"
        mnt.mkdir()
        with mount_fat(image, mnt) as mounted:
            check(station, mounted.path)


def test_a_wipe_takes_only_the_recordings_in_the_layout_roots(
    station: Station, tmp_path: Path
) -> None:
    """After sealing, the wipe removes what lies in the roots (clips, partners, orphans) and
    leaves everything else: files outside the roots, and the files the profile ignores."""
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "after_seal"\n'
    )
    card = tmp_path / "card"
    _write_tree(card, NOVATEK)
    summary = _import(station, card, "novatek-cardv")
    in_roots = [p for p in NOVATEK if p.startswith(b"CarDV/")]
    assert summary["wipe"]["state"] == "wiped", summary["wipe"]
    assert summary["wipe"]["wiped"] == len(in_roots)
    left = sorted(p.relative_to(card).as_posix() for p in card.rglob("*") if p.is_file())
    assert left == ["DEVICE.INF", "MISC/readme-first.txt"]
    phone = tmp_path / "phone"
    _write_tree(phone, {**ANDROID, NOMEDIA: b""})
    summary = _import(station, phone, "android-dcam")
    assert (summary["wipe"]["state"], summary["wipe"]["wiped"]) == ("wiped", len(ANDROID))
    assert [p.name for p in phone.rglob("*") if p.is_file()] == [".nomedia"]
