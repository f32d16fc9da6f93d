"""Check held evidence: every staged byte, every signature, the whole chain, every sidecar.

Each record is checked by agent.custody.records.record_problems, in chain order. Sidecars are
checked both ways: each record's sidecar must equal it, and each sidecar in staging (of a file
or an audit record, and the chain head) must name a record the database holds, or the database
lost committed records. A purged copy's sidecars are read from the archive
(agent.custody.archive) as they were read beside the copy: byte for byte against the chain.

A user who may not read the evidence (a technician of the station's group: staged copies,
sidecars and receipts are the service user's alone) gets the checks that need none of it:
every record, each file row against its record, the chain's end and staging's head; the
report says that no staged byte was re-hashed (`evidence_checked`).

Read-only. Returns problems as data (one per finding, naming the file or record) so the CLI
can print them and exit non-zero; it never repairs anything it finds, and never stops at one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.core.model import CHECKED_BY_VERIFY, FileState, Problem, display_name
from agent.custody import archive, chainfiles, staging, tsa
from agent.custody.digest import hash_file
from agent.custody.keys import Verifier
from agent.custody.records import (
    FIRST,
    Link,
    link_after,
    record_from_sidecar,
    record_problems,
    sidecar_bytes,
    signed_body,
)
from agent.custody.staging import EntryKind, sidecar_path
from agent.store import FileRow, RecordRow, Store, UnreadableFile, VerifiedHead

# Sidecars read before their records are looked up together (one query per batch).
_SIDECAR_BATCH = 512
# The sidecars in a camera's staging directory that each hold one signed record.
_SIDECAR_KINDS = (EntryKind.SIDECAR, EntryKind.CONFIRMATION)


@dataclass
class Report:
    files_checked: int = 0
    bytes_hashed: int = 0
    records_checked: int = 0
    problems: list[Problem] | None = None
    evidence_checked: bool = True
    # Where this verify ended, for the next `verify --incremental` (agent.store.verified).
    incremental: bool = False
    head: tuple[int, str] | None = None
    max_file_id: int = 0
    changed: int = 0
    # RFC 3161 tokens over the chain (agent.custody.tsa): which records each covers.
    timestamps: tsa.Checked | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


class _Archived:
    """The archived sidecars of purged copies, read a day at a time, newest first, and only as
    far as a check asks (an incremental verify reads the days since it last ran): each is
    compared byte for byte with the record of its seq in the database. Keeps one bit per
    record that passed, whatever the archives hold."""

    def __init__(self, staging_root: Path, store: Store) -> None:
        self.root, self.store = staging_root, store
        # Listed at the first look (a reader who may not read the evidence never looks).
        self.unread: list[Path] | None = None
        self.passed = bytearray()
        self.problems: list[Problem] = []

    def holds(self, seq: int) -> bool:
        """Whether an archive holds the sidecar of record `seq`, equal to it."""
        unread = self._unread()
        while not self._passed(seq) and unread:
            self._read(unread.pop(0))
        return self._passed(seq)

    def read_all(self) -> None:
        unread = self._unread()
        while unread:
            self._read(unread.pop(0))

    def _unread(self) -> list[Path]:
        if self.unread is None:
            self.unread = list(reversed(staging.archives(self.root)))
        return self.unread

    def _passed(self, seq: int) -> bool:
        return (
            seq >= 0
            and seq >> 3 < len(self.passed)
            and bool(self.passed[seq >> 3] >> (seq & 7) & 1)
        )

    def _pass(self, seq: int) -> None:
        if seq >> 3 >= len(self.passed):
            self.passed.extend(bytes((seq >> 3) + 1 - len(self.passed)))
        self.passed[seq >> 3] |= 1 << (seq & 7)

    def _read(self, path: Path) -> None:
        for entry in archive.read(path, self.root):
            if entry.problem:
                self.problems.append(
                    Problem("sidecar_unreadable", f"{entry.where}: {entry.problem}")
                )
            elif entry.kind is not EntryKind.RECEIPT:
                self._check(entry)

    def _check(self, entry: archive.Archived) -> None:
        where = f"{entry.where} ({entry.name})"
        try:
            held = record_from_sidecar(entry.data)
        except ValueError as exc:
            self.problems.append(Problem("sidecar_unreadable", f"{where}: {exc}"))
            return
        rec = self.store.record(held.seq)
        if rec is None or rec.record_hash != held.record_hash:
            detail = f"{where} holds signed record {held.seq}, which the database does not hold"
            self.problems.append(Problem("record_lost", detail, seq=held.seq))
        elif entry.data != _sidecar_of(rec):
            self.problems.append(Problem("sidecar_differs", f"{where} differs", seq=held.seq))
        else:
            self._pass(held.seq)


@dataclass
class _Files:
    """What the walk over the file rows needs at hand."""

    staging_root: Path
    report: Report
    buffer: bytearray
    archived: _Archived
    problems: list[Problem] = field(default_factory=list)
    evidence: bool = True  # staged copies and sidecars can be read


@dataclass
class _Chain:
    """What a walk of the chain keeps: the place the next record must link to, no record."""

    expected: Link | None = FIRST
    count: int = 0
    last: int = 0
    head: tuple[int, str] | None = None  # the newest record walked: seq, hash
    problems: list[Problem] = field(default_factory=list)

    def add(self, rec: RecordRow, key: Verifier) -> None:
        self.problems.extend(record_problems(rec, key, expected=self.expected))
        self.expected = link_after(rec) or self.expected
        self.count += 1
        if rec.seq >= self.last:
            self.last, self.head = rec.seq, (rec.seq, str(rec.record_hash))


def check_chain(
    records: Iterator[RecordRow], key: Verifier
) -> tuple[dict[int, RecordRow], list[Problem]]:
    """Every record checked in chain order, each against the place the one before it left."""
    by_seq: dict[int, RecordRow] = {}
    chain = _Chain()
    for rec in records:
        by_seq[rec.seq] = rec
        chain.add(rec, key)
    return by_seq, chain.problems


def verify(
    store: Store,
    key: Verifier,
    staging_root: Path,
    chunk_bytes: int = 1 << 20,
    *,
    evidence: bool = True,
    since: VerifiedHead | None = None,
    tsa_anchor: Path | None = None,
) -> Report:
    """Everything, streamed: the chain is walked keeping only the link the next record must
    make, and the rows are read joined with their records, so memory does not grow with the
    station's history. With `since` (where a clean verify ended: agent.store.verified), only
    what came after it: the record it ended at must still be the one it saw, the records after
    it must follow on, and the rows added or changed since are checked as every row is; the
    staged copies and sidecars of the rows not changed are not read again (`--full` does).
    Every kept time-stamp token is checked against `tsa_anchor` (agent.custody.tsa)."""
    problems: list[Problem] = []
    report = Report(problems=problems, evidence_checked=evidence, incremental=since is not None)
    report.changed = store.changed_mark()  # before the walk: a note after it is kept
    chain = _Chain()
    if since is not None:
        problems.extend(_anchor(store, since, chain))
    for record in store.records(after=chain.last):
        chain.add(record, key)
    problems.extend(chain.problems)
    report.records_checked = chain.count
    report.head = chain.head
    problems.extend(_truncation(store.meta("chain_head_seq"), chain.last))
    buffer = bytearray(chunk_bytes if evidence else 0)
    archived = _Archived(staging_root, store)
    walk = _Files(staging_root, report, buffer, archived, evidence=evidence)
    _walk_rows(store, walk, since)
    problems.extend(walk.problems)
    problems.extend(_confirmations(store, archived, since, evidence=evidence))
    if evidence and since is None:
        problems.extend(check_staging_chain(staging_root, store))
        archived.read_all()  # each archived sidecar must name a record the database holds
    else:
        problems.extend(_head_problems(staging_root, store))
    problems.extend(archived.problems)
    gone = store.file_records_without_rows(
        after_seq=None if since is None else since.seq, changed_upto=report.changed
    )
    problems.extend(_rows_gone(gone))
    # Every kept token, also after an incremental verify: they are few (one per dock session
    # or interval), and a token swapped in later must not pass unseen.
    report.timestamps = tsa.check_tokens(store, staging_root, tsa_anchor)
    problems.extend(report.timestamps.problems)
    return report


def _walk_rows(store: Store, walk: _Files, since: VerifiedHead | None) -> None:
    """Every row (or, `since` a clean verify, those added or changed after it), each with its
    record, in one streamed join."""
    report = walk.report
    after = None if since is None else since.max_file_id
    report.max_file_id = after or 0
    for row, rec, named in store.files_with_records(after_id=after, changed_upto=report.changed):
        report.max_file_id = max(report.max_file_id, row.id)
        if isinstance(row, UnreadableFile):
            _unreadable(walk, row, named)
        else:
            _check_file(walk, row, rec, named)


def _anchor(store: Store, since: VerifiedHead, chain: _Chain) -> list[Problem]:
    """The record the last clean verify ended at, as it saw it: the walk goes on from there."""
    record = store.record(since.seq)
    if record is None or record.record_hash != since.record_hash:
        return [
            Problem(
                "chain_changed",
                f"custody record {since.seq}, where the last verify ended, is not the one it "
                "checked: run `dockagent verify --full`",
                seq=since.seq,
            )
        ]
    chain.expected = link_after(record) or chain.expected
    chain.last, chain.head = record.seq, (record.seq, record.record_hash)
    return []


def _confirmations(
    store: Store, archived: _Archived, since: VerifiedHead | None, *, evidence: bool
) -> list[Problem]:
    """Every sink's confirmation (since a clean verify: those signed after it), streamed a
    batch at a time: by whose sink, and, where the evidence can be read, its sidecar."""
    problems: list[Problem] = []
    records = store.records("confirmation", after=0 if since is None else since.seq)
    while batch := list(itertools.islice(records, _SIDECAR_BATCH)):
        problems.extend(confirmation_problems(batch))
        if evidence:
            ids = [rec.file_id for rec in batch if isinstance(rec.file_id, int)]
            staged = store.staged_paths(ids)
            problems.extend(_confirmation_sidecar_problems(archived, batch, staged))
    return problems


def confirmation_problems(confirmations: Iterable[RecordRow]) -> list[Problem]:
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
    archived: _Archived, confirmations: list[RecordRow], staged: dict[int, str]
) -> list[Problem]:
    problems: list[Problem] = []
    for rec in confirmations:
        rel = staged.get(rec.file_id) if isinstance(rec.file_id, int) else None
        if rel is None:
            continue  # a row gone or unreadable is named with the file
        side = staging.confirmation_path(archived.root, rel, rec.seq)
        problems.extend(_record_sidecar(side, rec, archived))
    return problems


def _record_sidecar(side: Path, rec: RecordRow, archived: _Archived | None = None) -> list[Problem]:
    """A record's own sidecar (an audit action's, a confirmation's, kept beside its copy or,
    once the copy is purged, archived): present, and equal to it."""
    try:
        content = side.read_bytes()
    except FileNotFoundError:
        if archived is not None and archived.holds(rec.seq):
            return []
        return [Problem("missing_sidecar", f"{side.name} is missing", seq=rec.seq)]
    if content != _sidecar_of(rec):
        return [Problem("sidecar_differs", f"{side.name} differs", seq=rec.seq)]
    return []


def _truncation(noted: str | None, last: int) -> list[Problem]:
    """The chain ends before the head the database noted: its newest records were removed."""
    if noted is None or not noted.isdigit() or int(noted) <= last:
        return []
    return [Problem("chain_truncated", f"the chain ended at record {noted}, now at {last}")]


def _rows_gone(records: Iterator[RecordRow]) -> list[Problem]:
    return [
        Problem(
            "missing_row",
            "record names a file row that is gone",
            seq=rec.seq,
            file_id=rec.file_id if isinstance(rec.file_id, int) else None,
        )
        for rec in records
    ]


def _unreadable(walk: _Files, row: UnreadableFile, named: bool) -> None:
    """A row holding a value no agent writes: a state no agent knows is named as an edit of a
    row in custody (and passed over on a row with no record, as any state outside custody is);
    any other such value is named as an edited row."""
    if row.state not in {s.value for s in FileState}:
        if named:
            detail = f"has a record but is {row.state}"
            walk.problems.append(_file_problem(row, "state_edited", detail))
        return
    walk.problems.append(_file_problem(row, "row_edited", f"the row cannot be read: {row.detail}"))


def _check_file(walk: _Files, row: FileRow, rec: RecordRow | None, named: bool) -> None:
    """One file row: its record (`rec`, the one its record_seq names; `named`: a file record
    names the row), its staged copy, its sidecar."""
    if row.state not in CHECKED_BY_VERIFY:
        if named:
            detail = f"has a record but is {row.state.value}"
            walk.problems.append(_file_problem(row, "state_edited", detail))
        return
    walk.report.files_checked += 1
    rec = rec if row.record_seq else None
    _check_row_against_record(walk, row, rec)
    if not walk.evidence:
        return
    # Purged after the sink confirmed it (agent.sync): the staged copy is gone on purpose; the
    # record and the sidecar are still checked.
    if not (row.purged_at and row.state is FileState.CONFIRMED):
        # A damaged body (named by the chain check) tells no hash: the row's is checked.
        body = signed_body(rec) if rec is not None else None
        # An encrypted copy (agent.ingest.sealing) is checked against the ciphertext's signed
        # hash; the camera's `sha256` is of bytes this station cannot read back.
        if body is None:
            signed = row.staged_sha256
        else:
            signed = body.get("stored_sha256", body.get("sha256"))
        _check_staged_copy(walk, row, signed)
    if rec is not None:
        _check_sidecar(walk, row, rec)


def _check_row_against_record(walk: _Files, row: FileRow, rec: RecordRow | None) -> None:
    body = signed_body(rec) if rec is not None else None
    if rec is None or rec.file_id != row.id:
        detail = f"custody record {row.record_seq} is missing"
        walk.problems.append(_file_problem(row, "missing_record", detail))
    elif body is not None and (
        (body.get("sha256"), body.get("size")) != (row.sha256, row.size)
        or (body.get("stored_sha256"), body.get("stored_size"))
        != (row.stored_sha256, row.stored_size)
    ):
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
        if row.purged_at and walk.archived.holds(rec.seq):
            return  # archived with the purge, and equal to the record
        where = " (and no archive holds it as signed)" if row.purged_at else ""
        detail = f"{side.name} is missing{where}"
        walk.problems.append(_file_problem(row, "missing_sidecar", detail))
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


def check_staging_chain(staging_root: Path, store: Store) -> list[Problem]:
    """The chain as staging holds it against the database: audit sidecars both ways, every
    file sidecar's record present, the recorded head present."""
    problems = _audit_sidecar_problems(staging_root, store)
    problems.extend(_lost_record_problems(staging_root, store))
    problems.extend(_head_problems(staging_root, store))
    return problems


