"""The custody chain as staging and the damaged database still hold it, every record checked.

Reads each signed sidecar (of a file or of an audit record, in staging or in the archive of
purged copies' sidecars, agent.custody.archive) and the records salvaged from the damaged
database, keeps a record only if its hash, its station signature and its place agree,
and names every gap, broken link and disagreement. A salvaged record is taken as its signed body
says (seq, kind, file) and never for the columns beside it. Never fills a gap, never prefers a
record silently over another that also verifies; writes nothing and opens no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.core.errors import StationKeyError
from agent.custody import archive, chainfiles
from agent.custody.keys import StationKey
from agent.custody.records import (
    FIRST,
    Link,
    as_signed,
    link_problems,
    record_from_sidecar,
    record_problems,
)
from agent.custody.staging import (
    EntryKind,
    audit_sidecar_path,
    audit_sidecars,
    chain_dir,
    confirmation_sidecars,
    file_sidecars,
)
from agent.rebuild.report import RebuildReport
from agent.store import RecordRow

FROM_DATABASE = "the damaged database"


@dataclass(frozen=True)
class Found:
    record: RecordRow
    where: str  # the sidecar (relative to staging), an archive line, or FROM_DATABASE
    # The sidecar's name relative to staging where it stands (or stood, before it was
    # archived); "" for a record taken from the damaged database.
    name: str = ""


Chain = dict[int, Found]


def gather(
    staging: Path, salvaged: list[RecordRow], key: StationKey, report: RebuildReport
) -> Chain:
    """Every record that verifies, by seq: the sidecars first, then what only the damaged
    database still holds. Raises StationKeyError when no sidecar verifies (the wrong key)."""
    chain: Chain = {}
    counts = _Counts()
    _gather_live(chain, staging, key, report, counts)
    _gather_archived(chain, staging, key, report, counts)
    readable, verified = counts.readable, counts.verified
    if readable and not verified:
        # Every signature failing means the wrong key, not damage: change nothing.
        raise StationKeyError(
            path=str(key.key_id),
            problem=f"signed none of the {readable} readable sidecars in {staging}; rebuild "
            "needs the station's own key (restore it from its backup)",
        )
    for salvage in salvaged:
        _add_salvaged(chain, salvage, key, report)
    return chain


@dataclass
class _Counts:
    readable: int = 0
    verified: int = 0


def _gather_live(
    chain: Chain, staging: Path, key: StationKey, report: RebuildReport, counts: _Counts
) -> None:
    """The sidecars in staging: of files and confirmations beside their copies, of audit
    records in `_chain` under their own seq."""
    sidecars = [
        *file_sidecars(staging),
        *confirmation_sidecars(staging),
        *audit_sidecars(staging),
    ]
    for side in sidecars:
        where = str(side.relative_to(staging))
        try:
            data = side.read_bytes()
        except OSError as exc:
            report.problems.append(f"{where}: unreadable ({exc})")
            continue
        record = _verified(where, data, key, report, counts)
        if record is None:
            continue
        in_chain_dir = side.parent == chain_dir(staging)
        if record.kind == "audit" and side != audit_sidecar_path(staging, record.seq):
            report.problems.append(f"{where}: holds audit record {record.seq}")
            continue
        if record.kind != "audit" and in_chain_dir:
            report.problems.append(f"{where}: holds {record.kind} record {record.seq}")
            continue
        _add(chain, Found(record, where, where), report)


def _gather_archived(
    chain: Chain, staging: Path, key: StationKey, report: RebuildReport, counts: _Counts
) -> None:
    """The sidecars of purged copies, archived (receipts are read by agent.rebuild.rows)."""
    for entry in archive.all_archived(staging):
        if entry.problem:
            report.problems.append(f"{entry.where}: {entry.problem}")
            continue
        if entry.kind is EntryKind.RECEIPT:
            continue
        where = f"{entry.where} ({entry.name})"
        record = _verified(where, entry.data, key, report, counts)
        if record is None:
            continue
        if record.kind == "audit":
            report.problems.append(f"{where}: holds audit record {record.seq}")
            continue
        _add(chain, Found(record, where, entry.name), report)


def _verified(
    where: str, data: bytes, key: StationKey, report: RebuildReport, counts: _Counts
) -> RecordRow | None:
    """The record a sidecar's bytes hold, if it verifies on its own; else None, named."""
    try:
        record = record_from_sidecar(data)
    except ValueError as exc:
        report.problems.append(f"{where}: unreadable ({exc})")
        return None
    counts.readable += 1
    problem = _problem(record, key)
    if problem is not None:
        report.problems.append(f"{where}: record {record.seq} {problem}")
        return None
    counts.verified += 1
    return record


def _add_salvaged(chain: Chain, salvage: RecordRow, key: StationKey, report: RebuildReport) -> None:
    try:
        record = as_signed(salvage)
    except ValueError as exc:
        # Damage in the database where a sidecar holds the record at its place is what the
        # rebuild repairs, as for a record that does not verify below.
        if salvage.seq not in chain:
            report.problems.append(f"record {salvage.seq} in {FROM_DATABASE}: unreadable ({exc})")
        return
    known = chain.get(record.seq)
    if known is not None and known.record.record_hash == record.record_hash:
        return  # the same record as its sidecar
    problem = _problem(record, key)
    if problem is not None:
        if known is None:
            report.problems.append(f"record {record.seq} in {FROM_DATABASE} {problem}")
        # else: damage in the database where the sidecar holds the record whole.
        return
    if known is not None:
        # Two records for one place in the chain that both verify: neither is preferred
        # silently (the sidecar's stays, the chain is not called whole).
        _add(chain, Found(record, FROM_DATABASE), report)
        return
    chain[record.seq] = Found(record, FROM_DATABASE)
    report.salvaged += 1


def _problem(record: RecordRow, key: StationKey) -> str | None:
    """What is wrong with one record on its own (records.record_problems), as one phrase."""
    problems = record_problems(record, key)
    return "; ".join(dict.fromkeys(p.detail for p in problems)) if problems else None


def _add(chain: Chain, found: Found, report: RebuildReport) -> None:
    seq = found.record.seq
    if seq in chain and chain[seq].record.record_hash != found.record.record_hash:
        report.problems.append(
            f"record {seq}: {chain[seq].where} and {found.where} hold different signed records"
        )
        return
    chain.setdefault(seq, found)


def check_links(chain: Chain, staging: Path, report: RebuildReport) -> None:
    """Name every gap, every record that does not link to the one before, and a chain that
    ends before the head staging recorded."""
    last = max(chain, default=0)
    missing = [seq for seq in range(1, last + 1) if seq not in chain]
    for start, end in _ranges(missing):
        which = f"record {start}" if start == end else f"records {start}-{end}"
        report.problems.append(
            f"{which} of the chain: no sidecar holds it and the damaged database does not"
        )
    for seq, found in sorted(chain.items()):
        before = chain.get(seq - 1)
        expected = FIRST if seq == 1 else (Link(seq, before.record.record_hash) if before else None)
        if expected is not None and link_problems(found.record, expected):
            report.problems.append(
                f"record {seq} ({found.where}) does not link to record {seq - 1}"
            )
    try:
        head = chainfiles.read_head(staging)
    except ValueError as exc:
        report.problems.append(str(exc))
        head = None
    if head is not None and (
        head.seq not in chain or chain[head.seq].record.record_hash != head.record_hash
    ):
        report.problems.append(
            f"staging's chain head is record {head.seq}, which no sidecar holds as recorded"
        )


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out
