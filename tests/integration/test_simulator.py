"""The camera simulator writes exactly what its manifest says, in the generic layout, on every
format the station meets (plain directory, FAT32 via fusefat, exFAT via exfat-fuse)."""

from __future__ import annotations

import csv
import dataclasses
import errno
import io
import itertools
import os
import re
import subprocess
import tomllib
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from scripts.simulator.cameras import (
    MIB,
    CameraSpec,
    ImageFormat,
    Manifest,
    build_image,
    main,
    write_camera,
)
from tests.support.volumes import is_mounted, mount_exfat, mount_fat, sha256_tree, tmpfs

REPO = Path(__file__).resolve().parents[2]
PROFILE = tomllib.loads(
    (REPO / "agent" / "camera" / "profiles" / "generic.toml").read_text("utf-8")
)
RECORDING = re.compile(PROFILE["recording_pattern"])
KINDS = {ext.upper() for ext in PROFILE["kinds"]}
LOG_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (?P<event>[A-Z_]+)(?P<args>(?: [a-z_]+=\S*)*)$"
)
BATTERY_HEADER = (
    "time,percent,voltage_mv,current_ma,temperature_c,cycle_count,full_charge_mah,design_mah"
)
FIRST_DAY = date(2025, 6, 2)
DOCKED_AT = datetime(2025, 6, 5, 9, 30, 11)


def spec_for(**changes: object) -> CameraSpec:
    return dataclasses.replace(CameraSpec(first_day=FIRST_DAY, docked_at=DOCKED_AT), **changes)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def read_log(root: Path) -> list[tuple[datetime, str, dict[str, str]]]:
    events = []
    for line in (root / "LOG" / "SYSTEM.LOG").read_text("ascii").splitlines():
        m = LOG_LINE.match(line)
        assert m, f"malformed SYSTEM.LOG line: {line!r}"
        args = dict(kv.split("=", 1) for kv in m["args"].split())
        events.append((parse_time(m["time"]), m["event"], args))
    return events


def battery_rows(root: Path) -> tuple[list[list[str]], int]:
    """(valid rows, garbled row count) of LOG/BATTERY.CSV."""
    raw = (root / "LOG" / "BATTERY.CSV").read_bytes()
    lines = raw.split(b"\n")
    assert lines[0].decode() == BATTERY_HEADER
    valid, garbled = [], 0
    for line in lines[1:-1]:
        try:
            row = next(csv.reader(io.StringIO(line.decode("ascii"))))
            parse_time(row[0])
            assert len(row) == 8
            [float(x) for x in row[1:]]
        except (UnicodeDecodeError, ValueError, AssertionError, StopIteration, IndexError):
            garbled += 1
        else:
            valid.append(row)
    assert lines[-1] == b"", "BATTERY.CSV must end with a newline"
    return valid, garbled


def assert_tree_matches(root: Path, manifest: Manifest, check_mtimes: bool) -> None:
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    assert sha256_tree(root) == expected
    for entry in manifest.entries:
        st = os.lstat(os.path.join(os.fsencode(root), entry.rel_path))
        assert st.st_size == entry.size, entry.rel_path
        if check_mtimes:
            assert st.st_mtime_ns == entry.mtime * 1_000_000_000, entry.rel_path


def test_directory_camera_matches_manifest_and_layout(tmp_path: Path) -> None:
    offset = -37.4
    spec = spec_for(serial="CAM-0042", clock_offset_s=offset, other_files=2, files_per_day=20)
    root = tmp_path / "cam"
    manifest = write_camera(spec, root)

    assert_tree_matches(root, manifest, check_mtimes=True)
    assert all(e.mtime % 2 == 0 for e in manifest.entries), "FAT keeps even seconds"
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert write_camera(spec, tmp_path / "again") == manifest, "same spec, same camera"

    info = dict(
        line.split("=", 1) for line in (root / "DEVICE.INF").read_text("utf-8").splitlines()
    )
    assert info == {
        "serial": "CAM-0042",
        "vendor": "Generic",
        "model": "BWC-1",
        "firmware": "1.0.0",
        "officer_id": "100234",
        "unit": "UNIT-01",
    }
    recordings = _assert_record_layout(manifest, spec)
    starts, stops = _assert_system_log(root, manifest, recordings, offset)
    _assert_split_recordings(recordings, starts, stops)

    valid, garbled = battery_rows(root)
    assert garbled == 0 and len(valid) > 3 * 12
    assert [r[0] for r in valid] == sorted(r[0] for r in valid)


