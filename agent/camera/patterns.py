"""Linear-time matching for camera profiles: RE2 name patterns and globs turned into RE2.

Camera file names are hostile and so is a profile (it comes with --config): Python's `re`
backtracks, so a pattern like `(a+)+$` against a long name takes exponential time. RE2
(https://github.com/google/re2/wiki/WhyRE2) has no backtracking: matching is linear in the
name for every pattern it accepts, and it refuses the constructs that cannot be linear
(backreferences, look-around). Globs are translated here to RE2 patterns, so they are linear
too. Compiled patterns are bounded in size (MAX_PATTERN characters, RE2's own memory budget).

Pure: compiles and matches strings; opens nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import re2

MAX_PATTERN = 1024  # characters of a name pattern or glob in a profile
_MAX_MEM = 8 << 20  # RE2's budget for one compiled pattern (its default)


class PatternError(ValueError):
    """A pattern or glob RE2 cannot compile, said in one line."""


def _options(case_sensitive: bool = True) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the loader reports the mistake itself, once
    options.max_mem = _MAX_MEM
    options.case_sensitive = case_sensitive
    return options


@dataclass(frozen=True)
class Pattern:
    """A compiled RE2 pattern, matched against the whole of a text."""

    source: str
    compiled: re2._Regexp

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self.compiled.groupindex)

    def fullmatch(self, text: str) -> re2._Match | None:
        """A match of the whole text, or None."""
        return self.compiled.fullmatch(text)

    def groups_of(self, text: str, whole: bool = True) -> dict[str, str] | None:
        """The named groups of a match ("" for one that did not take part), or None. `whole`:
        of the whole text, else of a prefix of it (the `re.match` of version 1 profiles)."""
        match = self.compiled.fullmatch(text) if whole else self.compiled.match(text)
        if match is None:
            return None
        return {name: match.group(name) or "" for name in self.compiled.groupindex}


def compile_pattern(source: str, case_sensitive: bool = True) -> Pattern:
    """An RE2 pattern; PatternError when too long or not RE2 syntax (`(?P<name>...)` is)."""
    if len(source) > MAX_PATTERN:
        raise PatternError(f"longer than {MAX_PATTERN} characters")
    try:
        compiled = re2.compile(source, _options(case_sensitive))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise PatternError(f"not an RE2 pattern: {detail}") from exc
    return Pattern(source, compiled)


def glob_to_re2(glob: str) -> str:
    """A glob as an RE2 pattern: `*` any run within one path element, `**` any run across
    them, `?` one character other than `/`, `[...]` a set (`[!...]` its complement);
    everything else literal."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                out.append("(?s:.*)")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 2)
            if end < 0:
                raise PatternError(f"unclosed [ in glob {glob!r}")
            body = glob[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            escaped = "".join("\\" + ch if ch in "\\^[]" else ch for ch in body)
            out.append(f"[{'^' if negate else ''}{escaped}]")
            i = end
        else:
            out.append(_literal(c))
        i += 1
    return "".join(out)


def _literal(c: str) -> str:
    return "\\" + c if c in r"\.^$|?*+()[]{}-" else c


@dataclass(frozen=True)
class Glob:
    """A glob of a profile, case-insensitive (FAT keeps case but does not compare it).

    Without `/` it matches a file's name, with one the path below the volume root."""

    source: str
    pattern: Pattern

    @property
    def on_path(self) -> bool:
        return "/" in self.source

    def matches(self, name: str, path: str) -> bool:
        return self.pattern.fullmatch(path if self.on_path else name) is not None


def compile_glob(source: str) -> Glob:
    if len(source) > MAX_PATTERN:
        raise PatternError(f"longer than {MAX_PATTERN} characters")
    return Glob(source, compile_pattern(glob_to_re2(source), case_sensitive=False))
