"""`dockagent profile check FILE` and `dockagent profile try PROFILE PATH`, run as a technician
would: a profile is checked before a station relies on it, and tried on a camera without
anything copied, written or recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import REPO, Station

SHIPPED = REPO / "agent" / "camera" / "profiles"


def _tree(root: Path, names: list[str]) -> None:
    for rel in names:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * 10)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


def rows_of(out: str, name: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.startswith(name + " "))


def test_check_passes_every_shipped_profile(station: Station) -> None:
    names = ("generic", "jl-dv16", "novatek-cardv", "android-dcam")
    proc = station.run("profile", "check", *(str(SHIPPED / f"{n}.toml") for n in names))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(names)
    for name, line in zip(names, lines, strict=True):
        assert line.startswith(f"{SHIPPED / name}.toml: camera profile {name} (format")
        assert line.endswith("name patterns") and "is valid" in line


def test_check_names_each_mistake_with_its_line_and_exits_78(
    station: Station, tmp_path: Path
) -> None:
    text = (SHIPPED / "novatek-cardv.toml").read_text()
    text = text.replace('transport = "ums"', 'transport = "sata"')
    text = text.replace("max_error_s = 62", 'max_error_s = "a minute"')
    text = text.replace('folders = ["CarDV/Movie/RO"]', 'folders = ["CarDV/Movie/RO"]\ncolour = 1')
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    lines = text.splitlines()

    def line_of(start: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if line.startswith(start))

    proc = station.run("profile", "check", str(bad))
    assert proc.returncode == 78, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        f"{bad}:{line_of('transport')}: transport: 'sata' is not one of ums, ums-unlock, mtp",
        f"{bad}:{line_of('max_error_s')}: clock.max_error_s: must be an integer, not a string",
        f"{bad}:{line_of('colour')}: markers.colour: unknown key (known: folders, sidecars, "
        "suffixes)",
    ]
    # A station configured with it stops at once with exit 78, naming the file.
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[devices]\n'
        f'require_enrollment = false\nprofiles = ["bad"]\nprofile_dir = "{tmp_path}"\n'
    )
    refused = station.run("import", str(tmp_path), "--profile", "bad")
    assert refused.returncode == 78 and f"{bad}:{line_of('transport')}" in refused.stderr


def test_try_shows_a_novatek_card_without_copying_anything(
    station: Station, tmp_path: Path
) -> None:
    card = tmp_path / "card"
    _tree(
        card,
        [
            "CarDV/Movie/2016_0729_112129_001_F.MOV",
            "CarDV/Movie/2016_0729_112129_001_F.THM",
            "CarDV/Movie/RO/20251003172400_000001A.TS",
            "CarDV/Movie/lonely.THM",
            "CarDV/Photo/2016_0729_112130_002.JPG",
            "TIMESET.txt",
        ],
    )
    os.mkfifo(card / "CarDV" / "Movie" / "PIPE.MOV")
    before = _snapshot(card)
    proc = station.run("profile", "try", "novatek-cardv", str(card))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "identity from file, usb: none: " in out  # no DEVICE.INF, and a directory has no USB
    assert "clock file:novatek-timeset, battery none" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("CarDV")}
    assert set(rows) == {
        "CarDV/Movie/2016_0729_112129_001_F.MOV",
        "CarDV/Movie/2016_0729_112129_001_F.THM",
        "CarDV/Movie/RO/20251003172400_000001A.TS",
        "CarDV/Movie/lonely.THM",
        "CarDV/Photo/2016_0729_112130_002.JPG",
    }
    assert rows["CarDV/Movie/2016_0729_112129_001_F.MOV"][1:5] == [
        "video", "2016-07-29T11:21:29", "1", "F"
    ]  # fmt: skip
    assert rows["CarDV/Movie/2016_0729_112129_001_F.THM"][-3:] == [
        "partner", "of", "CarDV/Movie/2016_0729_112129_001_F.MOV"
    ]  # fmt: skip
    assert rows["CarDV/Movie/RO/20251003172400_000001A.TS"][5] == "folder"
    assert "partner file without its clip" in " ".join(rows["CarDV/Movie/lonely.THM"])
    assert "NOT TAKEN  CarDV/Movie/PIPE.MOV: a FIFO: not read" in out
    assert rows_of(out, "TIMESET.txt")[1:4] == ["other", "(not", "a"]
    # Nothing was written: not on the card, and no station state at all.
    assert _snapshot(card) == before
    assert not station.data_dir.exists()


def test_try_json_on_an_android_folder_from_a_profile_file(
    station: Station, tmp_path: Path
) -> None:
    phone = tmp_path / "phone"
    _tree(
        phone,
        [
            "DCIM/Camera/DCAM_PH7_100234_20260301_081500_IMP.mp4",
            "DCIM/Camera/DCAM_PH7_100234_20260301_081501.m4a",
            "DCIM/Camera/.nomedia",
        ],
    )
    proc = station.run("profile", "try", str(SHIPPED / "android-dcam.toml"), str(phone), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["identity"]["sources"] == ["names"]
    assert (report["identity"]["device_serial"], report["identity"]["officer_id"]) == (
        "PH7",
        "100234",
    )
    assert report["clock"]["method"] == "none" and report["transport"] == "mtp"
    files = {f["file"]: f for f in report["files"]}
    video = files["DCIM/Camera/DCAM_PH7_100234_20260301_081500_IMP.mp4"]
    assert (video["kind"], video["recorded_start"], video["important"], video["marked_by"]) == (
        "video",
        "2026-03-01T08:15:00",
        True,
        "suffix",
    )
    assert files["DCIM/Camera/DCAM_PH7_100234_20260301_081501.m4a"]["kind"] == "audio"
    assert [i["file"] for i in report["ignored"]] == ["DCIM/Camera/.nomedia"]
    assert "DCIM/Camera/.nomedia" not in files


def test_try_on_a_profile_with_mistakes_exits_78(station: Station, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('format = 2\nname = "bad"\n[layout]\nroots = ["/R"]\n')
    proc = station.run("profile", "try", str(bad), str(tmp_path))
    assert proc.returncode == 78
    assert f"{bad}:4: layout.roots[0]" in proc.stderr
