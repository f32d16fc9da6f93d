"""Printing for the technician: JSON for machines, aligned text for people; names escaped."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
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
