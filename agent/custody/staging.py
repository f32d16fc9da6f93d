"""The staging layout: every name below `<data_dir>/staging`, and every walk of it.

    staging/<serial>/<id>.<ext>                 a held copy
    staging/<serial>/<id>.<ext>.custody.json    its signed record (agent.custody.seal)
    staging/<serial>/<id>.<ext>.upload.json     its upload receipt (agent.sync.receipts)
    staging/<serial>/<id>.<ext>.<seq>.confirmed.json  a sink's signed confirmation of it
    staging/_chain/<seq>.audit.json             an audit record (agent.custody.chainfiles)
    staging/_chain/head.json                    the newest record committed
    staging/_archive/<YYYY-MM-DD>.sidecars      the sidecars of purged copies, one line each
                                                (agent.custody.archive)
    .<name>.<random>.part                       a temp file anywhere (agent.core.durable)

The sidecars of a purged copy leave its camera directory for the archive of the day it was
purged (agent.custody.archive), so a camera directory holds what is still staged: its size, and
the cost of every walk below, follows the copies held, not the station's history.

Names never come from a camera's (hostile) file names, only from row ids, record seqs and a short,
checked extension. This module names and lists; it reads no file's content and writes nothing.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.core import durable

STAGING_DIR = "staging"
# Not a camera serial (serials are 1-32 of A-Z a-z 0-9 -), so it cannot meet a camera's directory.
CHAIN_DIR = "_chain"
# Nor is this: the sidecars of purged copies, moved out of the camera directories.
ARCHIVE_DIR = "_archive"
ARCHIVE_SUFFIX = ".sidecars"
SIDECAR_SUFFIX = ".custody.json"
RECEIPT_SUFFIX = ".upload.json"
CONFIRMATION_SUFFIX = ".confirmed.json"
AUDIT_SUFFIX = ".audit.json"
HEAD_NAME = "head.json"

_EXT = re.compile(rb"\.([A-Za-z0-9]{1,8})$")


# ---- names --------------------------------------------------------------------------------


def staging_root(data_dir: Path) -> Path:
    return data_dir / STAGING_DIR


def staged_name(file_id: int, rel_path: bytes) -> str:
    """Staged files are named by row id: unique, safe, and never derived from a hostile name."""
    match = _EXT.search(rel_path)
    ext = match.group(1).decode("ascii").lower() if match else "bin"
    return f"{file_id:08d}.{ext}"


def staged_rel(serial: str, file_id: int, rel_path: bytes) -> str:
    """A staged copy's path below the staging root (what a row's `staged_path` holds)."""
    return f"{serial}/{staged_name(file_id, rel_path)}"


def camera_dir(root: Path, serial: str) -> Path:
    return root / serial


def staged_id(name: str) -> int | None:
    """The file id in a staged name (`<id>.<ext>`, its sidecar or receipt), else None."""
    head = name.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def sidecar_path(root: Path, staged: str) -> Path:
    return root / (staged + SIDECAR_SUFFIX)


def receipt_path(root: Path, staged: str) -> Path:
    return root / (staged + RECEIPT_SUFFIX)


def confirmation_path(root: Path, staged: str, seq: int) -> Path:
    """A file may be confirmed more than once (sent again after a rebuild): one each, by seq."""
    return root / f"{staged}.{seq:010d}{CONFIRMATION_SUFFIX}"


def chain_dir(root: Path) -> Path:
    return root / CHAIN_DIR


def audit_sidecar_path(root: Path, seq: int) -> Path:
    return chain_dir(root) / f"{seq:010d}{AUDIT_SUFFIX}"


def head_path(root: Path) -> Path:
    return chain_dir(root) / HEAD_NAME


def archive_dir(root: Path) -> Path:
    return root / ARCHIVE_DIR


def archive_path(root: Path, period: str) -> Path:
    return archive_dir(root) / f"{period}{ARCHIVE_SUFFIX}"


def archives(root: Path) -> list[Path]:
    """Every archive of purged copies' sidecars, oldest period first (their names sort so)."""
    directory = archive_dir(root)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(ARCHIVE_SUFFIX))


