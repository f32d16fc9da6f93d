"""Printing for the technician: JSON for machines, aligned text for people; names escaped.

Every JSON document is an object with "schema_version" at its top and one field name per
concept across the commands (README "JSON output"): rows built elsewhere with older names pass
through canonical() on their way out. Nothing here reads the store or decides what to print.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

# The shape of the --json documents (README "JSON output"): raised when a field is renamed or
# removed or a document changes shape, so that a consumer can tell which it reads. Version 1
# was the unversioned output, some of it bare lists, with several names for one concept.
SCHEMA_VERSION = 2

# Older names of a row's fields (as the ledger's and report's CSV columns and the store's rows
# still call them) -> the one name of README "JSON output".
CANONICAL: dict[str, str] = {
    "camera": "device_serial",
    "serial": "device_serial",
    "officer": "officer_id",
    "previous_officer": "previous_officer_id",
    "docked_at_utc": "docked_at",
    "undocked_at_utc": "undocked_at",
    "ingested_at_utc": "ingested_at",
    "generated_at_utc": "generated_at",
}


def canonical(row: Mapping[str, Any], **names: str) -> dict[str, Any]:
    """The row's fields under their README "JSON output" names (`names` adds this row's own,
    e.g. at="refused_at"); only the row's own keys, never those of what it holds."""
    table = {**CANONICAL, **names}
    return {table.get(k, k): v for k, v in row.items()}


def emit_json(data: Mapping[str, Any]) -> None:
    """Print one --json document: the object given, with the schema version at its top."""
    json.dump(
        {"schema_version": SCHEMA_VERSION, **data},
        sys.stdout,
        indent=2,
        sort_keys=True,
        default=str,
    )
    sys.stdout.write("\n")


def add_bom_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-bom",
        dest="bom",
        action="store_false",
        help="CSV without the UTF-8 byte order mark (it is there by default, so that Excel "
        "reads Chinese names as UTF-8)",
    )


def emit_csv(text: str) -> None:
    """A CSV export as UTF-8 bytes whatever the locale's encoding (a spreadsheet reads UTF-8)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def width(text: str) -> int:
    """Columns a terminal gives the text: two for a wide character (Chinese names, UAX #11)."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(width(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c + " " * (w - width(c)) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in cells
    ]
    return "\n".join(lines)
