"""The staging tree's names: where the station keeps each held copy, its sidecar and its receipt.

Every name below `<data_dir>/staging` is made here and nowhere else; names never come from a
camera's (hostile) file names, only from row ids and a short, checked extension.
"""

from __future__ import annotations

import re

_EXT = re.compile(rb"\.([A-Za-z0-9]{1,8})$")


def staged_name(file_id: int, rel_path: bytes) -> str:
    """Staged files are named by row id: unique, safe, and never derived from a hostile name."""
    match = _EXT.search(rel_path)
    ext = match.group(1).decode("ascii").lower() if match else "bin"
    return f"{file_id:08d}.{ext}"
