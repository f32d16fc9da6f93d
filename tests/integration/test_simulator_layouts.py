"""The simulator writes the real cameras' layouts (novatek-cardv, android-dcam, jl-dv16) as its
manifest says, keeps the generic camera byte for byte what it was for a seed, and its simulated
firmware applies and deletes the clock file the station leaves."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, Manifest, build_image, main, write_camera
from scripts.simulator.firmware import restart
from tests.support.volumes import mount_fat, sha256_tree

FIRST_DAY = date(2024, 3, 7)
DOCKED_AT = datetime(2024, 3, 10, 20, 0, 0)
NOVATEK_MOV = re.compile(r"^(\d{4})_(\d{4})_(\d{6})_(\d{3})(?:_([FR]))?\.(MOV|THM)$")
NOVATEK_TS = re.compile(r"^(\d{14})_(\d{6})([AB])\.TS$")
NOVATEK_JPG = re.compile(r"^\d{4}_\d{4}_\d{6}_\d{3}\.JPG$")
ANDROID = re.compile(
    r"^DCAM_(?P<cam>[A-Z0-9]+)_(?P<officer>\d+)_(?P<day>\d{8})_(?P<time>\d{6})(?P<imp>_IMP)?"
    r"\.(?P<ext>mp4|jpg|m4a)$"
)


def spec(**changes: object) -> CameraSpec:
    fields: dict[str, object] = {"first_day": FIRST_DAY, "docked_at": DOCKED_AT}
    fields.update(changes)
    return CameraSpec(**fields)  # type: ignore[arg-type]


def _digest(manifest: Manifest) -> str:
    """Paths, contents and local wall-clock mtimes (the zone of the run does not matter)."""
    h = hashlib.sha256()
    for e in manifest.entries:
        wall = datetime.fromtimestamp(e.mtime).isoformat()
        h.update(b"%s\0%s\0%s\n" % (e.rel_path, e.sha256.encode(), wall.encode()))
    return h.hexdigest()


def test_the_generic_camera_is_unchanged_for_a_seed(tmp_path: Path) -> None:
    # Digests of the generic camera as written before the other layouts existed: other tests
    # and the benches rely on a seed giving the same camera.
    plain = write_camera(spec(), tmp_path / "a")
    odd = write_camera(
        spec(battery="garbled", clock_offset_s=-93.5, large_files=1, large_size=100000,
             other_files=2, seed=7),
        tmp_path / "b",
    )  # fmt: skip
    assert (len(plain.entries), len(odd.entries)) == (72, 73)
    assert _digest(plain) == "0443f0470ae48fefd778eb26e55b9d1e02505b3d4d6ab5b4ad868b635a975bb9"
    assert _digest(odd) == "1970ae45d2a4d4b3518aeba68cfc24bdd4312ba1f75c3a88645aa98ddac24be8"


def test_novatek_layout(tmp_path: Path) -> None:
    manifest = write_camera(spec(layout="novatek-cardv", days=2, files_per_day=12), tmp_path / "c")
    expect = manifest.expectations()
    paths = {e.rel_path.decode() for e in manifest.entries}
    assert set(expect) == {e.rel_path for e in manifest.entries}, "every file has an expectation"
    assert sha256_tree(tmp_path / "c") == {e.rel_path: e.sha256 for e in manifest.entries}
    # No DEVICE.INF, no log, nothing at the root: the firmware keeps only CarDV/.
    assert {p.split("/")[0] for p in paths} == {"CarDV"}
    enrolled = write_camera(spec(layout="novatek-cardv", device_file=True), tmp_path / "e")
    info = (tmp_path / "e" / "DEVICE.INF").read_text()
    assert "serial=CAM0001\n" in info and b"DEVICE.INF" in enrolled.expectations()
    kinds = Counter()
    for path in sorted(paths):
        exp = expect[path.encode()]
        folder, name = path.rsplit("/", 1)
        kinds[(folder, exp.kind)] += 1
        if folder == "CarDV/Photo":
            assert NOVATEK_JPG.match(name) and exp.kind == "photo"
        elif name.endswith(".TS"):
            m = NOVATEK_TS.match(name)
            assert m, name
            assert exp.start == datetime.strptime(m[1], "%Y%m%d%H%M%S").isoformat()
            assert (exp.segment, exp.channel) == (int(m[2]), m[3])
        elif name.endswith((".MOV", ".THM")):
            m = NOVATEK_MOV.match(name)
            assert m, name
            if name.endswith(".THM"):
                # a thumbnail is its clip's partner, beside it
                assert exp.partner_of == path[:-4] + ".MOV" and exp.partner_of in paths
                clip = expect[exp.partner_of.encode()]
                assert exp.kind == "other"
                assert (exp.start, exp.segment, exp.channel, exp.important) == (
                    clip.start,
                    clip.segment,
                    clip.channel,
                    clip.important,
                )
            else:
                start = datetime.strptime("".join(m.groups()[:3]), "%Y%m%d%H%M%S")
                assert (exp.kind, exp.start, exp.segment) == ("video", start.isoformat(), int(m[4]))
                assert exp.channel == (m[5] or "")
                # locked clips are the important ones, and they are in RO/
                assert exp.important == (folder == "CarDV/Movie/RO")
        else:
            assert name == "NOTES.TXT" and exp.kind == "other"
    assert kinds[("CarDV/Movie/RO", "video")] >= 2
    assert kinds[("CarDV/Photo", "photo")] >= 1
    assert any(n.endswith(".TS") for n in paths)
    assert any(n.endswith(".THM") for n in paths)
    # front and rear of one clip share its start and number
    fronts = {p.replace("_F.", "_R.") for p in paths if "_F." in p}
    assert fronts and fronts <= paths
    # the firmware numbers clips and photos consecutively; front and rear share a number
    numbered = [
        (e.segment, e.channel)
        for e in expect.values()
        if e.segment is not None and not e.partner_of
    ]
    assert len(numbered) == len(set(numbered))
    assert {n for n, _ in numbered} == set(range(1, max(n for n, _ in numbered) + 1))


def test_android_layout(tmp_path: Path) -> None:
    manifest = write_camera(
        spec(layout="android-dcam", serial="PHONE7", officer_id="4411", files_per_day=14),
        tmp_path / "c",
    )
    expect = manifest.expectations()
    seen: set[tuple[str, str, str]] = set()
    types = Counter()
    for entry in manifest.entries:
        folder, name = entry.rel_path.decode().rsplit("/", 1)
        assert folder == "DCIM/Camera"
        exp = expect[entry.rel_path]
        if name == "NOTES.TXT":
            continue
        if name == ".nomedia":
            assert exp.ignored and entry.size == 0
            continue
        m = ANDROID.match(name)
        assert m, name
        assert (m["cam"], m["officer"]) == ("PHONE7", "4411")
        key = (m["day"], m["time"], m["ext"])
        assert key not in seen, "one name per type per second"
        seen.add(key)
        start = datetime.strptime(m["day"] + m["time"], "%Y%m%d%H%M%S").isoformat()
        kind = {"mp4": "video", "jpg": "photo", "m4a": "audio"}[m["ext"]]
        assert (exp.kind, exp.start, exp.segment) == (kind, start, None)
        assert exp.important == bool(m["imp"])
        types[kind] += 1
    assert set(types) == {"video", "audio", "photo"}
    assert any(e.important for e in expect.values())


def test_jl_dv16_layout_is_generic_without_the_battery_log(tmp_path: Path) -> None:
    generic = write_camera(spec(), tmp_path / "g")
    disk = write_camera(spec(layout="jl-dv16"), tmp_path / "j")
    paths = {e.rel_path for e in disk.entries}
    assert paths == {e.rel_path for e in generic.entries} - {b"LOG/BATTERY.CSV"}
    assert {e.sha256 for e in disk.entries} <= {e.sha256 for e in generic.entries}
    expect = disk.expectations()
    markers = [p for p, e in expect.items() if e.marker]
    clips = {p.rsplit(b".", 1)[0]: e for p, e in expect.items() if not e.marker}
    assert markers and all(clips[m.rsplit(b".", 1)[0]].important for m in markers)


def test_cli_layout_and_manifest_round_trip(tmp_path: Path) -> None:
    out, manifest_file = tmp_path / "cam", tmp_path / "m.json"
    rc = main(
        [
            "--out", str(out), "--layout", "novatek-cardv", "--manifest", str(manifest_file),
            "--first-day", "2024-03-08", "--docked-at", "2024-03-10 20:00:00",
            "--files-per-day", "6", "--days", "1",
        ]
    )  # fmt: skip
    assert rc == 0
    data = json.loads(manifest_file.read_text())
    assert data["layout"] == "novatek-cardv"
    assert all("expect" in row for row in data["entries"])
    manifest = Manifest.from_json(manifest_file.read_text())
    assert manifest.layout == "novatek-cardv"
    assert sha256_tree(out) == {e.rel_path: e.sha256 for e in manifest.entries}
    assert len(manifest.expectations()) == len(manifest.entries)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x"), "--layout", "nope"])


@pytest.mark.fuse
def test_novatek_fat32_image_matches_its_manifest(tmp_path: Path, fuse: None) -> None:
    image = tmp_path / "cam.img"
    manifest = build_image(spec(layout="novatek-cardv", files_per_day=5, days=1), image, "fat32")
    (tmp_path / "mnt").mkdir()
    with mount_fat(image, tmp_path / "mnt") as mounted:
        assert sha256_tree(mounted.path) == {e.rel_path: e.sha256 for e in manifest.entries}


def test_firmware_applies_the_clock_file_and_deletes_it(tmp_path: Path) -> None:
    root = tmp_path / "cam"
    write_camera(spec(layout="novatek-cardv", files_per_day=3, days=1), root)
    start = datetime(2026, 12, 4, 2, 10, 0)
    # No file: the clock stays as it was.
    same = restart(root, "novatek-cardv", start, 3600.0)
    assert (same.clock_offset_s, same.consumed) == (3600.0, False)
    # The station wrote at 02:03:04; the camera starts 6 min later and takes that time.
    (root / "TIMESET.txt").write_bytes(b"2026.12.04 02:03:04")
    after = restart(root, "novatek-cardv", start, 3600.0)
    assert after.consumed and not (root / "TIMESET.txt").exists()
    assert after.new == datetime(2026, 12, 4, 2, 3, 4)
    assert after.clock_offset_s == -416.0  # behind by the delay until the start
    # Case does not matter on FAT; the clamps apply (minute 00 -> 01, second 00 -> 01).
    (root / "timeset.TXT").write_bytes(b"2026-12-04 02:00:00")
    clamped = restart(root, "novatek-cardv", datetime(2026, 12, 4, 2, 0, 0), 0.0)
    assert clamped.new == datetime(2026, 12, 4, 2, 1, 1) and clamped.clock_offset_s == 61.0
    # A generic camera reads TIME.TXT and says so in its log.
    (root / "TIME.TXT").write_text("2026-12-04 02:00:00\n")
    generic = restart(root, "generic", datetime(2026, 12, 4, 2, 0, 0) + timedelta(seconds=1), 90)
    assert generic.time_set_line() == (
        "2026-12-04 02:00:00 TIME_SET old=2026-12-04T02:01:31 new=2026-12-04T02:00:00"
    )
