"""Camera simulator: writes a body camera in the `generic` layout (shared/specs/camera-layout.md)
or in one of the real cameras' layouts (scripts.simulator.layouts).

Test and demo tooling only: it builds a directory or a FAT32/exFAT image (mkfs, mtools, loop and
FUSE mounts) and a manifest with every file's sha256 and what a station should make of it. The
daemon pipeline must never import it, and it must never be pointed at a real camera or disk: it
creates and overwrites what it is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Literal, NamedTuple, get_args

from scripts.simulator.layouts import (
    LAYOUTS,
    Expected,
    PlannedFile,
    plan_android,
    plan_novatek,
    without_battery_log,
)

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

BatteryMode = Literal["healthy", "faded", "hot", "garbled"]
ImageFormat = Literal["fat32", "exfat"]
BATTERY_MODES: tuple[str, ...] = get_args(BatteryMode)
IMAGE_FORMATS: tuple[str, ...] = get_args(ImageFormat)

FAT32_MAX_FILE = 4 * GIB - 1
SHIFT_START_S = 7 * 3600  # recordings spread between 07:00 and 19:00 (true time)
SHIFT_END_S = 19 * 3600
MIN_SLOT_PER_FILE_S = 8  # below this a day's recordings no longer fit the shift
BATTERY_SAMPLE_EVERY_S = 600
BATTERY_HEADER = (
    "time,percent,voltage_mv,current_ma,temperature_c,cycle_count,full_charge_mah,design_mah"
)
LOG_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_CHUNK = MIB
_SLACK_UNIT = 32 * KIB  # default exFAT cluster for the image sizes we make: a file's minimum
_MOUNT_TIMEOUT_S = 15.0
_FORBIDDEN_IN_FIELDS = ("/", "\x00", "\r", "\n")


class ImageError(RuntimeError):
    """A tool (mkfs, mcopy, losetup, mount) failed while building an image."""


def _default_first_day() -> date:
    return date.today() - timedelta(days=3)


def _default_docked_at() -> datetime:
    return datetime.now().replace(microsecond=0)


@dataclass(frozen=True)
class CameraSpec:
    """What to simulate. Times are naive local wall time; `docked_at` is true (station) time."""

    serial: str = "CAM0001"
    officer_id: str = "100234"
    vendor: str = "Generic"
    model: str = "BWC-1"
    firmware: str = "1.0.0"
    unit: str = "UNIT-01"
    days: int = 3
    files_per_day: int = 20  # media files (segments count one each) per day
    file_size: int = 256 * KIB
    size_jitter: float = 0.5  # sizes vary uniformly by +- this fraction
    large_files: int = 0  # this many video files (chosen by seed) get exactly large_size bytes
    large_size: int = 64 * MIB
    split_every: int = 5  # every Nth recording is split into 3 consecutive segments; 0 = never
    important_every: int = 7  # every Nth recording gets .IMP markers; 0 = never
    other_files: int = 1  # files under RECORD/<date>/ whose names match no pattern
    clock_offset_s: float = 0.0  # camera clock minus true time
    first_day: date = field(default_factory=_default_first_day)
    docked_at: datetime = field(default_factory=_default_docked_at)
    audio_every: int = 6  # every Nth recording is a WAV; 0 = never
    photo_every: int = 9  # every Nth recording is a JPG (takes precedence over audio); 0 = never
    seed: int = 1
    battery: BatteryMode = "healthy"
    layout: str = "generic"  # one of LAYOUTS
    # novatek-cardv: a DEVICE.INF the site put at the root (its firmware writes none). The
    # generic and jl-dv16 layouts always have theirs; android-dcam has none.
    device_file: bool = False

    def __post_init__(self) -> None:
        self._check_text_fields()
        self._check_counts()
        self._check_ranges()

    def _check_text_fields(self) -> None:
        """The identity fields end up in file names and key=value lines."""
        for name in ("serial", "officer_id", "vendor", "model", "firmware", "unit"):
            value = getattr(self, name)
            if any(ch in value for ch in _FORBIDDEN_IN_FIELDS):
                raise ValueError(f"{name} must not contain '/', NUL or line breaks: {value!r}")
        if not self.serial:
            raise ValueError("serial must not be empty")

    def _check_counts(self) -> None:
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        counts = (
            "files_per_day",
            "file_size",
            "large_files",
            "large_size",
            "split_every",
            "important_every",
            "other_files",
            "audio_every",
            "photo_every",
        )
        for name in counts:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.files_per_day > 9999:
            raise ValueError("files_per_day must be <= 9999 (NNNN counts per day)")
        if self.files_per_day * MIN_SLOT_PER_FILE_S > SHIFT_END_S - SHIFT_START_S - 3600:
            raise ValueError(f"files_per_day={self.files_per_day} do not fit in one shift")

    def _check_ranges(self) -> None:
        if not 0.0 <= self.size_jitter < 1.0:
            raise ValueError(f"size_jitter must be in [0, 1), got {self.size_jitter}")
        if not math.isfinite(self.clock_offset_s):
            raise ValueError("clock_offset_s must be finite")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
        if self.battery not in BATTERY_MODES:
            raise ValueError(f"battery must be one of {', '.join(BATTERY_MODES)}")
        if self.docked_at.tzinfo is not None:
            raise ValueError("docked_at must be naive local time")


class ManifestEntry(NamedTuple):
    rel_path: bytes  # below the camera root, '/'-separated
    size: int
    sha256: str
    mtime: int  # seconds since the epoch, as set on the file (even: FAT resolution)


@dataclass(frozen=True)
class Manifest:
    """Every regular file the simulator wrote, sorted by path, and what a station should make of
    each (`expected`, by path: kind, start, segment, channel, importance, marker, partner)."""

    entries: tuple[ManifestEntry, ...]
    expected: tuple[tuple[bytes, Expected], ...] = ()
    layout: str = "generic"

    def expectations(self) -> dict[bytes, Expected]:
        return dict(self.expected)

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    def by_path(self) -> dict[bytes, ManifestEntry]:
        return {e.rel_path: e for e in self.entries}

    def to_json(self) -> str:
        expected = self.expectations()
        rows = []
        for e in self.entries:
            row: dict[str, object] = {
                "path": e.rel_path.decode("utf-8", "surrogateescape"),
                "size": e.size,
                "sha256": e.sha256,
                "mtime": e.mtime,
            }
            if e.rel_path in expected:
                row["expect"] = expected[e.rel_path].as_dict()
            rows.append(row)
        data = {"version": 1, "layout": self.layout, "entries": rows}
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a simulator manifest (version 1)")
        entries = tuple(
            ManifestEntry(
                rel_path=str(row["path"]).encode("utf-8", "surrogateescape"),
                size=int(row["size"]),
                sha256=str(row["sha256"]),
                mtime=int(row["mtime"]),
            )
            for row in data["entries"]
        )
        expected = tuple(
            sorted(
                (
                    str(row["path"]).encode("utf-8", "surrogateescape"),
                    Expected.from_dict(row["expect"]),
                )
                for row in data["entries"]
                if "expect" in row
            )
        )
        layout = str(data.get("layout", "generic"))
        return cls(entries=tuple(sorted(entries)), expected=expected, layout=layout)


# --- planning -------------------------------------------------------------------------------


_PlannedFile = PlannedFile

_GENERIC_KINDS = {"MP4": "video", "WAV": "audio", "JPG": "photo"}


@dataclass
class _Media:
    rel_path: str
    end: datetime
    ext: str
    size: int = 0


def _floor_second(dt: datetime) -> datetime:
    return dt.replace(microsecond=0)


def _floor_even(dt: datetime) -> datetime:
    return dt.replace(second=dt.second - dt.second % 2, microsecond=0)


def _epoch(dt: datetime) -> int:
    """Naive local wall time to epoch seconds (how a FAT driver reads a zone-less time)."""
    return int(dt.timestamp())


def _ext_for(index: int, spec: CameraSpec) -> str:
    if spec.photo_every and index % spec.photo_every == 0:
        return "JPG"
    if spec.audio_every and index % spec.audio_every == 0:
        return "WAV"
    return "MP4"


def _battery_profile(mode: str) -> tuple[int, int, int]:
    """(cycle_count, full_charge_mah, design_mah) for a battery mode."""
    return {
        "healthy": (180, 2910, 3000),
        "faded": (1150, 1690, 3000),
        "hot": (420, 2740, 3000),
        "garbled": (640, 2480, 3000),
    }[mode]


def _garble(row: str, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # truncated mid-write
        return row[: rng.randint(1, row.rfind(","))].encode()  # at least one field lost
    if kind == 1:  # flash garbage
        return bytes(rng.choice(b"\x00\xff\xfe?#") for _ in range(rng.randint(4, 24)))
    if kind == 2:  # fields lost
        return row.split(",", 1)[0].encode() + b",,,"
    return b""


def _plan(spec: CameraSpec) -> list[_PlannedFile]:
    """Every file of the simulated camera, sorted by path: recordings, markers, notes, logs."""
    if spec.layout == "novatek-cardv":
        return plan_novatek(spec)
    if spec.layout == "android-dcam":
        return plan_android(spec)
    planned = _Planner(spec).plan()
    return without_battery_log(planned) if spec.layout == "jl-dv16" else planned


class _Planner:
    """One camera's schedule, day by day, from one seeded random stream.

    The order of the random draws is part of the output: the same seed must give the same
    camera, so the draws happen in the order the days, recordings and samples are laid out.
    """

    def __init__(self, spec: CameraSpec) -> None:
        self.spec = spec
        self.rng = random.Random(f"{spec.seed}:schedule")
        self.offset = timedelta(seconds=spec.clock_offset_s)
        self.events: list[tuple[datetime, str]] = []
        self.battery_rows: list[bytes] = [BATTERY_HEADER.encode()]
        self.files: list[_PlannedFile] = []
        self.media: list[_Media] = []
        self.counters: dict[str, int] = {}
        self.cycles, self.full_mah, self.design_mah = _battery_profile(spec.battery)
        self.low_day = self.rng.randrange(spec.days)
        self.index = 0
        self.first_boot: datetime | None = None
        self.end_pct = 100
        self.temperature = 25.0
        # What a station should make of each file, by path (no random draw depends on it).
        self.expect: dict[str, Expected] = {}

    def cam(self, true_dt: datetime) -> datetime:
        """A true time as the camera's clock reads it."""
        return _floor_second(true_dt + self.offset)

    def plan(self) -> list[_PlannedFile]:
        for day_no in range(self.spec.days):
            self._day(day_no)
        self._sizes()
        self._other_files()
        self._metadata()
        files = [
            dataclasses.replace(f, expect=self.expect.get(f.rel_path, Expected("other")))
            for f in self.files
        ]
        return sorted(files, key=lambda f: f.rel_path)

    def _day(self, day_no: int) -> None:
        spec, rng = self.spec, self.rng
        day = spec.first_day + timedelta(days=day_no)
        midnight = datetime(day.year, day.month, day.day)
        recs = self._recordings()
        count = sum(segments for _, segments, _ in recs)
        shift_start = midnight + timedelta(seconds=SHIFT_START_S + rng.randint(0, 1800))
        shift_end = midnight + timedelta(seconds=SHIFT_END_S - rng.randint(0, 1800))
        boot = self.cam(shift_start - timedelta(seconds=rng.randint(60, 600)))
        self.first_boot = self.first_boot or boot
        self.events.append((boot, "BOOT"))
        # Each recording gets a slot of the shift in proportion to its files.
        per_file = (shift_end - shift_start).total_seconds() / max(1, count)
        is_low = spec.battery == "faded" or day_no == self.low_day
        day_end = boot + timedelta(hours=10)
        slot_start = 0.0
        for i, (ext, segments, important) in enumerate(recs):
            usable = per_file * segments - 2
            start_off = int(rng.uniform(0, usable * 0.25))
            per_seg_max = max(2, int((usable - start_off - 2 * (segments - 1)) / segments) - 1)
            t = self.cam(shift_start + timedelta(seconds=slot_start + start_off))
            slot_start += per_file * segments
            day_end = self._recording(
                t, ext, segments, important, per_seg_max, interrupted=is_low and i == len(recs) - 1
            )
        self._battery_day(boot, day_end, is_low)

    def _recordings(self) -> list[tuple[str, int, bool]]:
        """One day's recordings as (extension, segments, important), files_per_day files."""
        spec = self.spec
        recs: list[tuple[str, int, bool]] = []
        count = 0
        while count < spec.files_per_day:
            self.index += 1
            ext = _ext_for(self.index, spec)
            left = spec.files_per_day - count
            split = bool(spec.split_every) and self.index % spec.split_every == 0
            segments = 3 if split and ext != "JPG" and left >= 3 else 1
            important = bool(spec.important_every) and self.index % spec.important_every == 0
            recs.append((ext, segments, important))
            count += segments
        return recs

    def _recording(
        self,
        t: datetime,
        ext: str,
        segments: int,
        important: bool,
        per_seg_max: int,
        *,
        interrupted: bool,
    ) -> datetime:
        """One recording's segments from camera time t, with their log events; returns its end.

        An interrupted recording is the day's last: the battery gives out during it.
        """
        rng = self.rng
        lo, hi = (30, 900) if ext == "WAV" else (20, 600)
        for seg in range(segments):
            if seg:
                t = t + timedelta(seconds=rng.randint(1, 2))
            duration = 0 if ext == "JPG" else max(2, min(per_seg_max, rng.randint(lo, hi)))
            end = t + timedelta(seconds=duration)
            if end.second % 2:
                end += timedelta(seconds=1)
            day_dir = t.strftime("%Y%m%d")
            self.counters[day_dir] = self.counters.get(day_dir, 0) + 1
            name = (
                f"{self.spec.serial}_{self.spec.officer_id}_{t.strftime('%Y%m%d%H%M%S')}"
                f"_{self.counters[day_dir]:04d}.{ext}"
            )
            rel = f"RECORD/{day_dir}/{name}"
            self.events.append((t, f"REC_START file={name}"))
            if interrupted and seg == segments - 1:
                self.events.append((end, f"REC_INTERRUPT reason=battery file={name}"))
            self.events.append((end, f"REC_STOP file={name}"))
            self.media.append(_Media(rel_path=rel, end=end, ext=ext))
            self.expect[rel] = Expected(
                _GENERIC_KINDS[ext], t.isoformat(), self.counters[day_dir], important=important
            )
            if important:
                stem = rel.rsplit(".", 1)[0]
                self.files.append(_PlannedFile(rel_path=f"{stem}.IMP", mtime=end, data=b""))
                self.expect[f"{stem}.IMP"] = Expected("other", marker=True)
            t = end
        return t

    def _battery_day(self, boot: datetime, day_end: datetime, is_low: bool) -> None:
        """The day's battery samples and LOW_BATTERY events, from boot to the last recording."""
        spec, rng = self.spec, self.rng
        start_pct = 100 if spec.battery != "faded" else 97
        if is_low:
            self.end_pct = 3
        elif spec.battery == "hot":
            self.end_pct = rng.randint(25, 45)
        else:
            self.end_pct = rng.randint(32, 55)
        end_pct = self.end_pct
        span = max(1.0, (day_end - boot).total_seconds())
        for threshold in (20, 10):
            if end_pct <= threshold < start_pct:
                frac = (start_pct - threshold) / (start_pct - end_pct)
                self.events.append(
                    (boot + timedelta(seconds=int(span * frac)), f"LOW_BATTERY percent={threshold}")
                )
        sample_times = [
            boot + timedelta(seconds=s) for s in range(0, int(span), BATTERY_SAMPLE_EVERY_S)
        ] + [day_end]
        for st in sample_times:
            frac = (st - boot).total_seconds() / span
            pct = round(start_pct - (start_pct - end_pct) * frac)
            if spec.battery == "hot":
                self.temperature = 31.0 + 33.0 * frac + rng.uniform(-1.5, 1.5)
            else:
                self.temperature = 24.0 + 12.0 * frac + rng.uniform(-1.0, 1.0)
            row = (
                f"{st.strftime(LOG_TIME_FORMAT)},{pct},{3400 + 8 * pct + rng.randint(-15, 15)},"
                f"{-rng.randint(350, 1150)},{self.temperature:.1f},{self.cycles},"
                f"{self.full_mah},{self.design_mah}"
            )
            # Only a garbled battery takes this draw: the other modes' streams never held it.
            if spec.battery == "garbled" and (
                len(self.battery_rows) in (2, 7) or rng.random() < 0.1
            ):
                self.battery_rows.append(_garble(row, rng))
            else:
                self.battery_rows.append(row.encode())
        self.cycles += 1

    def _sizes(self) -> None:
        """Sizes: jittered, and `large_files` videos (chosen by seed) exactly large_size."""
        spec, rng = self.spec, self.rng
        jitter = spec.size_jitter
        for m in self.media:
            m.size = max(0, int(spec.file_size * (1 + rng.uniform(-jitter, jitter))))
        pool = [m for m in self.media if m.ext == "MP4"]
        if len(pool) < spec.large_files:
            pool = [m for m in self.media if m.ext != "JPG"]
        if len(pool) < spec.large_files:
            raise ValueError(f"large_files={spec.large_files} but only {len(pool)} recordings")
        for m in rng.sample(pool, spec.large_files):
            m.size = spec.large_size
        self.files.extend(
            _PlannedFile(rel_path=m.rel_path, mtime=m.end, size=m.size) for m in self.media
        )

    def _other_files(self) -> None:
        """Text notes under RECORD/<date>/ whose names match no recording pattern."""
        spec = self.spec
        for i in range(spec.other_files):
            day = spec.first_day + timedelta(days=i % spec.days)
            noon = datetime(day.year, day.month, day.day, 12)
            when = _floor_even(self.cam(noon + timedelta(seconds=self.rng.randint(0, 3600))))
            name = "NOTES.TXT" if i == 0 else f"NOTES{i + 1}.TXT"
            text = f"officer {spec.officer_id}: note {i + 1} written on the camera\n".encode()
            self.files.append(
                _PlannedFile(
                    rel_path=f"RECORD/{when.strftime('%Y%m%d')}/{name}", mtime=when, data=text
                )
            )

    def _metadata(self) -> None:
        """DEVICE.INF, the system log and the battery log, ending at the USB connection."""
        spec = self.spec
        usb = self.cam(spec.docked_at)
        events = self.events
        events.sort(key=lambda ev: ev[0])  # stable: REC_INTERRUPT stays before its REC_STOP
        if events and events[-1][0] > usb:
            raise ValueError(
                f"the camera's last event ({events[-1][0]:%Y-%m-%d %H:%M:%S} camera clock) is "
                f"after docked_at ({usb:%Y-%m-%d %H:%M:%S} camera clock): move first_day or "
                "docked_at"
            )
        events.append((usb, "USB_CONNECT"))
        log = "".join(f"{t.strftime(LOG_TIME_FORMAT)} {text}\n" for t, text in events).encode()
        self.battery_rows.append(
            f"{usb.strftime(LOG_TIME_FORMAT)},{self.end_pct},{3400 + 8 * self.end_pct},1450,"
            f"{self.temperature:.1f},{self.cycles},{self.full_mah},{self.design_mah}".encode()
        )
        battery = b"\n".join(self.battery_rows) + b"\n"
        info = (
            f"serial={spec.serial}\nvendor={spec.vendor}\nmodel={spec.model}\n"
            f"firmware={spec.firmware}\nofficer_id={spec.officer_id}\nunit={spec.unit}\n"
        ).encode()
        if self.first_boot is None:  # days >= 1 is validated; this keeps the type checker informed
            raise ValueError("no day to simulate")
        boot_time = _floor_even(self.first_boot)
        self.files.append(_PlannedFile(rel_path="DEVICE.INF", mtime=boot_time, data=info))
        self.files.append(_PlannedFile(rel_path="LOG/SYSTEM.LOG", mtime=_floor_even(usb), data=log))
        self.files.append(
            _PlannedFile(rel_path="LOG/BATTERY.CSV", mtime=_floor_even(usb), data=battery)
        )


