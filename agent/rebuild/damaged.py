"""The damaged database is kept, never deleted: under `dockagent.db.damaged-<UTC>`, with its
-wal and -shm.

keep() gives each file its kept name as a second hard link, so until the rebuilt database takes
its place the one in use stays exactly where it was, and a rebuild killed at any moment finds it
again (the same file already kept is recognised, not kept twice). let_go() then drops only the
names in use of the -wal and -shm, whose content the kept names still hold. Nothing here opens
the database, and no kept name is ever overwritten.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from agent.core import durable

SUFFIXES = ("", "-wal", "-shm")


@dataclass
class Kept:
    base: Path  # dockagent.db.damaged-<stamp>
    stamp: str  # <UTC>[-n]: also names the directory unsealed copies go to
    names: list[str] = field(default_factory=list)


def keep(db: Path, stamp: str) -> Kept:
    """Kept names for the database in use and its -wal and -shm (those that exist)."""
    base = _already_kept(db) or _fresh_base(db, stamp)
    kept = Kept(base, base.name.removeprefix(f"{db.name}.damaged-"))
    for suffix in SUFFIXES:
        name = _keep_one(Path(f"{db}{suffix}"), Path(f"{base}{suffix}"))
        if name is not None:
            kept.names.append(name.name)
    durable.fsync_dir(db.parent)
    return kept


def let_go(db: Path, kept: Kept) -> None:
    """Right before the rebuilt database is renamed over the one in use: its -wal and -shm
    leave their names in use (SQLite would apply an old -wal to the new database). Whatever
    they hold stays under their kept names, also if another process opened them since keep."""
    for suffix in SUFFIXES[1:]:
        live = Path(f"{db}{suffix}")
        name = _keep_one(live, Path(f"{kept.base}{suffix}"))
        if name is None:
            continue
        if name.name not in kept.names:
            kept.names.append(name.name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(live)  # its content is kept under `name`, the same file
    durable.fsync_dir(db.parent)


def _keep_one(live: Path, wanted: Path) -> Path | None:
    """The kept name of `live` (a hard link), made if there is none yet; None if no `live`."""
    if not live.exists():
        return None
    candidate, n = wanted, 1
    while os.path.lexists(candidate):
        if os.path.samefile(candidate, live):
            return candidate
        n += 1
        candidate = Path(f"{wanted}.{n}")
    try:
        os.link(live, candidate)
    except FileNotFoundError:
        return None  # gone meanwhile (SQLite removes a -wal when its last user closes)
    return candidate


def _already_kept(db: Path) -> Path | None:
    """The kept name a rebuild killed before it finished gave the database in use."""
    if not db.exists():
        return None
    for kept in sorted(db.parent.glob(f"{db.name}.damaged-*")):
        with contextlib.suppress(OSError):
            if not kept.name.endswith(SUFFIXES[1:]) and os.path.samefile(kept, db):
                return kept
    return None


def _fresh_base(db: Path, stamp: str) -> Path:
    base, n = Path(f"{db}.damaged-{stamp}"), 1
    while any(os.path.lexists(f"{base}{s}") for s in SUFFIXES):
        n += 1  # a second rebuild within the same second: never rename over the first
        base = Path(f"{db}.damaged-{stamp}-{n}")
    return base
