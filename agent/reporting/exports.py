"""CSV exports that a spreadsheet opens safely: RFC 4180 line ends, formula-like text quoted.

A cell that starts like a formula (=, +, @, a tab, a carriage return, or a minus that does not
start a number) is prefixed with an apostrophe, so Excel and LibreOffice show it as text instead
of running it (CSV injection). UTF-8 with a byte order mark by default: without one, Excel on a
Chinese Windows reads UTF-8 as the ANSI code page (GBK) and garbles every name. Only formats rows
it is given; it queries nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

_FORMULA_START = ("=", "+", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: formula-like text is quoted (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and (
        value.startswith(_FORMULA_START) or (value.startswith("-") and not value[1:2].isdigit())
    ):
        return "'" + value
    return value


BOM = "\ufeff"


def to_csv(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    bom: bool = True,
    headers: Sequence[str] | None = None,
) -> str:
    """The rows as CSV with a header line of `headers` (the station's language's names of the
    columns, agent.reporting.headers), else of `columns`; a missing column is an empty cell.
    bom: start with U+FEFF, which UTF-8 encodes as the BOM spreadsheets look for."""
    out = io.StringIO()
    if bom:
        out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends
    if headers is not None and len(headers) != len(columns):
        raise ValueError("one header per column")
    writer.writerow(headers if headers is not None else columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return out.getvalue()