# --- writing --------------------------------------------------------------------------------


def _write_file(path: Path, planned: _PlannedFile, seed: int) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        if planned.data is not None:
            out.write(planned.data)
            digest.update(planned.data)
            size = len(planned.data)
        else:
            content = random.Random(f"{seed}:{planned.rel_path}")
            while size < planned.size:
                piece = content.randbytes(min(_CHUNK, planned.size - size))
                out.write(piece)
                digest.update(piece)
                size += len(piece)
    mtime_ns = _epoch(planned.mtime) * 1_000_000_000
    os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
    return size, digest.hexdigest()


def write_camera(spec: CameraSpec, root: Path) -> Manifest:
    """Write the camera's volume content into directory `root` (created; must be empty)."""
    root = Path(root)
    if root.exists():
        if not root.is_dir() or any(p.name != "lost+found" for p in root.iterdir()):
            raise FileExistsError(f"{root} exists and is not an empty directory")
    else:
        root.mkdir(parents=True)
    planned = _plan(spec)
    entries: list[ManifestEntry] = []
    expected: list[tuple[bytes, Expected]] = []
    dir_mtimes: dict[Path, int] = {}
    for item in planned:
        if item.expect is not None:
            expected.append((os.fsencode(item.rel_path), item.expect))
        path = root / item.rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        size, sha = _write_file(path, item, spec.seed)
        mtime = _epoch(item.mtime)
        entries.append(ManifestEntry(os.fsencode(item.rel_path), size, sha, mtime))
        parent = path.parent
        while parent != root:
            dir_mtimes[parent] = max(dir_mtimes.get(parent, mtime), mtime)
            parent = parent.parent
    for directory in sorted(dir_mtimes, key=lambda p: len(p.parts), reverse=True):
        os.utime(directory, (dir_mtimes[directory], dir_mtimes[directory]))
    return Manifest(
        entries=tuple(sorted(entries)),
        expected=tuple(sorted(expected, key=lambda p: p[0])),
        layout=spec.layout,
    )


