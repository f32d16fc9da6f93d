"""Check held evidence: every staged byte, every signature, the whole chain, every sidecar.

Sidecars are checked both ways: each record's sidecar must equal it, and each sidecar in staging
(of a file or an audit record, and the chain head) must name a record the database holds, or
the database lost committed records.

Read-only. Returns problems as data (one per finding, naming the file or record) so the CLI
can print them and exit non-zero; it never repairs anything it finds.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.core.model import CUSTODY_STATES, FileState, Problem
from agent.custody import chainfiles, staging
from agent.custody.digest import hash_file
from agent.custody.keys import StationKey, verify_signature
from agent.custody.seal import GENESIS, record_from_sidecar, sidecar_bytes
from agent.custody.staging import sidecar_path
from agent.store import RecordRow, Store


@dataclass
class Report:
    files_checked: int = 0
    bytes_hashed: int = 0
    records_checked: int = 0
    problems: list[Problem] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_chain(
    records: Iterator[RecordRow], key: StationKey
) -> tuple[dict[int, RecordRow], list[Problem]]:
    problems: list[Problem] = []
    by_seq: dict[int, RecordRow] = {}
    expected_seq, prev = 1, GENESIS
    for rec in records:
        by_seq[rec.seq] = rec
        if rec.seq != expected_seq:
            problems.append(
                Problem(
                    "chain_gap", f"record {expected_seq} is missing before {rec.seq}", seq=rec.seq
                )
            )
        try:
            body = json.loads(rec.body)
        except ValueError:
            problems.append(Problem("record_unreadable", "body is not JSON", seq=rec.seq))
            expected_seq, prev = rec.seq + 1, rec.record_hash
            continue
        actual_hash = hashlib.sha256(rec.body.encode()).hexdigest()
        if actual_hash != rec.record_hash:
            problems.append(
                Problem(
                    "record_edited",
                    "body does not match its stored hash",
                    seq=rec.seq,
                    file_id=rec.file_id,
                )
            )
        if rec.prev_hash != prev or body.get("prev") != prev:
            problems.append(
                Problem(
                    "chain_broken",
                    "does not link to the record before it (removed, reordered or edited)",
                    seq=rec.seq,
                    file_id=rec.file_id,
                )
            )
        if body.get("seq") != rec.seq:
            problems.append(
                Problem(
                    "chain_broken",
                    f"body says seq {body.get('seq')}, stored as {rec.seq}",
                    seq=rec.seq,
                )
            )
        if rec.key_id != key.key_id:
            problems.append(
                Problem(
                    "unknown_key",
                    f"signed by key {rec.key_id}, station key is {key.key_id}",
                    seq=rec.seq,
                )
            )
        elif not verify_signature(key.public, base64.b64decode(rec.signature), rec.body.encode()):
            problems.append(
                Problem(
                    "bad_signature", "signature does not verify", seq=rec.seq, file_id=rec.file_id
                )
            )
        expected_seq, prev = rec.seq + 1, actual_hash
    return by_seq, problems


def verify(store: Store, key: StationKey, staging_root: Path, chunk_bytes: int = 1 << 20) -> Report:
    problems: list[Problem] = []
    report = Report(problems=problems)
    by_seq, chain_problems = check_chain(store.records(), key)
    problems.extend(chain_problems)
    report.records_checked = len(by_seq)
    head = store.meta("chain_head_seq")
    if head is not None and int(head) > max(by_seq, default=0):
        problems.append(
            Problem(
                "chain_truncated",
                f"the chain ended at record {head}, now at {max(by_seq, default=0)}",
            )
        )
    buffer = bytearray(chunk_bytes)
    custody = {s.value for s in CUSTODY_STATES}
    file_records = {rec.file_id: rec for rec in by_seq.values() if rec.kind == "file"}
    for row in store.files():
        if row["state"] not in custody and row["state"] != FileState.CORRUPT:
            if row["id"] in file_records:
                problems.append(
                    Problem(
                        "state_edited",
                        f"has a record but is {row['state']}",
                        file_id=row["id"],
                        camera_name=row["camera_name"],
                    )
                )
            continue
        report.files_checked += 1
        name = row["camera_name"]
        rec = by_seq.get(row["record_seq"]) if row["record_seq"] else None
        if rec is None or rec.file_id != row["id"]:
            problems.append(
                Problem(
                    "missing_record",
                    f"custody record {row['record_seq']} is missing",
                    file_id=row["id"],
                    camera_name=name,
                )
            )
        else:
            body = json.loads(rec.body)
            if body.get("sha256") != row["sha256"] or body.get("size") != row["size"]:
                problems.append(
                    Problem(
                        "row_edited",
                        "hash or size on the row differs from its signed record",
                        file_id=row["id"],
                        camera_name=name,
                    )
                )
        path = staging_root / row["staged_path"]
        # Purged after the sink confirmed it (agent.sync.worker): the staged copy is gone on
        # purpose; the record and the sidecar are still checked.
        purged = bool(row.get("purged_at")) and row["state"] == FileState.CONFIRMED
        if not purged:
            try:
                sha, size = hash_file(path, buffer)
            except FileNotFoundError:
                problems.append(
                    Problem(
                        "missing_file",
                        f"staged copy {row['staged_path']} is missing",
                        file_id=row["id"],
                        camera_name=name,
                    )
                )
            else:
                report.bytes_hashed += size
                signed = json.loads(rec.body).get("sha256") if rec else row["sha256"]
                if sha != signed:
                    problems.append(
                        Problem(
                            "changed_bytes",
                            f"staged copy {row['staged_path']} hashes {sha}, sealed as {signed}",
                            file_id=row["id"],
                            camera_name=name,
                        )
                    )
        if rec is not None:
            side = sidecar_path(staging_root, row["staged_path"])
            try:
                content = side.read_bytes()
            except FileNotFoundError:
                problems.append(
                    Problem(
                        "missing_sidecar",
                        f"{side.name} is missing",
                        file_id=row["id"],
                        camera_name=name,
                    )
                )
            else:
                if content != sidecar_bytes(rec):
                    problems.append(
                        Problem(
                            "sidecar_differs",
                            f"{side.name} differs from the chain",
                            file_id=row["id"],
                            camera_name=name,
                        )
                    )
    problems.extend(check_staging_chain(staging_root, by_seq))
    for rec in file_records.values():
        if (
            rec.file_id is not None
            and not store.conn.execute("SELECT 1 FROM files WHERE id=?", (rec.file_id,)).fetchone()
        ):
            problems.append(
                Problem(
                    "missing_row",
                    "record names a file row that is gone",
                    seq=rec.seq,
                    file_id=rec.file_id,
                )
            )
    return report


def check_staging_chain(staging_root: Path, by_seq: dict[int, RecordRow]) -> list[Problem]:
    """The chain as staging holds it against the database: audit sidecars both ways, every
    file sidecar's record present, the recorded head present."""
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
        if content != sidecar_bytes(rec):
            problems.append(Problem("sidecar_differs", f"{side.name} differs", seq=rec.seq))
    sidecars = staging.file_sidecars(staging_root)
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
    try:
        head = chainfiles.read_head(staging_root)
    except ValueError as exc:
        problems.append(Problem("head_unreadable", str(exc)))
        head = None
    if head is not None:
        at_head = by_seq.get(head.seq)
        if at_head is None or at_head.record_hash != head.record_hash:
            problems.append(
                Problem(
                    "chain_truncated",
                    f"staging's chain head is record {head.seq}, which the database does not hold",
                    seq=head.seq,
                )
            )
    return problems
