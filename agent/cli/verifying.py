"""`dockagent verify`: re-hash staged evidence, check every signature and the whole chain."""

from __future__ import annotations

import argparse
import sys

from agent.cli import context
from agent.cli.output import emit_json
from agent.core.errors import EXIT_VERIFY_FAILED
from agent.custody import keys
from agent.custody.verify import verify


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", help="check staged evidence, signatures and the custody chain")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    key = keys.load_or_create(cfg.key_path)
    with context.reader(cfg, check=False) as store:
        report = verify(store, key, cfg.staging_path, cfg.storage.copy_chunk_bytes)
    problems = report.problems or []
    if args.json:
        emit_json(
            {
                "ok": report.ok,
                "files_checked": report.files_checked,
                "bytes_hashed": report.bytes_hashed,
                "records_checked": report.records_checked,
                "problems": [p.as_dict() for p in problems],
            }
        )
    else:
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
            f"re-hashed, {report.records_checked} records checked\n"
        )
    return 0 if report.ok else EXIT_VERIFY_FAILED