# Each day's recordings: (file name, its match of RECORDING), by day directory.
_Recordings = dict[str, list[tuple[str, re.Match[str]]]]


def _assert_record_layout(manifest: Manifest, spec: CameraSpec) -> _Recordings:
    """RECORD/<YYYYMMDD>/<SERIAL>_<OFFICER>_<start>_<NNNN>.<EXT>, .IMP markers, other files."""
    recordings: _Recordings = defaultdict(list)
    markers, others = [], []
    for entry in manifest.entries:
        parts = entry.rel_path.decode().split("/")
        if parts[0] != "RECORD":
            assert parts in (["DEVICE.INF"], ["LOG", "SYSTEM.LOG"], ["LOG", "BATTERY.CSV"])
            continue
        assert len(parts) == 3 and re.fullmatch(r"\d{8}", parts[1]), parts
        m = RECORDING.match(parts[2])
        if m and m["ext"].upper() in KINDS:
            assert (m["serial"], m["officer"]) == ("CAM-0042", "100234")
            assert m["start"][:8] == parts[1], "day directory is the start day"
            recordings[parts[1]].append((parts[2], m))
        elif m and m["ext"] == "IMP":
            assert entry.size == 0
            markers.append((parts[1], parts[2][: -len(".IMP")]))
        else:
            others.append(parts[2])
    assert len(recordings) == 3
    assert sorted(others) == ["NOTES.TXT", "NOTES2.TXT"]
    exts = {m["ext"] for day in recordings.values() for _, m in day}
    assert exts == {"MP4", "WAV", "JPG"}
    for day, files in recordings.items():
        assert len(files) == spec.files_per_day
        by_start = sorted(files, key=lambda f: f[1]["start"])
        assert [int(m["segment"]) for _, m in by_start] == list(range(1, len(files) + 1)), day
    names = {(day, name.rsplit(".", 1)[0]) for day, fs in recordings.items() for name, _ in fs}
    assert markers and set(markers) <= names, "every .IMP marker has its recording"
    return recordings


def _assert_system_log(
    root: Path, manifest: Manifest, recordings: _Recordings, offset: float
) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """SYSTEM.LOG: camera clock, ordered, USB_CONNECT last with the clock offset applied.

    Returns each recording's REC_START and REC_STOP times, by file name.
    """
    events = read_log(root)
    times = [t for t, _, _ in events]
    assert times == sorted(times)
    assert events[0][1] == "BOOT"
    assert events[-1][1] == "USB_CONNECT"
    assert abs((events[-1][0] - (DOCKED_AT + timedelta(seconds=offset))).total_seconds()) <= 2
    kinds_seen = {e for _, e, _ in events}
    assert {"BOOT", "REC_START", "REC_STOP", "REC_INTERRUPT", "LOW_BATTERY"} <= kinds_seen
    assert all(
        a == {"reason": "battery", "file": a["file"]} for _, e, a in events if e == "REC_INTERRUPT"
    )
    starts = {a["file"]: t for t, e, a in events if e == "REC_START"}
    stops = {a["file"]: t for t, e, a in events if e == "REC_STOP"}
    by_path = manifest.by_path()
    all_recordings = [(day, name, m) for day, fs in recordings.items() for name, m in fs]
    assert set(starts) == set(stops) == {name for _, name, _ in all_recordings}
    for day, name, m in all_recordings:
        assert starts[name] == datetime.strptime(m["start"], "%Y%m%d%H%M%S")
        assert stops[name] >= starts[name]
        # the file's mtime is the recording end (camera clock) as a FAT driver stores it
        entry = by_path[f"RECORD/{day}/{name}".encode()]
        assert entry.mtime == int(stops[name].timestamp()), name
    return starts, stops


def _assert_split_recordings(
    recordings: _Recordings, starts: dict[str, datetime], stops: dict[str, datetime]
) -> None:
    """Split recordings: three segments, each starting 1-2 s after the previous one stopped."""
    chains = 0
    for files in recordings.values():
        ordered = sorted(name for name, _ in files)
        run = 1
        for prev, cur in itertools.pairwise(ordered):
            gap = (starts[cur] - stops[prev]).total_seconds()
            run = run + 1 if 1 <= gap <= 2 else 1
            chains += run == 3
    assert chains >= 3


