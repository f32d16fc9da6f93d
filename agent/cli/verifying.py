"""`dockagent verify`: re-hash staged evidence, check every signature and the whole chain.

Run by a technician of the station's group, who may not read the evidence, it checks what
needs none (agent.custody.verify) with the public key, and says that no staged byte was
re-hashed and how to have them re-hashed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from agent.cli import context
from agent.cli.output import emit_json
from agent.core.errors import EXIT_VERIFY_FAILED, StationKeyError
from agent.core.wallclock import utc_now
from agent.custody import keys, tsa
from agent.custody.keys import Verifier
from agent.custody.verify import Report, verify

NOT_REHASHED = (
    "staged files were not re-hashed and their sidecars not compared: only the service user "
    "can read the evidence (run: sudo dockagent verify)"
)


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", help="check staged evidence, signatures and the custody chain")
    p.add_argument("--json", action="store_true")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--full", action="store_true", help="check everything (the default)")
    scope.add_argument(
        "--incremental",
        action="store_true",
        help="check only what came after the last clean verify: the records past it and the "
        "file rows added or changed since (everything when no verify was clean yet)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    evidence = context.reads_evidence(cfg)
    key = keys.load_or_create(cfg.key_path) if evidence else _public_key(cfg.key_path)
    with context.reader(cfg, check=False, whole=not args.incremental) as store:
        since = store.verified_head() if args.incremental else None
        report = verify(
            store,
            key,
            cfg.staging_path,
            cfg.storage.copy_chunk_bytes,
            evidence=evidence,
            since=since,
            tsa_anchor=Path(anchor) if (anchor := cfg.custody.tsa_trust_anchor) else None,
        )
        if report.ok and evidence and report.head is not None:
            # Where the next --incremental starts (a reader of the group writes nothing).
            seq, record_hash = report.head
            store.note_verified(seq, record_hash, report.max_file_id, report.changed, utc_now())
            if not args.incremental:
                store.note_whole_check(utc_now())  # its pages were all read at open
    if args.json:
        emit_json(
            {
                "ok": report.ok,
                "files_checked": report.files_checked,
                "bytes_hashed": report.bytes_hashed,
                "records_checked": report.records_checked,
                "evidence_checked": report.evidence_checked,
                "incremental": report.incremental,
                "problems": [p.as_dict() for p in report.problems or []],
                "timestamps": _timestamps_json(report),
            }
        )
    else:
        _print(report)
    return 0 if report.ok else EXIT_VERIFY_FAILED


def _timestamps_json(report: Report) -> dict[str, object]:
    checked = report.timestamps
    if checked is None:
        return {}
    head = report.head[0] if report.head else 0
    return {
        "anchored": checked.anchored,
        "covered_upto": checked.covered_upto,
        "tokens": [dataclasses.asdict(c) for c in checked.coverage],
        # The records after the last good token (none when every record is covered).
        "uncovered": {"first": checked.covered_upto + 1, "last": head}
        if head > checked.covered_upto
        else None,
    }


def _print_timestamps(report: Report) -> None:
    checked = report.timestamps
    if checked is None:
        return
    if not checked.anchored:
        sys.stdout.write(
            "note: time-stamp tokens are kept but [custody] tsa_trust_anchor is not set: "
            "none was checked\n"
        )
        return
    for line in tsa.iter_ranges(checked):
        sys.stdout.write(f"time-stamp {line}\n")
    head = report.head[0] if report.head else 0
    if checked.coverage and head > checked.covered_upto:
        sys.stdout.write(
            f"time-stamp: records {checked.covered_upto + 1}-{head} are not covered by a "
            "token yet\n"
        )


def _public_key(path: Path) -> Verifier:
    key = keys.load_verifier(path)
    if key is None:
        raise StationKeyError(
            path=str(keys.public_path(path)),
            problem="cannot be read, and verify needs the station's public key",
        )
    return key


def _print(report: Report) -> None:
    problems = report.problems or []
    for p in problems:
        where = " ".join(
            part
            for part in (
                f"record {p.seq}" if p.seq else "",
                f"file {p.file_id}" if p.file_id else "",
                p.camera_name,
            )
            if part
        )
        sys.stdout.write(f"FAIL {p.kind}: {where}: {p.detail}\n")
    verdict = "OK" if report.ok else f"FAILED ({len(problems)} problems)"
    sys.stdout.write(
        f"verify {verdict}: {report.files_checked} files, {report.bytes_hashed} bytes "
        f"re-hashed, {report.records_checked} records checked"
        + (" since the last clean verify (--full checks everything)" if report.incremental else "")
        + "\n"
    )
    _print_timestamps(report)
    if not report.evidence_checked:
        sys.stdout.write(f"note: {NOT_REHASHED}\n")
