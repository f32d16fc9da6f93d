"""How a configuration key is declared, and how one value is read against its declaration.

A key is a field of a frozen table dataclass (`tables.py`, `health.py`, `sync.py`), written
`key(default, doc, ...)`: its name and type are the field's, its table the class's (whose DOC
opens the table in the example), and the field's metadata carries the rest (range or choices,
further checks, the text config.example.toml shows). The reader, the example and the tests all
read these declarations; none repeats a default, a range or a choice list.
Nothing here reads a file or knows a particular key.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
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

    # What config.example.toml says above the key, line for line. "{range}" and "{choices}"
    # stand for the declared range and choices.
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
    # The value config.example.toml (and so an installed station's file) sets, where it is not
    # the default a file without the key gets; None: the example shows the default.
    shipped: Any = None


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
    shipped: Any = None,
) -> T:
    """A table field declared as a configuration key (see Spec for the arguments)."""
    spec = Spec(
        doc, low, 100 if percent else high, percent, choices, item, checks, not_above, toml, shipped
    )
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


def read(decl: Declared, value: Any) -> tuple[Any, str | None]:
    """`value` from the file as the key's type, and what is wrong with it (None: nothing)."""
    wanted = _without_none(decl.type)
    if decl.choices and wanted != tuple[str, ...]:
        if not isinstance(value, str) or value not in decl.choices:
            return value, f"must be one of {', '.join(decl.choices)}, not {value!r}"
        return wanted(value), None
    shape = _SHAPES[wanted](value)
    if shape is not None:
        return value, shape
    result = _CONVERT.get(wanted, _same)(value)
    tests: list[Check] = []
    if wanted in (int, float):
        tests.append(functools.partial(_out_of_range, decl.spec))
    if decl.choices:
        tests.append(functools.partial(_unknown_item, decl))
    # In order, and no further than the first problem: a file is only stat'ed once it exists.
    tests.extend(decl.spec.checks)
    return result, next((problem for test in tests if (problem := test(result))), None)


def _without_none(wanted: Any) -> Any:
    """`bool | None` is read as bool: None is only ever the default (the key absent)."""
    if isinstance(wanted, types.UnionType):
        return next(arg for arg in typing.get_args(wanted) if arg is not type(None))
    return wanted


def _out_of_range(spec: Spec, value: float) -> str | None:
    low, high = spec.low, spec.high
    if low is not None and high is not None and low > 0 and not low <= value <= high:
        return f"must be between {low} and {high}"
    if low is not None and value < low:
        return "must not be negative" if low == 0 else f"must be at least {low}"
    if high is not None and value > high:
        return f"is a percentage: at most {high}" if spec.percent else f"must be at most {high}"
    return None


def _unknown_item(decl: Declared, value: tuple[str, ...]) -> str | None:
    unknown = [item for item in value if item not in decl.choices]
    if not unknown:
        return None
    return f"unknown {decl.spec.item} {unknown[0]!r} (known: {', '.join(sorted(decl.choices))})"


def _int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer, not {type(value).__name__}"
    return None


def _float(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, not {type(value).__name__}"
    return None


def _str(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {type(value).__name__}"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {value!r}"


def _strings(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return None
    return "must be a list of strings"


def _same(value: Any) -> Any:
    return value


# What a value of each declared type must look like in TOML, and what it becomes.
_SHAPES: dict[Any, Check] = {
    int: _int,
    float: _float,
    str: _str,
    bool: _bool,
    tuple[str, ...]: _strings,
}
_CONVERT: dict[Any, Callable[[Any], Any]] = {float: float, tuple[str, ...]: tuple}
