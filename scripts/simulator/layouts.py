"""Simulated camera layouts other than `generic`: what real cameras write (real-cameras.md).

Test and demo tooling only, used by scripts.simulator.cameras. Each layout turns a CameraSpec
into the files a camera of that family would hold, with, for every file, what a station should
make of it (Expected: kind, start, segment, channel, importance, marker, partner) so a test can
compare what was sealed. The generic layout stays in cameras.py (its output is fixed by seed);
the draws here use their own random stream, so adding a layout changes no other one.

- novatek-cardv: Novatek "CarDV" firmware. `CarDV/Movie/2016_0729_112129_001.MOV`, front/rear
  pairs `..._001_F.MOV` / `..._001_R.MOV`, some `.TS` clips `20251003172400_000001A.TS` (A front,
  B rear), photos in `CarDV/Photo/`, locked (important) clips in `CarDV/Movie/RO/`, `.THM`
  thumbnails beside some clips (partner files). No log: the firmware keeps nothing else on the
  card; it reads `TIMESET.txt` at the root at start-up and deletes it
  (scripts.simulator.firmware). Its names carry no serial, so a site that enrols such a camera
  puts a DEVICE.INF at the card's root (the firmware leaves it alone): `device_file=True`.
- android-dcam: an Android recorder app, one folder `DCIM/Camera/` of
  `DCAM_<camera>_<officer>_<YYYYMMDD>_<HHMMSS>[_IMP].mp4|jpg|m4a`, one name per type per second,
  and the empty `.nomedia` Android puts in such folders.
  Reached over MTP; the simulator writes the directory a FUSE MTP mount (jmtpfs) would show.
- jl-dv16: the disk a "DV16" camera shows after its vendor SCSI unlock: the vendors' reference
  firmware lays it out as the generic layout (RECORD/, `.IMP` markers, DEVICE.INF,
  LOG/SYSTEM.LOG) but keeps no LOG/BATTERY.CSV: the charge is read over SCSI.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scripts.simulator.cameras import CameraSpec

LAYOUTS = ("generic", "novatek-cardv", "android-dcam", "jl-dv16")

_SHIFT_START_S = 7 * 3600
_SHIFT_END_S = 19 * 3600
# A few bytes of a JPEG start: what a thumbnail's content looks like to a file(1) reader.
_THUMB_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"


@dataclass(frozen=True)
class Expected:
    """What a station should make of one file (compared with the sealed row by tests).

    `start` is the recording start as the camera's clock wrote it (camera wall time,
    "YYYY-MM-DDThh:mm:ss", "" when the name carries none); `segment` the number the name
    carries; `channel` the camera channel the name carries ("F", "R", "A", "B" or "");
    `important` a clip marked important (locked folder, name suffix or marker file);
    `marker` a file whose only meaning is to mark another; `partner_of` the clip a partner
    file (thumbnail) belongs to, whose start, segment, channel and importance it shares;
    `ignored` a file the model's profile leaves out (Android's `.nomedia`): accounted for,
    never evidence.
    """

    kind: str  # video | audio | photo | other
    start: str = ""
    segment: int | None = None
    channel: str = ""
    important: bool = False
    marker: bool = False
    partner_of: str = ""
    ignored: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Expected:
        segment = row.get("segment")
        return cls(
            kind=str(row["kind"]),
            start=str(row.get("start", "")),
            segment=None if segment is None else int(segment),
            channel=str(row.get("channel", "")),
            important=bool(row.get("important", False)),
            marker=bool(row.get("marker", False)),
            partner_of=str(row.get("partner_of", "")),
            ignored=bool(row.get("ignored", False)),
        )


@dataclass(frozen=True)
class PlannedFile:
    rel_path: str
    mtime: datetime  # camera clock, even seconds
    size: int = 0
    data: bytes | None = None  # fixed content; None means pseudo-random bytes of `size`
    expect: Expected | None = None


def floor_even(dt: datetime) -> datetime:
    return dt.replace(second=dt.second - dt.second % 2, microsecond=0)


def _even_up(dt: datetime) -> datetime:
    """FAT keeps even seconds: a close time rounded up so it never precedes the start."""
    return dt + timedelta(seconds=dt.second % 2)


@dataclass
class _Rec:
    """One recording of a shift: type, segments, importance, camera start time."""

    index: int
    kind: str  # video | audio | photo
    segments: int
    important: bool
    start: datetime  # camera clock
    seconds: list[int]  # duration of each segment


class _Schedule:
    """Recordings day by day from the layout's own seeded stream (camera clock)."""

    def __init__(self, spec: CameraSpec, layout: str, *, audio: bool, split: bool) -> None:
        self.spec = spec
        self.rng = random.Random(f"{spec.seed}:{layout}")
        self.offset = timedelta(seconds=spec.clock_offset_s)
        self.audio = audio
        self.split = split
        self.index = 0

    def _kind(self, index: int) -> str:
        spec = self.spec
        if spec.photo_every and index % spec.photo_every == 0:
            return "photo"
        if self.audio and spec.audio_every and index % spec.audio_every == 0:
            return "audio"
        return "video"

    def recordings(self) -> list[_Rec]:
        spec, rng = self.spec, self.rng
        out: list[_Rec] = []
        for day_no in range(spec.days):
            day: date = spec.first_day + timedelta(days=day_no)
            midnight = datetime(day.year, day.month, day.day)
            t = midnight + timedelta(seconds=_SHIFT_START_S + rng.randint(0, 1800))
            count = 0
            per_file = (_SHIFT_END_S - _SHIFT_START_S - 3600) / max(1, spec.files_per_day)
            while count < spec.files_per_day:
                self.index += 1
                kind = self._kind(self.index)
                left = spec.files_per_day - count
                split = self.split and bool(spec.split_every) and self.index % spec.split_every == 0
                segments = 3 if split and kind == "video" and left >= 3 else 1
                important = bool(spec.important_every) and self.index % spec.important_every == 0
                limit = max(2, int(per_file / segments) - 4)
                seconds = [
                    0 if kind == "photo" else min(limit, rng.randint(20, 600))
                    for _ in range(segments)
                ]
                cam = (t + self.offset).replace(microsecond=0)
                out.append(_Rec(self.index, kind, segments, important, cam, seconds))
                count += segments
                t += timedelta(seconds=per_file * segments)
        return out


