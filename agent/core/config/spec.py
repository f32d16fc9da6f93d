"""How a configuration key is declared, and how one value is read against its declaration.

A key is a field of a frozen table dataclass (`tables.py`, `health.py`, `sync.py`), written
`key(default, doc, ...)`: its name and type are the field's, its table the class's (whose DOC
opens the table in the example), and the field's metadata carries the rest (range or choices,
further checks, the text config.example.toml shows). Reading, the example
and the tests all read these declarations; none repeats a default, a range or a choice list.
Nothing here reads a file or knows a particular key.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# A further check of a given value: the problem in a few words, or None when the value is fine.
Check = Callable[[Any], str | None]

_SPEC = "dockagent.key"


@dataclass(frozen=True)
class Spec:
    """Everything about a key that its field's name, type and default do not say."""

    # What config.example.toml says above the key. Prose is reflowed; an indented line is kept
    # as written. "{range}" and "{choices}" stand for the declared range and choices.
    doc: str = ""
    # Numbers: the smallest and largest value allowed (None: no bound).
    low: int | None = 0
    high: int | None = None
    # 0-100, refused above as "is a percentage".
    percent: bool = False
    # Strings: the allowed values; lists of strings: the allowed items (named `item` when refused).
    choices: tuple[str, ...] = ()
    item: str = ""
    # Further checks of a value given in the file, in order; the first problem refuses it.
    checks: tuple[Check, ...] = ()
    # Another key of the same table this one must not exceed.
    not_above: str = ""
    # The key's name in the file when it cannot be the attribute's ("class" is a keyword).
    toml: str = ""


def key(
    default: T,
    doc: str = "",
    *,
    low: int | None = 0,
    high: int | None = None,
    percent: bool = False,
    choices: tuple[str, ...] = (),
    item: str = "",
    checks: tuple[Check, ...] = (),
    not_above: str = "",
    toml: str = "",
) -> T:
    """A table field declared as a configuration key (see Spec for the arguments)."""
    spec = Spec(doc, low, 100 if percent else high, percent, choices, item, checks, not_above, toml)
    return dataclasses.field(default=default, metadata={_SPEC: spec})


def required(doc: str = "", **spec: Any) -> Any:
    """A key without a default: the file must give it."""
    return dataclasses.field(metadata={_SPEC: Spec(doc, **spec)})


@dataclass(frozen=True)
class Declared:
    """One declared key, as the reader and the example see it."""

    attribute: str
    name: str  # in the file
    type: Any
    default: Any  # dataclasses.MISSING for a required key
    spec: Spec

    @property
    def choices(self) -> tuple[str, ...]:
        if isinstance(self.type, type) and issubclass(self.type, enum.Enum):
            return tuple(str(member.value) for member in self.type)
        return self.spec.choices

    @property
    def doc(self) -> str:
        """The example's text for this key, with the declared range and choices filled in."""
        low, high = self.spec.low, self.spec.high
        bounds = f"{low} to {high}" if low is not None and high is not None else ""
        return self.spec.doc.replace("{range}", bounds).replace(
            "{choices}", " | ".join(self.choices)
        )


_DECLARED: dict[type[Any], tuple[Declared, ...]] = {}


def declared(cls: type[Any]) -> tuple[Declared, ...]:
    """The keys of a table class, in declaration order."""
    if cls not in _DECLARED:
        hints = typing.get_type_hints(cls)
        _DECLARED[cls] = tuple(
            Declared(f.name, spec.toml or f.name, hints[f.name], f.default, spec)
            for f in dataclasses.fields(cls)
            if (spec := f.metadata.get(_SPEC)) is not None
        )
    return _DECLARED[cls]


def tables(cls: type[Any]) -> tuple[tuple[str, type[Any]], ...]:
    """The [tables] of Config, (name, table class), in declaration order; a table's DOC opens it
    in the example."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (f.name, hints[f.name])
        for f in dataclasses.fields(cls)
        if dataclasses.is_dataclass(hints[f.name])
    )


class Refused(Exception):
    """A value its declaration does not allow; the reader adds where it was."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def coerce(decl: Declared, value: Any) -> Any:
    """`value` from the file as the key's type, or Refused naming what is wrong with it."""
    wanted = _without_none(decl.type)
    if decl.choices and wanted != tuple[str, ...]:
        if not isinstance(value, str) or value not in decl.choices:
            raise Refused(f"must be one of {', '.join(decl.choices)}, not {value!r}")
        return wanted(value)
    read = _READERS.get(wanted)
    if read is None:  # pragma: no cover - a declaration of a type nobody reads
        raise Refused(f"has an unsupported type {wanted!r}")
    result = read(value)
    if wanted in (int, float):
        _in_range(decl.spec, result)
    if decl.choices:
        unknown = [item for item in result if item not in decl.choices]
        if unknown:
            known = ", ".join(sorted(decl.choices))
            raise Refused(f"unknown {decl.spec.item} {unknown[0]!r} (known: {known})")
    for check in decl.spec.checks:
        problem = check(result)
        if problem:
            raise Refused(problem)
    return result


def _without_none(wanted: Any) -> Any:
    """`bool | None` is read as bool: None is only ever the default (the key absent)."""
    if isinstance(wanted, types.UnionType):
        return next(arg for arg in typing.get_args(wanted) if arg is not type(None))
    return wanted


def _in_range(spec: Spec, value: float) -> None:
    low, high = spec.low, spec.high
    if low is not None and high is not None and low > 0 and not low <= value <= high:
        raise Refused(f"must be between {low} and {high}")
    if low is not None and value < low:
        raise Refused("must not be negative" if low == 0 else f"must be at least {low}")
    if high is not None and value > high:
        raise Refused(
            f"is a percentage: at most {high}" if spec.percent else f"must be at most {high}"
        )


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refused(f"must be an integer, not {type(value).__name__}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused(f"must be a number, not {type(value).__name__}")
    return float(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise Refused(f"must be a string, not {type(value).__name__}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Refused(f"must be true or false, not {value!r}")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Refused("must be a list of strings")
    return tuple(value)


_READERS: dict[Any, Callable[[Any], Any]] = {
    int: _int,
    float: _float,
    str: _str,
    bool: _bool,
    tuple[str, ...]: _strings,
}
