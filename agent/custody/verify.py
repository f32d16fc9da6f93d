"""Check held evidence: every staged byte, every signature, the whole chain, every sidecar.

Each record is checked by agent.custody.records.record_problems, in chain order. Sidecars are
checked both ways: each record's sidecar must equal it, and each sidecar in staging (of a file
or an audit record, and the chain head) must name a record the database holds, or the database
lost committed records.

A user who may not read the evidence (a technician of the station's group: staged copies,
sidecars and receipts are the service user's alone) gets the checks that need none of it:
every record, each file row against its record, the chain's end and staging's head; the
report says that no staged byte was re-hashed (`evidence_checked`).

Read-only. Returns problems as data (one per finding, naming the file or record) so the CLI
can print them and exit non-zero; it never repairs anything it finds, and never stops at one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.core.model import CHECKED_BY_VERIFY, FileState, Problem, display_name
from agent.custody import chainfiles, staging
from agent.custody.digest import hash_file
from agent.custody.keys import Verifier
from agent.custody.records import (
    FIRST,
    link_after,
    record_from_sidecar,
    record_problems,
    sidecar_bytes,
    signed_body,
)
from agent.custody.staging import sidecar_path
from agent.store import FileRow, RecordRow, Store, UnreadableFile


@dataclass
class Report:
    files_checked: int = 0
    bytes_hashed: int = 0
    records_checked: int = 0
    problems: list[Problem] | None = None
    evidence_checked: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Files:
    """What the walk over the file rows needs at hand."""

    staging_root: Path
    by_seq: dict[int, RecordRow]
    file_records: dict[object, RecordRow]  # by the file id each file record names
    report: Report
    buffer: bytearray
    problems: list[Problem] = field(default_factory=list)
    evidence: bool = True  # staged copies and sidecars can be read


def check_chain(
    records: Iterator[RecordRow], key: Verifier
) -> tuple[dict[int, RecordRow], list[Problem]]:
    """Every record checked in chain order, each against the place the one before it left."""
    problems: list[Problem] = []
    by_seq: dict[int, RecordRow] = {}
    expected = FIRST
    for rec in records:
        by_seq[rec.seq] = rec
        problems.extend(record_problems(rec, key, expected=expected))
        expected = link_after(rec) or expected
    return by_seq, problems


def verify(
    store: Store,
    key: Verifier,
    staging_root: Path,
    chunk_bytes: int = 1 << 20,
    *,
    evidence: bool = True,
) -> Report:
    problems: list[Problem] = []
    report = Report(problems=problems, evidence_checked=evidence)
    by_seq, chain_problems = check_chain(store.records(), key)
    problems.extend(chain_problems)
    report.records_checked = len(by_seq)
    problems.extend(_truncation(store.meta("chain_head_seq"), by_seq))
    file_records: dict[object, RecordRow] = {
        rec.file_id: rec for rec in by_seq.values() if rec.kind == "file"
    }
    buffer = bytearray(chunk_bytes if evidence else 0)
    walk = _Files(staging_root, by_seq, file_records, report, buffer, evidence=evidence)
    file_ids: set[object] = set()
    staged: dict[object, str] = {}
    for row in store.all_files():
        file_ids.add(row.id)
        if isinstance(row, UnreadableFile):
            _unreadable(walk, row)
        else:
            staged[row.id] = str(row.staged_path)
            _check_file(walk, row)
    problems.extend(walk.problems)
    confirmations = [rec for rec in by_seq.values() if rec.kind == "confirmation"]
    problems.extend(confirmation_problems(confirmations))
    if evidence:
        problems.extend(_confirmation_sidecar_problems(staging_root, confirmations, staged))
    if evidence:
        problems.extend(check_staging_chain(staging_root, by_seq))
    else:
        problems.extend(_head_problems(staging_root, by_seq))
    problems.extend(_rows_gone(file_records, file_ids))
    return report


def confirmation_problems(confirmations: list[RecordRow]) -> list[Problem]:
    """A sink's confirmation by a sink that is not the one the station's own configuration
    named when it was signed (agent.core.config.station): a custody move under another
    configuration, named with the sink that confirmed."""
    problems: list[Problem] = []
    for rec in confirmations:
        body = signed_body(rec)
        if body is None or body.get("sink_id") == body.get("station_sink_id"):
            continue  # a damaged body is named by the chain check
        detail = (
            f"confirmed by {_text(body.get('sink_kind'))} sink "
            f"{_text(body.get('sink_endpoint'))}, not the station's configured sink "
            f"{_text(body.get('station_sink_endpoint'))} (configuration "
            f"{_text(body.get('config'))})"
        )
        file_id = rec.file_id if isinstance(rec.file_id, int) else None
        problems.append(Problem("foreign_sink", detail, file_id=file_id, seq=rec.seq))
    return problems


def _text(value: object) -> str:
    """A signed body's text field for a person to read (hostile bytes escaped)."""
    return display_name(value if isinstance(value, str) else repr(value))