def _check_docked(spec: CameraSpec, files: list[PlannedFile], offset: timedelta) -> None:
    usb = (spec.docked_at + offset).replace(microsecond=0)
    late = [f for f in files if f.mtime > usb]
    if late:
        raise ValueError(
            f"the camera's last file ({max(f.mtime for f in late):%Y-%m-%d %H:%M:%S} camera "
            f"clock) is after docked_at ({usb:%Y-%m-%d %H:%M:%S} camera clock): move first_day "
            "or docked_at"
        )


# --- novatek-cardv --------------------------------------------------------------------------


def _novatek_clip(
    rec: _Rec, seg: int, number: int, start: datetime, *, ts: bool, channel: str
) -> tuple[str, str]:
    """(file name, channel letter in the name) of one Novatek clip."""
    if ts:
        letter = "B" if channel == "R" else "A"
        return f"{start:%Y%m%d%H%M%S}_{number:06d}{letter}.TS", letter
    suffix = f"_{channel}" if channel else ""
    return f"{start:%Y_%m%d_%H%M%S}_{number:03d}{suffix}.MOV", channel


def plan_novatek(spec: CameraSpec) -> list[PlannedFile]:
    """Novatek CarDV: loop clips, front/rear pairs, .TS clips, photos, RO, .THM partners."""
    sched = _Schedule(spec, "novatek-cardv", audio=False, split=True)
    rng = sched.rng
    files: list[PlannedFile] = []
    number = 0
    for rec in sched.recordings():
        if rec.kind == "photo":
            number = number % 999 + 1
            name = f"{rec.start:%Y_%m%d_%H%M%S}_{number:03d}.JPG"
            files.append(
                PlannedFile(
                    f"CarDV/Photo/{name}",
                    floor_even(rec.start),
                    _size(spec, rng),
                    expect=Expected("photo", rec.start.isoformat(), number),
                )
            )
            continue
        ts = rec.index % 5 == 3
        channels = ("F", "R") if rec.index % 4 == 2 else ("",)
        folder = "CarDV/Movie/RO" if rec.important else "CarDV/Movie"
        thumb = not ts and rec.index % 3 == 0
        start = rec.start
        for seg in range(rec.segments):
            number = number % 999 + 1
            end = _even_up(start + timedelta(seconds=rec.seconds[seg]))
            for channel in channels:
                name, letter = _novatek_clip(rec, seg, number, start, ts=ts, channel=channel)
                rel = f"{folder}/{name}"
                files.append(
                    PlannedFile(
                        rel,
                        end,
                        _size(spec, rng),
                        expect=Expected(
                            "video", start.isoformat(), number, letter, important=rec.important
                        ),
                    )
                )
                if thumb:
                    # A partner is its clip's: same start, number, channel and lock.
                    files.append(
                        PlannedFile(
                            rel.rsplit(".", 1)[0] + ".THM",
                            end,
                            data=_THUMB_HEAD + name.encode(),
                            expect=Expected(
                                "other",
                                start.isoformat(),
                                number,
                                letter,
                                important=rec.important,
                                partner_of=rel,
                            ),
                        )
                    )
            # Loop recording: the next clip starts as this one closes.
            start = start + timedelta(seconds=rec.seconds[seg])
    files.extend(_other_files(spec, sched, "CarDV"))
    if spec.device_file:
        first = spec.first_day
        put = datetime(first.year, first.month, first.day, 6) + sched.offset
        files.append(device_file(spec, put))
    _check_docked(spec, files, sched.offset)
    return sorted(files, key=lambda f: f.rel_path)


