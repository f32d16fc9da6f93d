"""The sidecars of purged copies, kept in one append-only file per day instead of one file each.

A copy that stays staged keeps its sidecars beside it (agent.custody.staging). Once its copy is
purged, its signed record, its sinks' signed confirmations and its upload receipt are only read
again by `dockagent verify` and `dockagent rebuild`; kept as files they cost three inodes and
three 4 KiB blocks per file for ever (about 2.7 million inodes and 10 GiB a year at 900,000 files),
in camera directories that every start-up walk lists. Here they are moved into
`staging/_archive/<YYYY-MM-DD>.sidecars`, the day (station wall clock, UTC) they were archived:
a few hundred files a year, each sidecar costing its own bytes only.

Why one file per day and not fan-out directories: fan-out bounds a directory's size but not the
inode count, and every sidecar would still cost a block. Why a day and not a month: a reader
looking for a recent purge (an incremental verify) reads today's file, not a month's.

Format: JSON lines, one sidecar per line, `{"name": "<serial>/<sidecar name>", "text": ...}` with
the sidecar's exact bytes as a JSON string (sidecars are UTF-8 JSON; bytes that are not UTF-8
are kept as `"b64"`), so every signature verifies as it did beside the copy and
`verify` compares the bytes as it compares a live sidecar. JSON escapes every newline, so a line
is one entry and a torn write can only be the end of the file.

Durability (DESIGN.md rule 3, fsync(2)): the lines are appended (O_APPEND, under flock(2), so two
writers never interleave), the file fsynced, and a new file's name fsynced into `_archive`
before any sidecar is unlinked; then the sidecars are unlinked and their directory fsynced. A
crash in between leaves a sidecar both here and beside (the next start archives it again:
readers take identical duplicates as one). Bytes after the last newline are a write a power
cut tore: the next append cuts them off first (their sidecars were never unlinked), and readers
skip them. This module decides no purge and checks no signature; it moves and reads bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agent.core import crashpoints, durable
from agent.custody import staging
from agent.custody.staging import EntryKind

# Longer than any sidecar the agent writes (a few KiB): a longer line is not one of ours.
MAX_LINE = 1 << 20
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")
_ARCHIVED_KINDS = (EntryKind.SIDECAR, EntryKind.RECEIPT, EntryKind.CONFIRMATION)
_TAIL_CHUNK = 64 * 1024
# Sidecars read into memory and appended at a time: a station whose purged copies kept their
# sidecars beside them (before this archive) has them all moved by its first recovery.
BATCH = 4096


@dataclass(frozen=True)
class Archived:
    """One line of an archive: the sidecar `name` (`<serial>/<name>`, as it stood in staging)
    and its bytes; `problem` says why a line holds none (then name and data may be empty)."""

    where: str  # `_archive/<day>.sidecars:<line>`, for a person to find it
    name: str
    data: bytes
    problem: str = ""

    @property
    def kind(self) -> EntryKind:
        directory, _, name = self.name.partition("/")
        return staging.classify(Path(directory), name).kind


def period_of(wall: str) -> str:
    """The archive a sidecar archived at wall-clock time `wall` (ISO 8601) goes to."""
    match = _DAY.match(wall)
    return match.group(0) if match else "undated"


# ---- writing -----------------------------------------------------------------------------


def archive_sidecars(root: Path, staged: Iterable[str], wall: str) -> int:
    """Move every sidecar (signed record, confirmations, receipt) of these staged copies
    (`<serial>/<id>.<ext>`, whose purge is committed) into the archive of the day; returns how
    many were moved. Crash-safe at every step (see the module's docstring)."""
    wanted: dict[Path, set[str]] = {}
    for rel in staged:
        serial, _, name = rel.partition("/")
        wanted.setdefault(staging.camera_dir(root, serial), set()).add(name)
    moving: list[staging.Entry] = []
    for directory, names in sorted(wanted.items()):
        if not directory.is_dir():
            continue
        moving.extend(
            e for e in staging.entries(directory) if e.kind in _ARCHIVED_KINDS and e.staged in names
        )
    for start in range(0, len(moving), BATCH):
        _move(root, moving[start : start + BATCH], wall)
    return len(moving)


def _move(root: Path, moving: list[staging.Entry], wall: str) -> None:
    """One batch: appended and fsynced, then unlinked, then each directory fsynced."""
    append(root, period_of(wall), [(e.rel, e.path.read_bytes()) for e in moving])
    crashpoints.hit("purge.archived")
    for entry in moving:
        with contextlib.suppress(FileNotFoundError):  # archived by a race, gone meanwhile
            entry.path.unlink()
    for directory in {e.path.parent for e in moving}:
        durable.fsync_dir(directory)


def line_of(name: str, data: bytes) -> bytes:
    try:
        entry = {"name": name, "text": data.decode("utf-8")}
    except UnicodeDecodeError:
        entry = {"name": name, "b64": base64.b64encode(data).decode("ascii")}
    return json.dumps(entry, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def append(root: Path, period: str, items: list[tuple[str, bytes]]) -> None:
    """Append sidecars (name, bytes) to the archive of `period`, durably."""
    directory = staging.archive_dir(root)
    durable.ensure_dir(directory, durable.DIR_MODE)
    path = staging.archive_path(root, period)
    payload = b"".join(line_of(name, data) for name, data in items)
    created = not os.path.lexists(path)
    # Read too: the torn tail is looked for before appending.
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, durable.FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        _cut_torn_tail(fd)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        durable.fsync_dir(directory)


def _cut_torn_tail(fd: int) -> None:
    """Cut bytes after the last newline: a line a power cut tore (its sidecars were never
    unlinked, they are still beside their copy's name and are archived again)."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        chunk = os.pread(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            end = start + cut + 1
            break
        end = start
    if end != size:
        os.ftruncate(fd, end)
        os.fsync(fd)


# ---- reading -----------------------------------------------------------------------------


def read(path: Path, root: Path) -> Iterator[Archived]:
    """The lines of one archive, in order; a line that holds no sidecar comes with its
    problem. The torn end of a write cut short (no newline) is not a line and is skipped.
    Memory per line is bounded by MAX_LINE, whatever the file holds."""
    where = str(path.relative_to(root))
    with open(path, "rb") as fh:
        number = 0
        while line := fh.readline(MAX_LINE + 1):
            number += 1
            if not line.endswith(b"\n"):
                if len(line) <= MAX_LINE:
                    return  # the torn end of the file
                _skip_line(fh)
                yield Archived(f"{where}:{number}", "", b"", "a line longer than any sidecar")
                continue
            yield parse(f"{where}:{number}", line)


def _skip_line(fh: BinaryIO) -> None:
    while (rest := fh.readline(MAX_LINE)) and not rest.endswith(b"\n"):
        pass


def parse(where: str, line: bytes) -> Archived:
    """One archive line, as written by line_of()."""
    try:
        entry = json.loads(line)
        name = entry["name"]
        data = entry["text"].encode("utf-8") if "text" in entry else None
        if data is None:
            data = base64.b64decode(entry["b64"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, RecursionError):
        return Archived(where, "", b"", "not an archived sidecar")
    if not isinstance(name, str) or not _is_sidecar_name(name):
        return Archived(where, "", b"", "names no sidecar of a staged copy")
    return Archived(where, name, data)


def _is_sidecar_name(name: str) -> bool:
    directory, slash, base = name.partition("/")
    if not slash or not directory or directory.startswith(("_", ".")) or "/" in base:
        return False
    return staging.classify(Path(directory), base).kind in _ARCHIVED_KINDS


def all_archived(root: Path, *, newest_first: bool = False) -> Iterator[Archived]:
    """Every line of every archive, oldest day first (or newest first)."""
    paths = staging.archives(root)
    for path in reversed(paths) if newest_first else paths:
        yield from read(path, root)


def find(root: Path, names: set[str]) -> dict[str, bytes]:
    """The archived bytes of these sidecar names, read newest day first and stopping once all
    are found (a sidecar archived twice, after a crash, is the same bytes twice)."""
    found: dict[str, bytes] = {}
    if not names:
        return found
    for path in reversed(staging.archives(root)):
        for entry in read(path, root):
            if entry.name in names and entry.name not in found:
                found[entry.name] = entry.data
        if len(found) == len(names):
            break
    return found