def _confirmation_sidecar_problems(
    staging_root: Path, confirmations: list[RecordRow], staged: dict[object, str]
) -> list[Problem]:
    problems: list[Problem] = []
    for rec in confirmations:
        rel = staged.get(rec.file_id)
        if rel is None:
            continue  # a row gone or unreadable is named with the file
        side = staging.confirmation_path(staging_root, rel, rec.seq)
        try:
            content = side.read_bytes()
        except FileNotFoundError:
            problems.append(Problem("missing_sidecar", f"{side.name} is missing", seq=rec.seq))
            continue
        if content != _sidecar_of(rec):
            problems.append(Problem("sidecar_differs", f"{side.name} differs", seq=rec.seq))
    return problems


def _truncation(noted: str | None, by_seq: dict[int, RecordRow]) -> list[Problem]:
    """The chain ends before the head the database noted: its newest records were removed."""
    last = max(by_seq, default=0)
    if noted is None or not noted.isdigit() or int(noted) <= last:
        return []
    return [Problem("chain_truncated", f"the chain ended at record {noted}, now at {last}")]


def _rows_gone(file_records: dict[object, RecordRow], file_ids: set[object]) -> list[Problem]:
    return [
        Problem(
            "missing_row",
            "record names a file row that is gone",
            seq=rec.seq,
            file_id=rec.file_id if isinstance(rec.file_id, int) else None,
        )
        for file_id, rec in file_records.items()
        if file_id is not None and file_id not in file_ids
    ]


def _unreadable(walk: _Files, row: UnreadableFile) -> None:
    """A row holding a value no agent writes: a state no agent knows is named as an edit of a
    row in custody (and passed over on a row with no record, as any state outside custody is);
    any other such value is named as an edited row."""
    if row.state not in {s.value for s in FileState}:
        if row.id in walk.file_records:
            detail = f"has a record but is {row.state}"
            walk.problems.append(_file_problem(row, "state_edited", detail))
        return
    walk.problems.append(_file_problem(row, "row_edited", f"the row cannot be read: {row.detail}"))


def _check_file(walk: _Files, row: FileRow) -> None:
    """One file row: its record, its staged copy, its sidecar."""
    if row.state not in CHECKED_BY_VERIFY:
        if row.id in walk.file_records:
            detail = f"has a record but is {row.state.value}"
            walk.problems.append(_file_problem(row, "state_edited", detail))
        return
    walk.report.files_checked += 1
    rec = walk.by_seq.get(row.record_seq) if row.record_seq else None
    _check_row_against_record(walk, row, rec)
    if not walk.evidence:
        return
    # Purged after the sink confirmed it (agent.sync): the staged copy is gone on purpose; the
    # record and the sidecar are still checked.
    if not (row.purged_at and row.state is FileState.CONFIRMED):
        # A damaged body (named by the chain check) tells no hash: the row's is checked.
        body = signed_body(rec) if rec is not None else None
        signed = body.get("sha256") if body is not None else row.sha256
        _check_staged_copy(walk, row, signed)
    if rec is not None:
        _check_sidecar(walk, row, rec)


def _check_row_against_record(walk: _Files, row: FileRow, rec: RecordRow | None) -> None:
    body = signed_body(rec) if rec is not None else None
    if rec is None or rec.file_id != row.id:
        detail = f"custody record {row.record_seq} is missing"
        walk.problems.append(_file_problem(row, "missing_record", detail))
    elif body is not None and (body.get("sha256") != row.sha256 or body.get("size") != row.size):
        detail = "hash or size on the row differs from its signed record"
        walk.problems.append(_file_problem(row, "row_edited", detail))