# --- android-dcam ---------------------------------------------------------------------------

_ANDROID_EXT = {"video": "mp4", "photo": "jpg", "audio": "m4a"}


def plan_android(spec: CameraSpec) -> list[PlannedFile]:
    """An Android recorder app: one folder, one name per type per second, `_IMP` marks."""
    sched = _Schedule(spec, "android-dcam", audio=True, split=False)
    rng = sched.rng
    files: list[PlannedFile] = []
    used: set[tuple[str, datetime]] = set()
    for rec in sched.recordings():
        ext = _ANDROID_EXT[rec.kind]
        start = rec.start
        while (ext, start) in used:  # the app names by the second: never two of a type
            start += timedelta(seconds=1)
        used.add((ext, start))
        end = _even_up(start + timedelta(seconds=rec.seconds[0]))
        imp = "_IMP" if rec.important else ""
        name = f"DCAM_{spec.serial}_{spec.officer_id}_{start:%Y%m%d_%H%M%S}{imp}.{ext}"
        files.append(
            PlannedFile(
                f"DCIM/Camera/{name}",
                end,
                _size(spec, rng),
                expect=Expected(rec.kind, start.isoformat(), important=rec.important),
            )
        )
    files.extend(_other_files(spec, sched, "DCIM/Camera"))
    # Android's marker that a folder is no gallery of the media scanner; empty.
    first = spec.first_day
    files.append(
        PlannedFile(
            "DCIM/Camera/.nomedia",
            floor_even(datetime(first.year, first.month, first.day, 6) + sched.offset),
            data=b"",
            expect=Expected("other", ignored=True),
        )
    )
    _check_docked(spec, files, sched.offset)
    return sorted(files, key=lambda f: f.rel_path)


# --- shared ---------------------------------------------------------------------------------


def _size(spec: CameraSpec, rng: random.Random) -> int:
    jitter = spec.size_jitter
    return max(0, int(spec.file_size * (1 + rng.uniform(-jitter, jitter))))


def _other_files(spec: CameraSpec, sched: _Schedule, folder: str) -> list[PlannedFile]:
    """Text notes whose names match no recording pattern (still evidence: kind other)."""
    out = []
    for i in range(spec.other_files):
        day = spec.first_day + timedelta(days=i % spec.days)
        noon = datetime(day.year, day.month, day.day, 12)
        when = floor_even(noon + sched.offset + timedelta(seconds=sched.rng.randint(0, 3600)))
        name = "NOTES.TXT" if i == 0 else f"NOTES{i + 1}.TXT"
        text = f"officer {spec.officer_id}: note {i + 1} written on the camera\n".encode()
        out.append(PlannedFile(f"{folder}/{name}", when, data=text, expect=Expected("other")))
    return out


def without_battery_log(files: list[PlannedFile]) -> list[PlannedFile]:
    """The generic layout as a jl-dv16 disk shows it: no LOG/BATTERY.CSV (SCSI reads it)."""
    return [f for f in files if f.rel_path != "LOG/BATTERY.CSV"]


def device_file(spec: CameraSpec, when: datetime) -> PlannedFile:
    """A DEVICE.INF as camera-layout.md has it (written by the site where the firmware writes
    none), dated `when` (camera clock)."""
    info = (
        f"serial={spec.serial}\nvendor={spec.vendor}\nmodel={spec.model}\n"
        f"firmware={spec.firmware}\nofficer_id={spec.officer_id}\nunit={spec.unit}\n"
    ).encode()
    return PlannedFile("DEVICE.INF", floor_even(when), data=info, expect=Expected("other"))
