"""Camera profiles: TOML data that says where a camera model keeps what (camera-layout.md).

Two formats load: version 1 (no `format` key: the original flat `generic` file, read here as it
always was) and version 2 (`format = 2`, tables; agent.camera.profile_v2 checks every key and
names each mistake with its line). The data itself (Profile, Layout, NameInfo, classify) is
agent.camera.profile_model's, named here too for the code that has always imported it from here.

Reads profile files only; never a camera.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from agent.camera import profile_v2
from agent.camera.methods import BatterySpec, ClockSpec, UnlockSpec
from agent.camera.patterns import PatternError, compile_glob, compile_pattern
from agent.camera.profile_model import Layout, NameInfo, NameRule, Profile
from agent.core.errors import ConfigError
from agent.core.model import FileKind

MAX_PROFILE_BYTES = 256 * 1024  # a profile is a page of text; a larger file is not one
_AT_LINE = re.compile(r"at line ([0-9]{1,9})")

__all__ = ["Layout", "NameInfo", "NameRule", "Profile", "load", "load_all", "load_file"]


# ---- loading --------------------------------------------------------------------------------


def load(name: str = "generic", profile_dir: str = "") -> Profile:
    """A profile by name: `<profile_dir>/<name>.toml` if present, else a shipped one."""
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise ConfigError(where="profile", problem=f"invalid profile name {name!r}")
    local = Path(profile_dir) / f"{name}.toml" if profile_dir else None
    if local and local.is_file():
        return load_file(local)
    try:
        text = resources.files("agent.camera.profiles").joinpath(f"{name}.toml").read_text("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(where="profile", problem=f"no camera profile named {name!r}") from exc
    return parse_text(text, f"shipped profile {name}")


def load_file(path: Path) -> Profile:
    """A profile from a file; ConfigError naming every mistake with its line."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_PROFILE_BYTES + 1)
        if len(data) > MAX_PROFILE_BYTES:
            raise ValueError(f"larger than {MAX_PROFILE_BYTES} bytes")
        text = data.decode("utf-8")
    except (OSError, ValueError) as exc:
        problem = f"cannot read camera profile: {exc}"
        raise ConfigError(where=str(path), problem=problem, mistakes=(f"{path}: {exc}",)) from exc
    return parse_text(text, str(path))


def parse_text(text: str, where: str) -> Profile:
    """A profile's TOML text; `where` names it in messages. Version 2 checks every key and
    raises one ConfigError listing every mistake (its field `mistakes`: `WHERE:LINE: key:
    problem` lines); version 1 is read as it always was."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says where in its message only: "... (at line 2, column 10)".
        at = _AT_LINE.search(str(exc))
        line = f":{at.group(1)}" if at else ""
        raise ConfigError(
            where=where,
            problem=f"invalid camera profile: {exc}",
            mistakes=(f"{where}{line}: syntax: {exc}",),
        ) from exc
    if "format" in raw:
        return profile_v2.parse(raw, text, where)
    try:
        return replace(_parse_v1(raw), source=where)
    except (KeyError, ValueError, TypeError, AttributeError, PatternError) as exc:
        problem = f"invalid camera profile: {exc}"
        raise ConfigError(where=where, problem=problem, mistakes=(f"{where}: {exc}",)) from exc


def load_all(names: tuple[str, ...], profile_dir: str = "") -> list[Profile]:
    return [load(name, profile_dir) for name in names]


def _parse_v1(raw: dict[str, Any]) -> Profile:
    """The original flat format: one record folder, one pattern, `.IMP` markers."""
    label = raw.get("label_pattern", "")
    kinds = tuple(
        (FileKind(v), compile_glob(f"*.{k}")) for k, v in raw["kinds"].items() if "*" not in k
    )
    layout = Layout(
        roots=(raw["record_dir"],),
        kinds=kinds,
        names=(NameRule(compile_pattern(raw["recording_pattern"]), whole=False),),
        marker_sidecars=(raw["important_marker_ext"].upper(),),
        kind_needs_name=True,
    )
    # Format 1 grew one thing before format 2: `transport = "ums-unlock"` with an [unlock]
    # table (agent.camera.methods.UnlockSpec), whose device record then names the camera first
    # and whose dialect sets the clock: such a camera's firmware reads no TIME.TXT.
    transport = str(raw.get("transport", "ums"))
    if transport not in ("ums", "ums-unlock"):
        raise ValueError(f"transport {transport!r} needs format = 2")
    unlock = UnlockSpec(**raw["unlock"]) if transport == "ums-unlock" else None
    return Profile(
        name=raw["name"],
        layout=layout,
        usb_ids=frozenset(str(i).lower() for i in raw.get("usb_ids", [])),
        label_pattern=compile_pattern(label) if label else None,
        timezone=str(raw.get("timezone", "")),
        transport=transport,
        unlock=unlock,
        identity=("scsi",) if unlock else ("file",),
        identity_file=raw["device_info"],
        clock=ClockSpec(
            method="scsi" if unlock else "file:generic",
            path="" if unlock else raw["time_file"],
            threshold_s=int(raw.get("clock_threshold_s", 30)),
        ),
        battery=BatterySpec(source="log:generic-csv", path=raw["battery_log"]),
        system_log=raw["system_log"],
        binding=_flag(raw, "binding"),
    )


def _flag(raw: dict[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value
