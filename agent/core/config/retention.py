"""Reading [retention]: default_class, [retention.classes.NAME] tables and [[retention.rules]].

The keys of each are declared in `tables.py` (RetentionConfig, RetentionClass, RetentionRule);
this module adds what a flat table does not have: classes named by their table, rules as an
array, and every class a rule or the default names must exist. Giving classes or rules replaces
the shipped ones entirely. Nothing here decides a file's class (agent.health.dock does).
"""

from __future__ import annotations

import re
from typing import Any

from agent.core.config.reader import Reader
from agent.core.config.spec import declared
from agent.core.config.tables import RetentionClass, RetentionConfig, RetentionRule

_CLASS_NAME = re.compile(r"[a-z0-9_-]{1,32}")


def read(reader: Reader, raw: Any) -> RetentionConfig:
    if not isinstance(raw, dict):
        raise reader.fail(None, "retention", "must be a table ([retention])")
    defaults = RetentionConfig()
    by_name = {decl.name: decl for decl in declared(RetentionConfig)}
    for name in raw:
        if name not in by_name:
            known = ", ".join(sorted(by_name))
            raise reader.fail("retention", name, f"unknown key (known: {known})")
    classes = _classes(reader, raw["classes"]) if "classes" in raw else defaults.classes
    rules = _rules(reader, raw["rules"]) if "rules" in raw else defaults.rules
    default_class = reader.value(
        "retention", by_name["default_class"], raw.get("default_class", defaults.default_class)
    )
    _check_class_names(reader, default_class, classes, rules)
    return RetentionConfig(default_class, classes, rules)


def _classes(reader: Reader, raw: Any) -> tuple[RetentionClass, ...]:
    if not isinstance(raw, dict) or not raw:
        raise reader.fail("retention", "classes", "must be tables [retention.classes.NAME]")
    return tuple(_class(reader, name, table) for name, table in raw.items())


def _class(reader: Reader, name: str, raw: Any) -> RetentionClass:
    where = f"retention.classes.{name}"
    if not _CLASS_NAME.fullmatch(name):
        raise reader.fail("retention", "classes", f"class name {name!r}: 1-32 of a-z 0-9 _ -")
    if not isinstance(raw, dict):
        raise reader.fail("retention", "classes", f"{name} must be a table [{where}]")
    values = reader.keys(where, raw, RetentionClass)
    if "min_days" not in values:
        raise reader.fail(where, "min_days", "missing (days kept at least; 0: no minimum)")
    return RetentionClass(name, **values)


def _rules(reader: Reader, raw: Any) -> tuple[RetentionRule, ...]:
    if not isinstance(raw, list):
        raise reader.fail("retention", "rules", "must be [[retention.rules]] tables")
    return tuple(
        _rule(reader, f"retention.rules #{index}", table) for index, table in enumerate(raw, 1)
    )


def _rule(reader: Reader, where: str, raw: Any) -> RetentionRule:
    if not isinstance(raw, dict):
        raise reader.fail("retention", "rules", f"{where} must be a table")
    by_name = {decl.name: decl for decl in declared(RetentionRule)}
    for name in raw:
        if name not in by_name:
            known = ", ".join(sorted(by_name))
            raise reader.fail("retention", name, f"{where}: unknown key (known: {known})")
    if "class" not in raw:
        raise reader.fail("retention", "rules", f"{where}: class missing")
    # A rule's keys are reported under [retention] (its [[array]] header has no name of its own).
    values = {
        by_name[name].attribute: reader.value("retention", by_name[name], value, f"{where}: ")
        for name, value in raw.items()
    }
    return RetentionRule(**values)


def _check_class_names(
    reader: Reader,
    default_class: str,
    classes: tuple[RetentionClass, ...],
    rules: tuple[RetentionRule, ...],
) -> None:
    names = ", ".join(sorted(c.name for c in classes))
    if default_class not in {c.name for c in classes}:
        raise reader.fail(
            "retention", "default_class", f"{default_class!r} is not a class (classes: {names})"
        )
    for rule in rules:
        if rule.retention_class not in {c.name for c in classes}:
            raise reader.fail(
                "retention",
                "class",
                f"rule class {rule.retention_class!r} is not a class (classes: {names})",
            )