def _audit_sidecar_problems(staging_root: Path, store: Store) -> list[Problem]:
    problems: list[Problem] = []
    for rec in store.records("audit"):
        problems.extend(_record_sidecar(staging.audit_sidecar_path(staging_root, rec.seq), rec))
    return problems


def _lost_record_problems(staging_root: Path, store: Store) -> list[Problem]:
    """Each sidecar in staging names a record the database holds, or the database lost it;
    the records asked for a batch of sidecars at a time, none held beyond it."""
    problems: list[Problem] = []
    sidecars = itertools.chain(
        (e.path for e in staging.all_entries(staging_root) if e.kind in _SIDECAR_KINDS),
        staging.audit_sidecars(staging_root),
    )
    while batch := tuple(itertools.islice(sidecars, _SIDECAR_BATCH)):
        problems.extend(_lost_in(staging_root, store, batch))
    return problems


def _lost_in(staging_root: Path, store: Store, batch: tuple[Path, ...]) -> list[Problem]:
    problems: list[Problem] = []
    held_records: list[tuple[Path, RecordRow]] = []
    for side in batch:
        try:
            held_records.append((side, record_from_sidecar(side.read_bytes())))
        except ValueError as exc:
            problems.append(Problem("sidecar_unreadable", f"{side.name}: {exc}"))
    known = store.record_hashes([held.seq for _side, held in held_records])
    for side, held in held_records:
        if known.get(held.seq) != held.record_hash:
            problems.append(
                Problem(
                    "record_lost",
                    f"{side.relative_to(staging_root)} holds signed record {held.seq}, "
                    "which the database does not hold",
                    seq=held.seq,
                )
            )
    return problems


def _head_problems(staging_root: Path, store: Store) -> list[Problem]:
    try:
        head = chainfiles.read_head(staging_root)
    except ValueError as exc:
        return [Problem("head_unreadable", str(exc))]
    if head is None:
        return []
    at_head = store.record(head.seq)
    if at_head is not None and at_head.record_hash == head.record_hash:
        return []
    return [
        Problem(
            "chain_truncated",
            f"staging's chain head is record {head.seq}, which the database does not hold",
            seq=head.seq,
        )
    ]
