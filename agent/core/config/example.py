"""config.example.toml, written from the declarations: every key with its default and its text.

scripts/gen-config-example prints it; a test keeps the committed file equal to it, so the
example can never show a default, a range or a choice the reader does not apply. A declaration's
text is shown line for line as written (the source's line length keeps it narrow).
Nothing here reads a configuration or writes a file.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
from typing import Any

from agent.core.config.spec import Declared, declared, tables
from agent.core.config.sync import SinkConfig, SyncConfig
from agent.core.config.tables import Config, RetentionClass, RetentionConfig, RetentionRule


def render() -> str:
    """The whole example file."""
    defaults = Config()
    blocks = [_comment(Config.DOC)]
    blocks += [_key(decl, getattr(defaults, decl.attribute)) for decl in declared(Config)]
    for name, cls in tables(Config):
        if cls is RetentionConfig:
            blocks += _retention(defaults.retention)
        else:
            lines = [f"[{name}]", *_comment(getattr(cls, "DOC", ""))]
            for decl in declared(cls):
                lines += _key(decl, getattr(getattr(defaults, name), decl.attribute))
            blocks.append(lines)
            if cls is SyncConfig:
                blocks.append(_sinks())
    return "\n\n".join("\n".join(block) for block in blocks) + "\n"


def _sinks() -> list[str]:
    """[[sync.sinks]], commented out: the station has one sink unless it lists several."""
    lines = _comment(
        """Several sinks instead of the one above: one [[sync.sinks]] table each, e.g. the central
server and a NAS backup; the keys not named here (TLS, pacing, retries) are [sync]'s."""
    )
    example = {"name": "central", "kind": "tus", "endpoint": "https://evidence.example.org/files"}
    lines.append("# [[sync.sinks]]")
    for decl in declared(SinkConfig):
        lines += [f"# {line}" if line != "#" else "#" for line in _comment(decl.doc)]
        lines.append(f"# {decl.name} = {_toml(example.get(decl.name, decl.default))}")
    return lines


def _retention(retention: RetentionConfig) -> list[list[str]]:
    """[retention], then one table per shipped class, then the shipped rules."""
    decls = {decl.attribute: decl for decl in declared(RetentionConfig)}
    head = ["[retention]", *_comment(RetentionConfig.DOC)]
    blocks = [[*head, *_key(decls["default_class"], retention.default_class)]]
    for index, shipped in enumerate(retention.classes):
        lines = [] if index else _comment(decls["classes"].doc)
        lines.append(f"[retention.classes.{shipped.name}]")
        for decl in declared(RetentionClass):
            lines += _key(decl, getattr(shipped, decl.attribute), with_doc=index == 0)
        blocks.append(lines)
    for index, rule in enumerate(retention.rules):
        lines = [] if index else _comment(decls["rules"].doc)
        lines.append("[[retention.rules]]")
        for decl in declared(RetentionRule):
            value = getattr(rule, decl.attribute)
            if decl.default is dataclasses.MISSING or value != decl.default:  # absent: default
                lines += _key(decl, value, with_doc=False)
        blocks.append(lines)
    return blocks


def _key(decl: Declared, value: Any, *, with_doc: bool = True) -> list[str]:
    shown = value if decl.spec.shipped is None else decl.spec.shipped
    return [*(_comment(decl.doc) if with_doc else []), f"{decl.name} = {_toml(shown)}"]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _toml(value.value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string is a JSON string
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    raise TypeError(f"no TOML form for {value!r}")  # pragma: no cover - a new key type


def _comment(text: str) -> list[str]:
    """`text` as comment lines, each as written (indentation beyond the text's own kept)."""
    return [f"# {line}" if line else "#" for line in inspect.cleandoc(text).splitlines()]
