"""Camera profiles: TOML data that says where a camera model keeps what (camera-layout.md).

Only data and pure classification of names live here; no file is opened on a camera.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from agent.camera.methods import UnlockSpec
from agent.core.errors import ConfigError
from agent.core.model import FileKind


@dataclass(frozen=True)
class NameInfo:
    kind: FileKind
    recorded_start: str  # camera wall time "YYYY-MM-DDThh:mm:ss", or ""
    segment: int | None
    stem: bytes
    is_marker: bool


@dataclass(frozen=True)
class Profile:
    name: str
    device_info: str
    record_dir: str
    system_log: str
    battery_log: str
    time_file: str
    recording_pattern: re.Pattern[str]
    important_marker_ext: str
    kinds: dict[str, FileKind]
    usb_ids: frozenset[str] = frozenset()
    label_pattern: re.Pattern[str] | None = None
    timezone: str = ""
    clock_threshold_s: int = 30
    # The camera keeps a small file the station writes at its root (agent.camera.binding).
    binding: bool = False
    # How the station reaches it (agent.camera.methods.TRANSPORTS), and for "ums-unlock" the
    # vendor SCSI unlock that opens it as a disk.
    transport: str = "ums"
    unlock: UnlockSpec | None = None

    def matches_hardware(self, vendor_id: str, model_id: str, fs_label: str) -> bool:
        """Does a USB device's identity fit this profile (ids, and label where one is set)?"""
        if f"{vendor_id.lower()}:{model_id.lower()}" not in self.usb_ids:
            return False
        return self.label_pattern is None or bool(self.label_pattern.fullmatch(fs_label))

    def classify(self, filename: bytes) -> NameInfo:
        """What a file's name says: kind, recording start (camera clock), segment, marker."""
        stem, dot, ext = filename.rpartition(b".")
        if not dot:
            stem, ext = filename, b""
        if ext.upper() == self.important_marker_ext.encode():
            return NameInfo(FileKind.OTHER, "", None, stem, True)
        try:
            text = filename.decode("ascii")
        except UnicodeDecodeError:
            return NameInfo(FileKind.OTHER, "", None, stem, False)
        match = self.recording_pattern.match(text)
        if not match:
            return NameInfo(FileKind.OTHER, "", None, stem, False)
        kind = self.kinds.get(match.group("ext").upper(), FileKind.OTHER)
        try:
            start = datetime.strptime(match.group("start"), "%Y%m%d%H%M%S").isoformat()
        except ValueError:
            start = ""
        return NameInfo(kind, start, int(match.group("segment")), stem, False)


def load(name: str = "generic", profile_dir: str = "") -> Profile:
    """A profile by name: `<profile_dir>/<name>.toml` if present, else a shipped one."""
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise ConfigError(where="profile", problem=f"invalid profile name {name!r}")
    local = Path(profile_dir) / f"{name}.toml" if profile_dir else None
    where = str(local) if local and local.is_file() else f"shipped profile {name}"
    try:
        if local and local.is_file():
            text = local.read_text("utf-8")
        else:
            text = (
                resources.files("agent.camera.profiles").joinpath(f"{name}.toml").read_text("utf-8")
            )
    except FileNotFoundError as exc:
        raise ConfigError(where="profile", problem=f"no camera profile named {name!r}") from exc
    try:
        return _parse(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError, re.error) as exc:
        raise ConfigError(where=where, problem=f"invalid camera profile: {exc}") from exc


def load_all(names: tuple[str, ...], profile_dir: str = "") -> list[Profile]:
    return [load(name, profile_dir) for name in names]


def _parse(raw: dict[str, Any]) -> Profile:
    label = raw.get("label_pattern", "")
    return Profile(
        name=raw["name"],
        device_info=raw["device_info"],
        record_dir=raw["record_dir"],
        system_log=raw["system_log"],
        battery_log=raw["battery_log"],
        time_file=raw["time_file"],
        recording_pattern=re.compile(raw["recording_pattern"]),
        important_marker_ext=raw["important_marker_ext"].upper(),
        kinds={k.upper(): FileKind(v) for k, v in raw["kinds"].items()},
        usb_ids=frozenset(str(i).lower() for i in raw.get("usb_ids", [])),
        label_pattern=re.compile(label) if label else None,
        timezone=str(raw.get("timezone", "")),
        clock_threshold_s=int(raw.get("clock_threshold_s", 30)),
        binding=_flag(raw, "binding"),
        transport=str(raw.get("transport", "ums")),
        unlock=UnlockSpec(**raw["unlock"]) if "unlock" in raw else None,
    )


def _flag(raw: dict[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value
