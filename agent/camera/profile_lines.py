"""The line of each key in a TOML text, so a mistake in a profile can name where it is.

tomllib parses without positions; this reads the text line by line for table headers
(`[a.b]`, `[[a.b]]`, counting array elements) and `key =` lines (bare, quoted and dotted keys),
skipping multi-line strings. A key it cannot place (inside an inline table, say) is given the
line of the nearest enclosing key it can. Linear in the text; used only once tomllib accepted it.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_KEY = r'(?:[A-Za-z0-9_-]+|"[^"\\]*"|\'[^\']*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_ASSIGN = re.compile(rf"\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY)


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART.findall(dotted))


def key_lines(text: str) -> dict[Path, int]:
    """Each key path found (array-of-tables elements by index) and its 1-based line."""
    lines: dict[Path, int] = {}
    counts: dict[tuple[str, ...], int] = {}
    prefix: Path = ()
    in_string = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            if line.count(in_string) % 2:
                in_string = ""
            continue
        if match := _ARRAY_HEADER.match(line):
            name = _parts(match.group(1))
            index = counts.get(name, 0)
            counts[name] = index + 1
            prefix = (*name, index)
            lines.setdefault(name, number)
            lines[prefix] = number
        elif match := _HEADER.match(line):
            prefix = _parts(match.group(1))
            lines.setdefault(prefix, number)
        elif match := _ASSIGN.match(line):
            lines.setdefault((*prefix, *_parts(match.group(1))), number)
        for quote in ('"""', "'''"):
            if line.count(quote) % 2:
                in_string = quote
    return lines


def line_of(lines: dict[Path, int], path: Path) -> int:
    """The line of a key path, or of its nearest enclosing key found; 1 when none is."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def dotted(path: Path) -> str:
    """A key path as a person reads it: `layout.names[1].pattern`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
