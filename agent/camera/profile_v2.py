"""Camera profile format 2: its keys, each checked, every mistake named with its line.

A version 2 profile (`format = 2`) is tables: `[unlock]`, `[identity]`, `[clock]`, `[battery]`
(agent.camera.methods), `[layout]` with `[layout.kinds]` and `[[layout.names]]`, `[markers]`,
`[partners]`; agent/camera/profiles/novatek-cardv.toml is the commented example and the
README's "Camera profiles" section the reference. `parse` reads the whole file in one pass and
collects every mistake (an unknown key, a wrong type or value, a pattern RE2 refuses) as a
line `WHERE:LINE: key: problem`; any mistake raises one ConfigError carrying them all
(`fields["mistakes"]`), which stops the daemon at start-up with exit 78 as any bad setting does.

Pure: checks data it is given; reads no file.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.camera import methods
from agent.camera.patterns import Glob, Pattern, PatternError, compile_glob, compile_pattern
from agent.camera.profile_lines import Path, dotted, key_lines, line_of
from agent.camera.profile_model import DEFAULT_START_FORMAT, Layout, NameRule, Profile
from agent.core.errors import ConfigError
from agent.core.model import FileKind

FORMAT = 2
NAME_GROUPS = frozenset({"serial", "officer", "start", "date", "time", "segment", "channel"})
_TOP = frozenset(
    {
        "format", "name", "usb_ids", "label_pattern", "timezone", "transport", "system_log",
        "binding", "unlock", "identity", "clock", "battery", "layout", "markers", "partners",
    }
)  # fmt: skip
_UNLOCK = frozenset(
    {"dialect", "record_size", "password", "inquiry", "command_timeout_s", "appear_timeout_s"}
)
_MAX_PATH = 255
_MAX_LIST = 64
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_EXT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


@dataclass
class _Reader:
    """Reads keys of the parsed TOML, noting each mistake with its key path."""

    mistakes: list[tuple[Path, str]] = field(default_factory=list)

    def wrong(self, path: Path, problem: str) -> None:
        self.mistakes.append((path, problem))

    def table(self, raw: dict[str, Any], path: Path, known: frozenset[str]) -> dict[str, Any]:
        """A sub-table (empty when absent or not a table); its unknown keys are mistakes."""
        value = raw.get(str(path[-1])) if path else raw
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.wrong(path, f"must be a table, not {_type(value)}")
            return {}
        for key in sorted(set(value) - known):
            self.wrong((*path, key), f"unknown key (known: {', '.join(sorted(known))})")
        return value

    def value(
        self, table: dict[str, Any], path: Path, wanted: type, default: Any, required: bool = False
    ) -> Any:
        key = path[-1]
        if key not in table:
            if required:
                self.wrong(path, "missing")
            return default
        value = table[key]
        ok = isinstance(value, wanted) and not (wanted is not bool and isinstance(value, bool))
        if wanted is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            self.wrong(path, f"must be {_TYPE_NAMES[wanted]}, not {_type(value)}")
            return default
        return value

    def one_of(
        self, table: dict[str, Any], path: Path, choices: tuple[str, ...], default: str
    ) -> str:
        value: str = self.value(table, path, str, default)
        if value not in choices:
            self.wrong(path, f"{value!r} is not one of {', '.join(choices)}")
            return default
        return value

    def number(self, table: dict[str, Any], path: Path, default: int, low: int, high: int) -> int:
        value: int = self.value(table, path, int, default)
        if not low <= value <= high:
            self.wrong(path, f"{value} is not within {low}..{high}")
            return default
        return value

    def strings(
        self, table: dict[str, Any], path: Path, check: Callable[[str], str], required: bool = False
    ) -> tuple[str, ...]:
        """A list of strings, each passed to `check` (which returns a problem, or "")."""
        values = self.value(table, path, list, [], required)
        if required and path[-1] in table and not values:
            self.wrong(path, "must name at least one")
        if len(values) > _MAX_LIST:
            self.wrong(path, f"more than {_MAX_LIST} entries")
            return ()
        out: list[str] = []
        for index, item in enumerate(values):
            if not isinstance(item, str):
                self.wrong((*path, index), f"must be a string, not {_type(item)}")
            elif problem := check(item):
                self.wrong((*path, index), f"{item!r}: {problem}")
            else:
                out.append(item)
        return tuple(out)

    def globs(
        self, table: dict[str, Any], path: Path, names_only: bool = False
    ) -> tuple[Glob, ...]:
        out: list[Glob] = []
        for index, source in enumerate(self.strings(table, path, _glob_problem(names_only))):
            try:
                out.append(compile_glob(source))
            except PatternError as exc:
                self.wrong((*path, index), f"{source!r}: {exc}")
        return tuple(out)

    def pattern(self, table: dict[str, Any], path: Path, required: bool = False) -> Pattern | None:
        source: str = self.value(table, path, str, "", required)
        if not source:
            return None
        try:
            return compile_pattern(source)
        except PatternError as exc:
            self.wrong(path, str(exc))
            return None


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _type(value: object) -> str:
    for wanted, name in _TYPE_NAMES.items():
        if isinstance(value, wanted) and not (wanted is int and isinstance(value, bool)):
            return name
    return type(value).__name__


def _path_problem(value: str) -> str:
    """Why a path below the volume root is not one ("" when it is)."""
    parts = value.split("/")
    if not value or len(value) > _MAX_PATH or "\0" in value or "\\" in value:
        return f"must be 1-{_MAX_PATH} characters, no NUL or backslash"
    if value.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "must be a path below the volume root (no leading /, no . or .. or empty parts)"
    return ""


def _extension_problem(value: str) -> str:
    if not 1 <= len(value) <= 8 or not set(value) <= _EXT_CHARS:
        return "must be an extension of 1-8 letters or digits, without the dot"
    return ""


def _suffix_problem(value: str) -> str:
    if not 1 <= len(value) <= 16 or "/" in value or "." in value:
        return "must be 1-16 characters, no / or ."
    return ""


def _glob_problem(names_only: bool) -> Callable[[str], str]:
    def check(value: str) -> str:
        if names_only and "/" in value:
            return "matches a file's name: no /"
        if not value or value.startswith("/"):
            return "must be a glob of a name, or of a path below the volume root"
        return ""

    return check


def _usb_id_problem(value: str) -> str:
    vendor, colon, product = value.partition(":")
    digits = set("0123456789abcdefABCDEF")
    ok = colon and len(vendor) == len(product) == 4 and set(vendor + product) <= digits
    return "" if ok else "is not vendor:product (4 hex digits each)"


# ---- the tables -----------------------------------------------------------------------------


def _unlock(r: _Reader, raw: dict[str, Any], transport: str) -> methods.UnlockSpec | None:
    table = r.table(raw, ("unlock",), _UNLOCK)
    if transport != "ums-unlock":
        if "unlock" in raw:
            r.wrong(("unlock",), 'only for transport = "ums-unlock"')
        return None
    if "unlock" not in raw:
        r.wrong(("transport",), "ums-unlock needs an [unlock] table")
    dialect = r.one_of(table, ("unlock", "dialect"), methods.DIALECTS, methods.DIALECTS[0])
    if "dialect" not in table and "unlock" in raw:
        r.wrong(("unlock", "dialect"), "missing")
    size: int = r.value(table, ("unlock", "record_size"), int, 89)
    if size not in methods.RECORD_SIZES:
        r.wrong(("unlock", "record_size"), f"{size} is not one of 89, 94")
        size = 89
    password: str | None = r.value(table, ("unlock", "password"), str, None)
    if password is not None and not (password.isascii() and len(password) <= 16):
        r.wrong(("unlock", "password"), "must be at most 16 ASCII characters")
    timeouts = [
        _seconds(r, table, ("unlock", key), default)
        for key, default in (("command_timeout_s", 5.0), ("appear_timeout_s", 30.0))
    ]
    return methods.UnlockSpec(
        dialect=dialect,
        record_size=size,
        password=password,
        inquiry=r.value(table, ("unlock", "inquiry"), str, ""),
        command_timeout_s=timeouts[0],
        appear_timeout_s=timeouts[1],
    )


def _seconds(r: _Reader, table: dict[str, Any], path: Path, default: float) -> float:
    value = float(r.value(table, path, float, default))
    if not 0 < value <= 600:
        r.wrong(path, f"{value} is not within 0..600 seconds")
        return default
    return value


def _needs_unlock(r: _Reader, path: Path, value: str, transport: str) -> None:
    if value == "scsi" and transport != "ums-unlock":
        r.wrong(path, 'scsi needs transport = "ums-unlock"')


def _identity(r: _Reader, raw: dict[str, Any], transport: str) -> tuple[tuple[str, ...], str]:
    table = r.table(raw, ("identity",), frozenset({"sources", "file"}))
    path = ("identity", "sources")
    sources = r.strings(
        table,
        path,
        lambda s: (
            ""
            if s in methods.IDENTITY_SOURCES
            else "is not one of " + ", ".join(methods.IDENTITY_SOURCES)
        ),
        required="identity" in raw,
    )
    if len(set(sources)) != len(sources):
        r.wrong(path, "names a source twice")
    for source in sources:
        _needs_unlock(r, path, source, transport)
    sources = sources or ("file",)
    file: str = r.value(table, ("identity", "file"), str, "")
    if file and (problem := _path_problem(file)):
        r.wrong(("identity", "file"), problem)
    if "file" in sources and not file:
        file = "DEVICE.INF" if "identity" not in raw else file
        if not file:
            r.wrong(("identity", "file"), 'missing: the "file" source reads it')
    return sources, file


def _clock(r: _Reader, raw: dict[str, Any], transport: str) -> methods.ClockSpec:
    keys = frozenset({"method", "path", "readback", "max_error_s", "threshold_s"})
    table = r.table(raw, ("clock",), keys)
    base = methods.ClockSpec()
    method = r.one_of(table, ("clock", "method"), methods.CLOCK_METHODS, "none")
    _needs_unlock(r, ("clock", "method"), method, transport)
    path: str = r.value(table, ("clock", "path"), str, "")
    if path and (problem := _path_problem(path)):
        r.wrong(("clock", "path"), problem)
    if method.startswith("file:") and not path:
        r.wrong(("clock", "path"), f"missing: {method} writes it")
    return methods.ClockSpec(
        method=method,
        path=path,
        readback=r.value(table, ("clock", "readback"), bool, False),
        max_error_s=r.number(table, ("clock", "max_error_s"), base.max_error_s, 0, 3600),
        threshold_s=r.number(table, ("clock", "threshold_s"), base.threshold_s, 1, 86400),
    )


def _battery(r: _Reader, raw: dict[str, Any], transport: str) -> methods.BatterySpec:
    table = r.table(raw, ("battery",), frozenset({"source", "path"}))
    source = r.one_of(table, ("battery", "source"), methods.BATTERY_SOURCES, "none")
    _needs_unlock(r, ("battery", "source"), source, transport)
    path: str = r.value(table, ("battery", "path"), str, "")
    if path and (problem := _path_problem(path)):
        r.wrong(("battery", "path"), problem)
    if source.startswith("log:") and not path:
        r.wrong(("battery", "path"), f"missing: {source} reads it")
    return methods.BatterySpec(source=source, path=path)


def _names(r: _Reader, layout: dict[str, Any]) -> tuple[NameRule, ...]:
    entries = r.value(layout, ("layout", "names"), list, [])
    if len(entries) > _MAX_LIST:
        r.wrong(("layout", "names"), f"more than {_MAX_LIST} patterns")
    rules: list[NameRule] = []
    for index, entry in enumerate(entries[:_MAX_LIST]):
        path: Path = ("layout", "names", index)
        if not isinstance(entry, dict):
            r.wrong(path, f"must be a table, not {_type(entry)}")
            continue
        for key in sorted(set(entry) - {"pattern", "start_format"}):
            r.wrong((*path, key), "unknown key (known: pattern, start_format)")
        pattern = r.pattern(entry, (*path, "pattern"), required=True)
        start_format: str = r.value(entry, (*path, "start_format"), str, DEFAULT_START_FORMAT)
        if "%" not in start_format or len(start_format) > 64:
            r.wrong((*path, "start_format"), "must be a strptime format of 1-64 characters")
        if pattern is not None and _groups_fit(r, (*path, "pattern"), pattern.groups):
            rules.append(NameRule(pattern, start_format))
    return tuple(rules)


def _groups_fit(r: _Reader, path: Path, groups: frozenset[str]) -> bool:
    unknown = sorted(groups - NAME_GROUPS)
    if unknown:
        r.wrong(path, f"unknown group {unknown[0]!r} (known: {', '.join(sorted(NAME_GROUPS))})")
    elif "start" in groups and groups & {"date", "time"}:
        r.wrong(path, "names the start once: either start, or date and time")
    elif ("date" in groups) != ("time" in groups):
        r.wrong(path, "date and time go together")
    else:
        return True
    return False


def _kinds(r: _Reader, layout: dict[str, Any]) -> tuple[tuple[FileKind, Glob], ...]:
    known = frozenset(k.value for k in FileKind)
    table = r.table(layout, ("layout", "kinds"), known)
    out: list[tuple[FileKind, Glob]] = []
    for kind in FileKind:
        for glob in r.globs(table, ("layout", "kinds", kind.value), names_only=True):
            out.append((kind, glob))
    return tuple(out)


def _layout(r: _Reader, raw: dict[str, Any]) -> Layout:
    layout = r.table(raw, ("layout",), frozenset({"roots", "ignore", "kinds", "names"}))
    if "layout" not in raw:
        r.wrong(("layout",), "missing: a profile names where the recordings are")
    roots = r.strings(layout, ("layout", "roots"), _path_problem, required="layout" in raw)
    markers = r.table(raw, ("markers",), frozenset({"folders", "suffixes", "sidecars"}))
    partners = r.table(raw, ("partners",), frozenset({"extensions"}))
    folders = r.strings(markers, ("markers", "folders"), _path_problem)
    for index, folder in enumerate(folders):
        if not any(folder == root or folder.startswith(root + "/") for root in roots):
            r.wrong(("markers", "folders", index), f"{folder!r} is in none of layout.roots")
    sidecars = r.strings(markers, ("markers", "sidecars"), _extension_problem)
    extensions = r.strings(partners, ("partners", "extensions"), _extension_problem)
    return Layout(
        roots=roots,
        kinds=_kinds(r, layout),
        names=_names(r, layout),
        ignore=r.globs(layout, ("layout", "ignore")),
        marker_folders=folders,
        marker_suffixes=tuple(
            s.upper() for s in r.strings(markers, ("markers", "suffixes"), _suffix_problem)
        ),
        marker_sidecars=tuple(s.upper() for s in sidecars),
        partners=tuple(e.upper() for e in extensions),
    )


def _top(r: _Reader, raw: dict[str, Any]) -> dict[str, Any]:
    r.table(raw, (), _TOP)
    version = r.value(raw, ("format",), int, FORMAT)
    if version != FORMAT:
        r.wrong(("format",), f"{version} is not a profile format this station reads (1 or 2)")
    name: str = r.value(raw, ("name",), str, "", required=True)
    if name and not (len(name) <= 64 and set(name) <= _NAME_CHARS):
        r.wrong(("name",), f"{name!r} is not 1-64 of a-z 0-9 _ -")
    timezone: str = r.value(raw, ("timezone",), str, "")
    if timezone:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            r.wrong(("timezone",), f"{timezone!r} is not a known time zone")
    system_log: str = r.value(raw, ("system_log",), str, "")
    if system_log and (problem := _path_problem(system_log)):
        r.wrong(("system_log",), problem)
    return {
        "name": name,
        "usb_ids": frozenset(i.lower() for i in r.strings(raw, ("usb_ids",), _usb_id_problem)),
        "label_pattern": r.pattern(raw, ("label_pattern",)),
        "timezone": timezone,
        "transport": r.one_of(raw, ("transport",), methods.TRANSPORTS, "ums"),
        "system_log": system_log,
        "binding": r.value(raw, ("binding",), bool, False),
    }


def parse(raw: dict[str, Any], text: str, where: str) -> Profile:
    """A version 2 profile, or ConfigError naming every mistake in it with its line."""
    r = _Reader()
    top = _top(r, raw)
    transport = top["transport"]
    unlock = _unlock(r, raw, transport)
    identity, identity_file = _identity(r, raw, transport)
    layout = _layout(r, raw)
    if "names" in identity and not any("serial" in rule.pattern.groups for rule in layout.names):
        r.wrong(("identity", "sources"), '"names" needs a layout.names pattern with a serial group')
    profile = Profile(
        layout=layout,
        format=FORMAT,
        unlock=unlock,
        identity=identity,
        identity_file=identity_file,
        clock=_clock(r, raw, transport),
        battery=_battery(r, raw, transport),
        source=where,
        **top,
    )
    if r.mistakes:
        lines = key_lines(text)
        numbered = sorted((line_of(lines, path), dotted(path), p) for path, p in r.mistakes)
        mistakes = tuple(f"{where}:{line}: {key}: {p}" for line, key, p in numbered)
        raise ConfigError(
            where=where,
            problem=f"invalid camera profile ({len(mistakes)} mistakes):\n" + "\n".join(mistakes),
            mistakes=mistakes,
        )
    return profile