# --- images ---------------------------------------------------------------------------------


def _run(cmd: Sequence[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        list(cmd), stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False
    )
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-2000:]
        raise ImageError(f"{cmd[0]} failed with exit code {proc.returncode}: {err}")
    return proc.stdout.decode(errors="replace")


def _is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point == target:
                return True
    return False


def _default_image_size(manifest: Manifest) -> int:
    content = sum(-(-max(e.size, 1) // _SLACK_UNIT) * _SLACK_UNIT for e in manifest.entries)
    return -(-(int(content * 1.2) + 64 * MIB) // MIB) * MIB


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy files with their mtimes (shutil.copy2 semantics), then the directories' mtimes."""
    dirs: list[tuple[Path, Path]] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        here = Path(dirpath)
        target = dst / here.relative_to(src)
        if here != src:
            target.mkdir()
            dirs.append((here, target))
        for name in sorted(filenames):
            shutil.copy2(here / name, target / name)
    for source_dir, target_dir in reversed(dirs):
        st = os.stat(source_dir)
        os.utime(target_dir, ns=(st.st_atime_ns, st.st_mtime_ns))


def _make_fat32(src: Path, image: Path, volume_id: str) -> None:
    # No -n: a label would be a volume-label directory entry, which fusefat shows as a file.
    _run(["mkfs.vfat", "-F", "32", "-i", volume_id, str(image)])
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    tops = [str(src / name) for name in sorted(os.listdir(src))]
    if tops:
        _run(["mcopy", "-s", "-m", "-Q", "-i", str(image), *tops, "::/"], env=env)


def _wait_mounted(mnt: Path, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + _MOUNT_TIMEOUT_S
    while not _is_mounted(mnt):
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            tail = log.read()[-2000:].decode(errors="replace").strip()
            raise ImageError(f"{proc.args!r} did not mount {mnt}: {tail}")
        time.sleep(0.02)


def _make_exfat(src: Path, image: Path, mnt: Path) -> None:
    _run(["mkfs.exfat", str(image)])
    loop = ""
    proc: subprocess.Popen[bytes] | None = None
    mnt.mkdir()
    with tempfile.TemporaryFile(mode="a+b") as log:  # append: the server shares the offset
        try:
            loop = _run(["losetup", "--find", "--show", str(image)]).strip()
            # -d: exfat-fuse has no -f; -d keeps it in the foreground (with debug output), so we
            # own the server's pid and can wait for it to finish after the unmount.
            proc = subprocess.Popen(
                ["mount.exfat-fuse", "-d", loop, str(mnt)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            _wait_mounted(mnt, proc, log)
            _copy_tree(src, mnt)
            os.sync()
            _run(["umount", str(mnt)])
            proc.wait(timeout=60)
        finally:
            if _is_mounted(mnt):
                umount = subprocess.run(["umount", str(mnt)], capture_output=True, check=False)
                if umount.returncode != 0:
                    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
            if proc is not None and proc.poll() is None:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if loop:
                subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)


def build_image(
    spec: CameraSpec, image: Path, fs: ImageFormat, size_bytes: int | None = None
) -> Manifest:
    """Write the camera into a FAT32 or exFAT image file (created or overwritten).

    The default size is the content (each file rounded up to 32 KiB) * 1.2 + 64 MiB, rounded up
    to MiB. FAT32 needs no privileges; exFAT needs root (loop device and FUSE mount).
    """
    if fs not in IMAGE_FORMATS:
        raise ValueError(f"fs must be one of {', '.join(IMAGE_FORMATS)}, got {fs!r}")
    image = Path(image)
    try:
        st = os.lstat(image)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode):
            raise FileExistsError(f"{image} exists and is not a regular file; refusing")
    image.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{image.name}.", suffix=".sim", dir=image.parent))
    created = False
    done = False
    try:
        manifest = write_camera(spec, work / "root")
        if fs == "fat32":
            too_big = [e for e in manifest.entries if e.size > FAT32_MAX_FILE]
            if too_big:
                raise ValueError(f"{len(too_big)} files exceed the FAT32 limit of 4 GiB - 1")
        size = size_bytes if size_bytes is not None else _default_image_size(manifest)
        with open(image, "wb") as f:
            created = True
            f.truncate(size)
        if fs == "fat32":
            volume_id = hashlib.sha256(f"{spec.serial}:{spec.seed}".encode()).hexdigest()[:8]
            _make_fat32(work / "root", image, volume_id)
        else:
            _make_exfat(work / "root", image, work / "mnt")
        done = True
        return manifest
    finally:
        mnt = work / "mnt"
        if mnt.exists() and _is_mounted(mnt):  # never let rmtree walk into the image
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
        if not (mnt.exists() and _is_mounted(mnt)):
            shutil.rmtree(work, ignore_errors=True)
        if created and not done:
            image.unlink(missing_ok=True)


# --- command line ---------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*([0-9]+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'256K', '64M', '1G', '4096' -> bytes (binary multiples)."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 4096, 256K, 64M, 2G)")
    factor = {"": 1, "K": KIB, "M": MIB, "G": GIB, "T": 1 << 40}[m.group(2).upper()]
    return int(m.group(1)) * factor


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from exc


def _datetime_arg(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time 'YYYY-MM-DD hh:mm:ss': {text!r}") from exc
    if value.tzinfo is not None:
        raise argparse.ArgumentTypeError("give naive local time, without a zone")
    return value


def _parser() -> argparse.ArgumentParser:
    d = CameraSpec(first_day=date(2000, 1, 1), docked_at=datetime(2000, 1, 5))
    p = argparse.ArgumentParser(
        prog="simulate-camera",
        description="Write a simulated body camera (generic or a real camera's layout) as a "
        "directory or an image. "
        "Test and demo tooling: never point it at a real device.",
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        required=True,
        type=Path,
        help="directory (format dir, must be empty or absent) or image file",
    )
    p.add_argument("--format", choices=("dir", *IMAGE_FORMATS), default="dir")
    p.add_argument(
        "--image-size",
        metavar="SIZE",
        type=_size_arg,
        default=None,
        help="image size (default: content * 1.2 + 64M)",
    )
    p.add_argument(
        "--manifest",
        metavar="FILE.json",
        type=Path,
        default=None,
        help="write the manifest JSON here",
    )
    p.add_argument("--serial", metavar="SERIAL", default=d.serial)
    p.add_argument(
        "--officer", metavar="ID", default=d.officer_id, help="officer id (badge number)"
    )
    p.add_argument("--vendor", metavar="TEXT", default=d.vendor)
    p.add_argument("--model", metavar="TEXT", default=d.model)
    p.add_argument("--firmware", metavar="TEXT", default=d.firmware)
    p.add_argument("--unit", metavar="TEXT", default=d.unit)
    p.add_argument("--days", metavar="N", type=int, default=d.days)
    p.add_argument("--files-per-day", metavar="N", type=int, default=d.files_per_day)
    p.add_argument(
        "--file-size", metavar="SIZE", type=_size_arg, default=d.file_size, help="e.g. 256K"
    )
    p.add_argument("--size-jitter", metavar="FRACTION", type=float, default=d.size_jitter)
    p.add_argument("--large-files", metavar="N", type=int, default=d.large_files)
    p.add_argument(
        "--large-size", metavar="SIZE", type=_size_arg, default=d.large_size, help="e.g. 64M"
    )
    p.add_argument("--split-every", metavar="N", type=int, default=d.split_every)
    p.add_argument("--important-every", metavar="N", type=int, default=d.important_every)
    p.add_argument("--other-files", metavar="N", type=int, default=d.other_files)
    p.add_argument("--audio-every", metavar="N", type=int, default=d.audio_every)
    p.add_argument("--photo-every", metavar="N", type=int, default=d.photo_every)
    p.add_argument(
        "--clock-offset",
        metavar="SECONDS",
        type=float,
        default=d.clock_offset_s,
        help="camera clock minus true time, seconds",
    )
    p.add_argument(
        "--first-day",
        metavar="YYYY-MM-DD",
        type=_date_arg,
        default=None,
        help="YYYY-MM-DD (default: DAYS days before the docking day)",
    )
    p.add_argument(
        "--docked-at",
        metavar="'YYYY-MM-DD hh:mm:ss'",
        type=_datetime_arg,
        default=None,
        help="true local time of docking 'YYYY-MM-DD hh:mm:ss' (default: now)",
    )
    p.add_argument("--battery", choices=BATTERY_MODES, default=d.battery)
    p.add_argument(
        "--device-file",
        action="store_true",
        help="novatek-cardv: add the DEVICE.INF a site puts on the card at enrolment",
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default=d.layout,
        help="the camera family whose folders and names to write (default: generic)",
    )
    p.add_argument("--seed", metavar="N", type=int, default=d.seed)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    docked_at: datetime = args.docked_at or _default_docked_at()
    first_day: date = args.first_day or (docked_at.date() - timedelta(days=args.days))
    try:
        spec = CameraSpec(
            serial=args.serial,
            officer_id=args.officer,
            vendor=args.vendor,
            model=args.model,
            firmware=args.firmware,
            unit=args.unit,
            days=args.days,
            files_per_day=args.files_per_day,
            file_size=args.file_size,
            size_jitter=args.size_jitter,
            large_files=args.large_files,
            large_size=args.large_size,
            split_every=args.split_every,
            important_every=args.important_every,
            other_files=args.other_files,
            clock_offset_s=args.clock_offset,
            first_day=first_day,
            docked_at=docked_at,
            audio_every=args.audio_every,
            photo_every=args.photo_every,
            seed=args.seed,
            battery=args.battery,
            layout=args.layout,
            device_file=args.device_file,
        )
        if args.format == "dir":
            manifest = write_camera(spec, args.out)
        else:
            manifest = build_image(spec, args.out, args.format, args.image_size)
        if args.manifest is not None:
            args.manifest.write_text(manifest.to_json(), encoding="utf-8")
    except (ValueError, OSError, ImageError) as exc:
        print(f"simulate-camera: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{spec.serial}: {len(manifest.entries)} files, {manifest.total_bytes} bytes -> "
        f"{args.out} ({args.format})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