# ---- what a name in a camera directory is -------------------------------------------------


class EntryKind(enum.StrEnum):
    COPY = "copy"  # <id>.<ext>
    SIDECAR = "sidecar"  # <id>.<ext>.custody.json
    RECEIPT = "receipt"  # <id>.<ext>.upload.json
    CONFIRMATION = "confirmation"  # <id>.<ext>.<seq>.confirmed.json
    TEMP = "temp"  # a durable write that never published
    OTHER = "other"  # a name staging never makes


@dataclass(frozen=True)
class Entry:
    """One name in a camera directory: what it is, and the staged copy it belongs to."""

    path: Path
    kind: EntryKind
    file_id: int | None  # the id its name carries (None for a temp or a foreign name)
    staged: str  # the name of the copy it belongs to (itself, for a copy)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def rel(self) -> str:
        """`<serial>/<name>`, relative to the staging root."""
        return f"{self.path.parent.name}/{self.path.name}"


def classify(directory: Path, name: str) -> Entry:
    path = directory / name
    if durable.is_temp_name(name):
        return Entry(path, EntryKind.TEMP, None, name)
    file_id = staged_id(name)
    for suffix, kind in ((SIDECAR_SUFFIX, EntryKind.SIDECAR), (RECEIPT_SUFFIX, EntryKind.RECEIPT)):
        if name.endswith(suffix):
            return Entry(path, kind, file_id, name.removesuffix(suffix))
    if name.endswith(CONFIRMATION_SUFFIX):
        staged = name.removesuffix(CONFIRMATION_SUFFIX).rsplit(".", 1)[0]
        return Entry(path, EntryKind.CONFIRMATION, file_id, staged)
    if file_id is not None and name.count(".") == 1:
        return Entry(path, EntryKind.COPY, file_id, name)
    return Entry(path, EntryKind.OTHER, file_id, name)


# ---- walks --------------------------------------------------------------------------------


def camera_dirs(root: Path) -> list[Path]:
    """Staging's camera directories (every directory but `_chain` and `_archive`), in name
    order."""
    if not root.is_dir():
        return []
    return sorted(
        d for d in root.iterdir() if d.is_dir() and d.name not in (CHAIN_DIR, ARCHIVE_DIR)
    )


def entries(directory: Path) -> list[Entry]:
    """Every name in one camera directory, classified, in name order."""
    return [classify(directory, name) for name in sorted(os.listdir(directory))]


def all_entries(root: Path) -> Iterator[Entry]:
    """Every name in every camera directory, classified: directory by directory, in name order."""
    for directory in camera_dirs(root):
        yield from entries(directory)


def file_sidecars(root: Path) -> list[Path]:
    """Every file sidecar in staging's camera directories, in name order."""
    return [e.path for e in all_entries(root) if e.kind is EntryKind.SIDECAR]


def confirmation_sidecars(root: Path) -> list[Path]:
    """Every confirmation sidecar in staging's camera directories, in name order."""
    return [e.path for e in all_entries(root) if e.kind is EntryKind.CONFIRMATION]


def audit_sidecars(root: Path) -> list[Path]:
    """Every audit sidecar in `_chain`, in seq order (their names are zero-padded)."""
    directory = chain_dir(root)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(AUDIT_SUFFIX))


def newest_staged(root: Path) -> tuple[int, str]:
    """The highest file id a name in staging's camera directories carries, with the name
    ((0, "") when there is none). Temp files are left out: they name no committed row."""
    ids = (
        (e.file_id, e.name)
        for e in all_entries(root)
        if e.file_id is not None and e.kind is not EntryKind.TEMP
    )
    return max(ids, default=(0, ""))


def temp_files(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """Temp names left by interrupted durable writes: of the data directory itself (the key, the
    store marker) and of every directory in staging, as (directory, names), directories that
    hold none left out."""
    listings = [(str(root.parent), os.listdir(root.parent))]
    listings.extend((dirpath, names) for dirpath, _dirs, names in os.walk(root))
    for dirpath, names in listings:
        temps = [name for name in names if durable.is_temp_name(name)]
        if temps:
            yield Path(dirpath), temps
