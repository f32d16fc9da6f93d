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
from agent.custody import chainfiles
from agent.custody.records import sidecar_bytes
from agent.custody.seal import SIDECAR_SUFFIX
from agent.rebuild.chain import Chain
from agent.rebuild.report import RebuildReport
from agent.store import RecordRow
from agent.sync.receipts import RECEIPT_SUFFIX

_log = log.get(__name__)


@dataclass(frozen=True)
class Entry:
    source: Path
    target: str  # relative to the unsealed directory: <serial>/<name> or _chain/<name>


def plan(staging: Path, known: set[str], chain: Chain, report: RebuildReport) -> list[Entry]:
    """The entries to set aside: `known` are the staged paths of the restored rows."""
    entries: list[Entry] = []
    for directory in sorted(staging.iterdir()) if staging.is_dir() else ():
        if not directory.is_dir():
            continue
        if directory.name == chainfiles.CHAIN_DIR:
            entries.extend(_foreign_audit_sidecars(staging, chain))
            continue
        names = sorted(os.listdir(directory))
        for name in names:
            staged = name.removesuffix(SIDECAR_SUFFIX).removesuffix(RECEIPT_SUFFIX)
            if durable.is_temp_name(name) or f"{directory.name}/{staged}" in known:
                continue
            entries.append(Entry(directory / name, f"{directory.name}/{name}"))
            if staged != name:
                continue
            report.set_aside.append(f"{directory.name}/{name}")
            if name + SIDECAR_SUFFIX in names:
                report.problems.append(
                    f"{directory.name}/{name}: set aside, but beside a sidecar whose record is "
                    "not in the rebuilt chain: it may have been sealed, and its camera may no "
                    "longer hold it"
                )
    return entries


def _foreign_audit_sidecars(staging: Path, chain: Chain) -> list[Entry]:
    ours: dict[Path, RecordRow] = {
        chainfiles.audit_sidecar_path(staging, seq): found.record
        for seq, found in chain.items()
        if found.record.kind == "audit"
    }
    entries: list[Entry] = []
    for side in chainfiles.audit_sidecars(staging):
        record = ours.get(side)
        try:
            same = record is not None and side.read_bytes() == sidecar_bytes(record)
        except OSError:
            same = False
        if not same:
            # Named by agent.rebuild.chain when its record is not in the chain; one that only
            # differs in form is written again from the chain by agent.custody.recovery.
            entries.append(Entry(side, f"{chainfiles.CHAIN_DIR}/{side.name}"))
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
