"""One configuration file being read: each key's value against its declaration, and every
problem as one ConfigError naming the file, the line and the key.

tomllib reports no positions, so the line is found again in the text, best effort. Nothing here
knows a particular key.
"""

from __future__ import annotations

import re
from typing import Any

from agent.core.config.spec import Declared, declared, read
from agent.core.errors import ConfigError


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """Best-effort line number of `key` (inside `[section]`): tomllib reports no positions."""
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", stripped)
        if header:
            current = header.group(1)
            if section is not None and key == "" and current == section:
                return number
            continue
        if current == section and re.match(rf"^{re.escape(key)}\s*=", stripped):
            return number
    return None


class Reader:
    """One file being read: turns a problem with a key into a ConfigError naming file and line."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source

    def fail(self, section: str | None, key: str, problem: str) -> ConfigError:
        name = f"{section}.{key}" if section else key
        line = _line_of(self.text, section, key)
        where = f"{self.source}:{line}" if line else self.source
        return ConfigError(where=f"{where}: {name}", problem=problem)

    def value(self, section: str | None, decl: Declared, value: Any, prefix: str = "") -> Any:
        result, problem = read(decl, value)
        if problem:
            raise self.fail(section, decl.name, prefix + problem)
        return result

    def keys(self, section: str | None, raw: dict[str, Any], cls: type[Any]) -> dict[str, Any]:
        """The declared keys of `cls` given in `raw`, read; any other key is refused."""
        by_name = {decl.name: decl for decl in declared(cls)}
        values: dict[str, Any] = {}
        for name, value in raw.items():
            decl = by_name.get(name)
            if decl is None:
                known = ", ".join(sorted(by_name))
                raise self.fail(section, name, f"unknown key (known: {known})")
            values[decl.attribute] = self.value(section, decl, value)
        return values

    def table(self, name: str, raw: Any, cls: type[Any]) -> Any:
        if not isinstance(raw, dict):
            raise self.fail(None, name, "must be a table ([" + name + "])")
        result = cls(**self.keys(name, raw, cls))
        for decl in declared(cls):
            limit = decl.spec.not_above
            if limit and getattr(result, decl.attribute) > getattr(result, limit):
                raise self.fail(name, decl.name, f"must not be above {limit}")
        return result