def _check_staged_copy(walk: _Files, row: FileRow, signed: object) -> None:
    path = walk.staging_root / str(row.staged_path)
    try:
        sha, size = hash_file(path, walk.buffer)
    except FileNotFoundError:
        detail = f"staged copy {row.staged_path} is missing"
        walk.problems.append(_file_problem(row, "missing_file", detail))
        return
    walk.report.bytes_hashed += size
    if sha != signed:
        detail = f"staged copy {row.staged_path} hashes {sha}, sealed as {signed}"
        walk.problems.append(_file_problem(row, "changed_bytes", detail))


def _check_sidecar(walk: _Files, row: FileRow, rec: RecordRow) -> None:
    side = sidecar_path(walk.staging_root, str(row.staged_path))
    try:
        content = side.read_bytes()
    except FileNotFoundError:
        walk.problems.append(_file_problem(row, "missing_sidecar", f"{side.name} is missing"))
        return
    if content != _sidecar_of(rec):
        detail = f"{side.name} differs from the chain"
        walk.problems.append(_file_problem(row, "sidecar_differs", detail))


def _file_problem(row: FileRow | UnreadableFile, kind: str, detail: str) -> Problem:
    return Problem(kind, detail, file_id=row.id, camera_name=row.camera_name)


def _sidecar_of(rec: RecordRow) -> bytes | None:
    """The sidecar the record must have; None for a damaged record (named by the chain check),
    which no sidecar can equal."""
    try:
        return sidecar_bytes(rec)
    except ValueError:
        return None


def check_staging_chain(staging_root: Path, by_seq: dict[int, RecordRow]) -> list[Problem]:
    """The chain as staging holds it against the database: audit sidecars both ways, every
    file sidecar's record present, the recorded head present."""
    problems = _audit_sidecar_problems(staging_root, by_seq)
    problems.extend(_lost_record_problems(staging_root, by_seq))
    problems.extend(_head_problems(staging_root, by_seq))
    return problems


def _audit_sidecar_problems(staging_root: Path, by_seq: dict[int, RecordRow]) -> list[Problem]:
    problems: list[Problem] = []
    for rec in by_seq.values():
        if rec.kind != "audit":
            continue
        side = staging.audit_sidecar_path(staging_root, rec.seq)
        try:
            content = side.read_bytes()
        except FileNotFoundError:
            problems.append(Problem("missing_sidecar", f"{side.name} is missing", seq=rec.seq))
            continue
        if content != _sidecar_of(rec):
            problems.append(Problem("sidecar_differs", f"{side.name} differs", seq=rec.seq))
    return problems


def _lost_record_problems(staging_root: Path, by_seq: dict[int, RecordRow]) -> list[Problem]:
    """Each sidecar in staging names a record the database holds, or the database lost it."""
    sidecars = [*staging.file_sidecars(staging_root), *staging.confirmation_sidecars(staging_root)]
    problems: list[Problem] = []
    for side in [*sidecars, *staging.audit_sidecars(staging_root)]:
        try:
            held = record_from_sidecar(side.read_bytes())
        except ValueError as exc:
            problems.append(Problem("sidecar_unreadable", f"{side.name}: {exc}"))
            continue
        known = by_seq.get(held.seq)
        if known is None or known.record_hash != held.record_hash:
            problems.append(
                Problem(
                    "record_lost",
                    f"{side.relative_to(staging_root)} holds signed record {held.seq}, "
                    "which the database does not hold",
                    seq=held.seq,
                )
            )
    return problems


def _head_problems(staging_root: Path, by_seq: dict[int, RecordRow]) -> list[Problem]:
    try:
        head = chainfiles.read_head(staging_root)
    except ValueError as exc:
        return [Problem("head_unreadable", str(exc))]
    if head is None:
        return []
    at_head = by_seq.get(head.seq)
    if at_head is not None and at_head.record_hash == head.record_hash:
        return []
    return [
        Problem(
            "chain_truncated",
            f"staging's chain head is record {head.seq}, which the database does not hold",
            seq=head.seq,
        )
    ]