@pytest.mark.parametrize("mode", ["healthy", "faded", "hot", "garbled"])
def test_battery_modes(tmp_path: Path, mode: str) -> None:
    spec = spec_for(battery=mode, days=2, files_per_day=4, file_size=1024)
    write_camera(spec, tmp_path / "cam")
    valid, garbled = battery_rows(tmp_path / "cam")
    temps = [float(r[4]) for r in valid]
    full, design = int(valid[0][6]), int(valid[0][7])
    interrupts = [e for _, e, _ in read_log(tmp_path / "cam") if e == "REC_INTERRUPT"]
    assert (garbled >= 2) == (mode == "garbled")
    assert (max(temps) >= 55) == (mode == "hot")
    assert (full / design < 0.7) == (mode == "faded")
    assert len(interrupts) == (2 if mode == "faded" else 1)


def test_spec_and_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="after docked_at"):
        write_camera(spec_for(docked_at=datetime(2025, 6, 3, 12, 0)), tmp_path / "a")
    with pytest.raises(ValueError, match="serial"):
        spec_for(serial="A/B")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_bytes(b"")
    with pytest.raises(FileExistsError):
        write_camera(spec_for(), tmp_path / "busy")


def test_cli_and_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, manifest_file = tmp_path / "cam", tmp_path / "cam.json"
    rc = main(
        [
            "--out",
            str(out),
            "--format",
            "dir",
            "--serial",
            "CAM7",
            "--officer",
            "77",
            "--days",
            "2",
            "--files-per-day",
            "5",
            "--file-size",
            "4K",
            "--large-files",
            "1",
            "--large-size",
            "1M",
            "--first-day",
            "2025-06-02",
            "--docked-at",
            "2025-06-05 09:30:11",
            "--clock-offset",
            "12.5",
            "--battery",
            "hot",
            "--seed",
            "9",
            "--manifest",
            str(manifest_file),
        ]
    )
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    manifest = Manifest.from_json(manifest_file.read_text("utf-8"))
    assert lines == [
        f"CAM7: {len(manifest.entries)} files, {manifest.total_bytes} bytes -> {out} (dir)"
    ]
    assert_tree_matches(out, manifest, check_mtimes=True)
    assert max(e.size for e in manifest.entries) == MIB

    assert main(["--out", str(out)]) == 1, "refuses a non-empty directory"
    assert "not an empty directory" in capsys.readouterr().err

    script = REPO / "scripts" / "simulate-camera"
    assert os.access(script, os.X_OK)
    proc = subprocess.run(
        [str(script), "--out", str(tmp_path / "s"), "--days", "1", "--files-per-day", "2"],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CAM0001: ") and proc.stdout.count("\n") == 1


def big_spec() -> CameraSpec:
    """>= 60 files over 3 days, two of them 64 MiB: multi-cluster-chain, multi-piece reads."""
    return spec_for(
        days=3, files_per_day=20, large_files=2, large_size=64 * MIB, clock_offset_s=5.0
    )


def check_big_manifest(manifest: Manifest) -> None:
    media = [
        e
        for e in manifest.entries
        if RECORDING.match(e.rel_path.rsplit(b"/", 1)[-1].decode())
        and not e.rel_path.endswith(b".IMP")
    ]
    assert len(media) >= 60
    assert len({e.rel_path.split(b"/")[1] for e in media}) >= 3
    assert sum(e.size >= 64 * MIB for e in media) >= 2


@pytest.mark.fuse
def test_fat32_image_through_fusefat(tmp_path: Path, fuse: None) -> None:
    image = tmp_path / "cam.img"
    manifest = build_image(big_spec(), image, "fat32")
    check_big_manifest(manifest)
    assert sorted(os.listdir(tmp_path)) == ["cam.img"], "work directory removed"
    (tmp_path / "mnt").mkdir()
    with mount_fat(image, tmp_path / "mnt") as mounted:
        assert mounted.fuse_pid > 0 and is_mounted(mounted.path)
        # equal trees also prove there is no volume-label pseudo file in the root
        # (fusefat reports months one too high, so mtimes are not compared here)
        assert_tree_matches(mounted.path, manifest, check_mtimes=False)
        with pytest.raises(OSError, match="Read-only"):
            (mounted.path / "TIME.TXT").write_text("x")
    assert not is_mounted(tmp_path / "mnt")


@pytest.mark.fuse
def test_exfat_image_through_exfat_fuse(tmp_path: Path, fuse: None) -> None:
    image = tmp_path / "cam.img"
    manifest = build_image(big_spec(), image, "exfat")
    check_big_manifest(manifest)
    assert sorted(os.listdir(tmp_path)) == ["cam.img"], "work directory removed"
    assert not loop_devices(image)
    (tmp_path / "mnt").mkdir()
    with mount_exfat(image, tmp_path / "mnt") as mounted:
        assert mounted.loop_device and loop_devices(image) == [mounted.loop_device]
        assert_tree_matches(mounted.path, manifest, check_mtimes=True)
    assert not is_mounted(tmp_path / "mnt")
    assert not loop_devices(image)


def loop_devices(image: Path) -> list[str]:
    out = subprocess.run(
        ["losetup", "-n", "-O", "NAME", "-j", str(image)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


MOUNTERS = {"fat32": mount_fat, "exfat": mount_exfat}


@pytest.mark.fuse
@pytest.mark.parametrize("fs", ["fat32", "exfat"])
def test_unplug_fails_reads(tmp_path: Path, fuse: None, fs: ImageFormat) -> None:
    spec = spec_for(
        days=1,
        files_per_day=2,
        large_files=1,
        large_size=8 * MIB,
        split_every=0,
        photo_every=0,
        audio_every=0,
    )
    image = tmp_path / "cam.img"
    manifest = build_image(spec, image, fs)
    big = next(e for e in manifest.entries if e.size == 8 * MIB)
    (tmp_path / "mnt").mkdir()
    with MOUNTERS[fs](image, tmp_path / "mnt") as mounted:
        pid = mounted.fuse_pid
        # no `with`: after the unplug even close() fails (FUSE FLUSH gets ENOTCONN)
        f = open(os.path.join(os.fsencode(mounted.path), big.rel_path), "rb")  # noqa: SIM115
        assert len(f.read(64 * 1024)) == 64 * 1024
        mounted.unplug()
        assert not os.path.exists(f"/proc/{pid}"), "FUSE server killed and reaped"
        with pytest.raises(OSError):
            f.read()
        with pytest.raises(OSError) as closing:
            f.close()
        assert f.closed and closing.value.errno == errno.ENOTCONN
        with pytest.raises(OSError) as listing:
            os.listdir(mounted.path)
        assert listing.value.errno == errno.ENOTCONN
        with pytest.raises(OSError):
            sha256_tree(mounted.path)
    assert not is_mounted(tmp_path / "mnt")
    assert not loop_devices(image)


@pytest.mark.fuse
@pytest.mark.parametrize("fs", ["fat32", "exfat"])
def test_read_write_mount_keeps_evidence(tmp_path: Path, fuse: None, fs: ImageFormat) -> None:
    spec = spec_for(days=2, files_per_day=5, file_size=300 * 1024)
    image = tmp_path / "cam.img"
    manifest = build_image(spec, image, fs)
    (tmp_path / "mnt").mkdir()
    with MOUNTERS[fs](image, tmp_path / "mnt", readonly=False) as mounted:
        (mounted.path / "TIME.TXT").write_text("2025-06-05 09:30:11\n", encoding="ascii")
    with MOUNTERS[fs](image, tmp_path / "mnt") as mounted:
        tree = sha256_tree(mounted.path)
        assert (mounted.path / "TIME.TXT").read_text("ascii") == "2025-06-05 09:30:11\n"
    del tree[b"TIME.TXT"]
    assert tree == {e.rel_path: e.sha256 for e in manifest.entries}


def test_tmpfs_is_real_and_bounded(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (the test suite runs as root)", pytrace=False)
    with tmpfs(tmp_path / "t", 1 * MIB) as path:
        assert is_mounted(path)
        with pytest.raises(OSError) as full, open(path / "fill", "wb") as f:
            f.write(b"\0" * (2 * MIB))
            f.flush()
            os.fsync(f.fileno())
        assert full.value.errno == errno.ENOSPC
    assert not is_mounted(tmp_path / "t")


def test_sha256_tree_is_independent(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.bin").write_bytes(b"abc")
    (tmp_path / "bad\xff".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(b"")
    (tmp_path / "link").symlink_to(tmp_path / "a" / "b" / "x.bin")
    assert sha256_tree(tmp_path) == {
        b"a/b/x.bin": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        b"bad\xff": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
