"""The data of a camera profile and what a file's name says by it (agent.camera.profile loads).

`Profile` names a model's hardware (USB ids, label), how it is reached, named, clocked and
charged (agent.camera.methods), and its `Layout`: the folders that hold its recordings, which
names are which kind, what a name says (start, segment, channel, serial, officer), what marks a
recording important, which files belong to a clip, and which are ignored. Older code reads the
version 1 names (device_info, record_dir, time_file...): they are properties derived here.

Pure: every pattern is RE2 (agent.camera.patterns), linear in the name; nothing is opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from agent.camera.methods import BatterySpec, ClockSpec, UnlockSpec
from agent.camera.patterns import Glob, Pattern
from agent.core.model import FileKind

DEFAULT_START_FORMAT = "%Y%m%d%H%M%S"
# Longest text a name's group may hand on: strptime and int() see no more (a camera's name is at
# most 255 bytes, NAME_MAX; a hostile one may be far longer).
_MAX_FIELD = 64
_MAX_SEGMENT_DIGITS = 9


@dataclass(frozen=True, slots=True)
class NameInfo:
    """What a file's name alone says, by the profile."""

    kind: FileKind
    recorded_start: str  # camera wall time "YYYY-MM-DDThh:mm:ss", or ""
    segment: int | None
    stem: bytes
    is_marker: bool  # a sidecar marker file (`<stem>.IMP`): marks its stem important
    channel: str = ""  # which lens of a multi-channel camera ("F", "R", "A"...), or ""
    serial: str = ""  # the camera serial the name carries, or ""
    officer: str = ""  # the officer the name carries, or ""
    suffix_marked: bool = False  # the name carries an importance suffix (`_IMP`)
    named: bool = False  # one of the profile's name patterns matched


@dataclass(frozen=True)
class NameRule:
    """One name pattern: RE2 with named groups serial, officer, start (or date and time),
    segment, channel; `start_format` (strptime) reads start, or date and time joined."""

    pattern: Pattern
    start_format: str = DEFAULT_START_FORMAT
    whole: bool = True  # version 1 patterns match a prefix (Python's re.match) unless anchored


@dataclass(frozen=True)
class Layout:
    """Where the recordings are and what their names say."""

    roots: tuple[str, ...]  # folders below the volume root holding evidence (wipeable)
    kinds: tuple[tuple[FileKind, Glob], ...] = ()  # first glob matching the name gives the kind
    names: tuple[NameRule, ...] = ()
    ignore: tuple[Glob, ...] = ()  # accounted for as ignored, never copied, never wiped
    marker_folders: tuple[str, ...] = ()  # recordings in (or below) these are important
    marker_suffixes: tuple[str, ...] = ()  # a stem ending in one (any case) is important
    marker_sidecars: tuple[str, ...] = ()  # upper-case extensions of `<stem>.<EXT>` markers
    partners: tuple[str, ...] = ()  # upper-case extensions of files belonging to a clip
    # Version 1: a file no name pattern matches is "other", whatever its extension.
    kind_needs_name: bool = False


@dataclass(frozen=True)
class Profile:
    name: str
    layout: Layout
    format: int = 1
    usb_ids: frozenset[str] = frozenset()
    label_pattern: Pattern | None = None
    timezone: str = ""
    transport: str = "ums"  # one of methods.TRANSPORTS
    unlock: UnlockSpec | None = None  # for transport "ums-unlock"
    identity: tuple[str, ...] = ("file",)  # methods.IDENTITY_SOURCES, in order
    identity_file: str = "DEVICE.INF"  # for the "file" source, below the volume root
    clock: ClockSpec = field(default_factory=ClockSpec)
    battery: BatterySpec = field(default_factory=BatterySpec)
    system_log: str = ""  # below the volume root, "" = the camera keeps none
    # The camera keeps a small file the station writes at its root (agent.camera.binding).
    binding: bool = False
    source: str = ""  # where it was loaded from, for messages

    # ---- the version 1 names, derived: what other code has always read -------------------

    @property
    def device_info(self) -> str:
        return self.identity_file

    @property
    def record_dir(self) -> str:
        return self.layout.roots[0] if self.layout.roots else ""

    @property
    def battery_log(self) -> str:
        return self.battery.path if self.battery.source.startswith("log:") else ""

    @property
    def time_file(self) -> str:
        return self.clock.path if self.clock.file_format else ""

    @property
    def clock_threshold_s(self) -> int:
        return self.clock.threshold_s

    @property
    def metadata(self) -> frozenset[str]:
        """The files the station itself reads or writes: never recordings, never wiped."""
        paths = (self.identity_file, self.system_log, self.battery_log, self.time_file)
        return frozenset(p for p in paths if p)

    def matches_hardware(self, vendor_id: str, model_id: str, fs_label: str) -> bool:
        """Does a USB device's identity fit this profile (ids, and label where one is set)?"""
        if f"{vendor_id.lower()}:{model_id.lower()}" not in self.usb_ids:
            return False
        return self.label_pattern is None or self.label_pattern.fullmatch(fs_label) is not None

    def classify(self, filename: bytes) -> NameInfo:
        """What a file's name says: kind, recording start (camera clock), segment, channel,
        serial and officer, markers. Linear in the name for any profile (RE2)."""
        stem, dot, ext = filename.rpartition(b".")
        if not dot:
            stem, ext = filename, b""
        layout = self.layout
        if ext.upper().decode("latin-1") in layout.marker_sidecars:
            return NameInfo(FileKind.OTHER, "", None, stem, True)
        try:
            text = filename.decode("utf-8")
        except UnicodeDecodeError:
            return NameInfo(FileKind.OTHER, "", None, stem, False)
        kind = next((k for k, g in layout.kinds if g.matches(text, text)), FileKind.OTHER)
        stem_text = stem.decode("utf-8")
        suffixed = any(stem_text.upper().endswith(s) for s in layout.marker_suffixes)
        for rule in layout.names:
            groups = rule.pattern.groups_of(text, rule.whole)
            if groups is not None:
                return _named(kind, groups, rule.start_format, stem, suffixed)
        if layout.kind_needs_name:
            kind = FileKind.OTHER
        return NameInfo(kind, "", None, stem, False, suffix_marked=suffixed)


def _named(
    kind: FileKind, groups: dict[str, str], start_format: str, stem: bytes, suffixed: bool
) -> NameInfo:
    start_text = groups.get("start") or groups.get("date", "") + groups.get("time", "")
    return NameInfo(
        kind=kind,
        recorded_start=_start(start_text, start_format),
        segment=_segment(groups.get("segment", "")),
        stem=stem,
        is_marker=False,
        channel=_bounded(groups.get("channel", "")),
        serial=_bounded(groups.get("serial", "")),
        officer=_bounded(groups.get("officer", "")),
        suffix_marked=suffixed,
        named=True,
    )


def _start(text: str, start_format: str) -> str:
    if not text or len(text) > _MAX_FIELD:
        return ""
    try:
        return datetime.strptime(text, start_format).isoformat()
    except ValueError:
        return ""


def _segment(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_SEGMENT_DIGITS:
        return None
    return int(text)


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_FIELD else ""
