"""What staging holds that no record of the rebuilt chain accepts goes to `unsealed-<UTC>/`.

A staged copy no restored row names was never sealed (its camera still holds it: nothing is wiped
before it is sealed), unless its record is missing or did not verify (named among the problems); it
goes with its sidecar and receipt, since staging's names must all be rows (agent.custody.recovery).
An audit sidecar that is not the rebuilt chain's own goes to `_chain/` there, so no later record can
meet it at its seq. plan() only looks; move() renames what plan() chose, never over an existing
name, and nothing here deletes a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.core import durable, log
from agent.custody import staging as layout
from agent.custody.records import sidecar_bytes
from agent.custody.staging import EntryKind
from agent.rebuild.chain import Chain
from agent.rebuild.report import RebuildReport
from agent.store import RecordRow

_log = log.get(__name__)


@dataclass(frozen=True)
class Entry:
    source: Path
    target: str  # relative to the unsealed directory: <serial>/<name> or _chain/<name>


def plan(staging: Path, known: set[str], chain: Chain, report: RebuildReport) -> list[Entry]:
    """The entries to set aside: `known` are the staged paths of the restored rows."""
    entries: list[Entry] = []
    chain_dir = layout.chain_dir(staging)
    found = [*layout.camera_dirs(staging), *([chain_dir] if chain_dir.is_dir() else [])]
    for directory in sorted(found):
        if directory == chain_dir:
            entries.extend(_foreign_audit_sidecars(staging, chain))
            continue
        listed = layout.entries(directory)
        sidecars = {e.staged for e in listed if e.kind is EntryKind.SIDECAR}
        for entry in listed:
            if entry.kind is EntryKind.TEMP or f"{directory.name}/{entry.staged}" in known:
                continue
            entries.append(Entry(entry.path, entry.rel))
            if entry.kind in (EntryKind.SIDECAR, EntryKind.RECEIPT, EntryKind.CONFIRMATION):
                continue
            report.set_aside.append(entry.rel)
            if entry.name in sidecars:
                report.problems.append(
                    f"{entry.rel}: set aside, but beside a sidecar whose record is "
                    "not in the rebuilt chain: it may have been sealed, and its camera may no "
                    "longer hold it"
                )
    return entries


def _foreign_audit_sidecars(staging: Path, chain: Chain) -> list[Entry]:
    ours: dict[Path, RecordRow] = {
        layout.audit_sidecar_path(staging, seq): found.record
        for seq, found in chain.items()
        if found.record.kind == "audit"
    }
    entries: list[Entry] = []
    for side in layout.audit_sidecars(staging):
        record = ours.get(side)
        try:
            same = record is not None and side.read_bytes() == sidecar_bytes(record)
        except OSError:
            same = False
        if not same:
            # Named by agent.rebuild.chain when its record is not in the chain; one that only
            # differs in form is written again from the chain by agent.custody.recovery.
            entries.append(Entry(side, f"{layout.CHAIN_DIR}/{side.name}"))
    return entries


def move(entries: list[Entry], aside: Path) -> None:
    touched: set[Path] = set()
    for entry in entries:
        target = aside / entry.target
        durable.ensure_private_dir(target.parent)
        free, n = target, 1
        while os.path.lexists(free):
            n += 1  # a name set aside before (a rebuild within the same second)
            free = target.with_name(f"{target.name}.{n}")
        os.rename(entry.source, free)
        touched.update((free.parent, entry.source.parent))
        _log.info("store.set_aside", path=entry.target, to=str(free))
    for directory in sorted(touched):
        durable.fsync_dir(directory)
