"""The leak check run after the test suite (scripts/test): evidence and keys stay where they belong.

After every test has run, with the suite's whole temporary tree kept (pytest `--basetemp`,
outside /tmp), it asserts that:

- no log the agent wrote (the daemon logs and the output of every CLI run the tests made,
  collected as `*.log` files) holds a fragment of any recording the stations took into custody
  (raw, hex or base64), nor any station signing key (raw, hex, base64 or its PEM body);
- every station's staging tree is private: directories 0700 and files 0600 (no group or other
  bits at all);
- nothing under /tmp written during the run holds a fragment of a recording: the agent keeps
  evidence in its own data directory only.

It reads; it writes nothing but its report, and imports nothing of the agent.
Usage: python -m tests.support.leak_check --root BASETEMP --since-file MARKER [--tmp /tmp]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

WINDOW = 16  # bytes compared at every offset of a log
# Windows are taken every STRIDE bytes of each recording, at most PER_FILE of them (its first
# STRIDE * PER_FILE bytes): a leak of STRIDE + WINDOW contiguous bytes from there always holds
# one, and the set stays small (the suite stages gigabytes: one window per 16 bytes would not
# fit in memory).
STRIDE = 256
PER_FILE = 4096
AGE_MAGIC = b"age-encryption.org/v1\n"
RECORDING_SUFFIXES = (".mp4", ".mov", ".avi", ".wav", ".mp3", ".m4a", ".jpg", ".jpeg", ".png")
LOG_NAMES = re.compile(r".*\.(log|jsonl)$")
HEX_RUN = re.compile(rb"[0-9a-fA-F]{64,}")
B64_RUN = re.compile(rb"[A-Za-z0-9+/]{44,}={0,2}")
MAX_SCAN = 256 << 20  # bytes per file: /tmp may hold unrelated large files


def _regular_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    yield path
            except OSError:
                continue


def _named(root: Path, name: str) -> list[Path]:
    # os.walk, not Path.rglob: test trees hold paths too long to stat whole (hostile volumes).
    return sorted(p for p in _regular_files(root) if p.name == name)


def station_data_dirs(root: Path) -> list[Path]:
    return [p.parent for p in _named(root, "dockagent.db")]


def recording_windows(data_dirs: list[Path]) -> set[bytes]:
    """Aligned windows of every staged recording: the content that must not leak."""
    windows: set[bytes] = set()
    for data_dir in data_dirs:
        staging = data_dir / "staging"
        if not staging.is_dir():
            continue
        for path in _regular_files(staging):
            if path.suffix.lower() not in RECORDING_SUFFIXES:
                continue
            with open(path, "rb") as fh:
                data = fh.read(STRIDE * PER_FILE)
            # Skip runs of one byte value (sparse or padding): they say nothing of the content.
            for i in range(_content_start(data), len(data) - WINDOW + 1, STRIDE):
                piece = data[i : i + WINDOW]
                if len(set(piece)) > 4:
                    windows.add(piece)
    return windows


def _content_start(data: bytes) -> int:
    """Where a staged copy's own bytes begin: after the header of a copy sealed to the central
    key (age v1, https://age-encryption.org/v1: a fixed first line that every such copy shares,
    recipient stanzas, and a `--- <MAC>` line), which is format, not content."""
    if not data.startswith(AGE_MAGIC):
        return 0
    mac = data.find(b"\n--- ")
    end = data.find(b"\n", mac + 1) if mac >= 0 else -1
    return end + 1 if end >= 0 else len(data)


def key_needles(root: Path) -> list[bytes]:
    """Each station key as it could appear in a log: raw, hex, base64, PEM body."""
    needles: list[bytes] = []
    for key_path in _named(root, "station.key"):
        try:
            pem = key_path.read_bytes()
            key = serialization.load_pem_private_key(pem, password=None)
        except (OSError, ValueError, TypeError):
            continue
        if not isinstance(key, Ed25519PrivateKey):
            continue
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        needles += [raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")]
        needles += [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    return needles


def _has_window(data: bytes, windows: set[bytes]) -> bool:
    return any(data[i : i + WINDOW] in windows for i in range(len(data) - WINDOW + 1))


def _decoded_runs(data: bytes) -> Iterator[bytes]:
    for match in HEX_RUN.finditer(data):
        run = match.group()
        yield binascii.unhexlify(run[: len(run) // 2 * 2])
    for match in B64_RUN.finditer(data):
        run = match.group().rstrip(b"=")
        for shift in range(4):  # the leak may start anywhere inside a base64 quantum
            part = run[shift:]
            part = part[: len(part) // 4 * 4]
            try:
                yield base64.b64decode(part, validate=True)
            except binascii.Error:
                continue


def leaks_in_log(data: bytes, windows: set[bytes], keys: list[bytes]) -> list[str]:
    found = [f"key material ({len(k)} bytes)" for k in keys if k in data]
    if _has_window(data, windows):
        found.append("recording bytes")
    elif any(_has_window(run, windows) for run in _decoded_runs(data)):
        found.append("recording bytes, encoded")
    return found


# In staging, only these may be more than the owner's (README "Who may run what"): the group
# passes through to the chain head and reads it; every other name is private.
GROUP_MODES = {".": 0o710, "_chain": 0o710, "_chain/head.json": 0o640, "_chain/tsa": 0o750}
# Time-stamp tokens (no secret: the TSA's signed statements) the group lists and reads.
TOKEN_MODE = 0o640


def _group_may(rel: str, mode: int) -> bool:
    if rel.startswith("_chain/tsa/") and rel.endswith(".tsr"):
        return mode == TOKEN_MODE
    return mode == GROUP_MODES.get(rel)


def private_tree_problems(data_dir: Path) -> list[str]:
    problems = []
    staging = data_dir / "staging"
    if not staging.is_dir():
        return problems
    for dirpath, dirs, names in os.walk(staging):
        for name in [*dirs, *names]:
            path = Path(dirpath, name)
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            rel = path.relative_to(staging).as_posix()
            if mode & 0o077 and not _group_may(rel, mode):
                problems.append(f"{path} is {mode:o}: staging must be private")
    mode = stat.S_IMODE(staging.stat().st_mode)
    if mode & 0o077 and mode != GROUP_MODES["."]:
        problems.append(f"{staging} is {mode:o}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="the suite's --basetemp")
    parser.add_argument("--since-file", type=Path, required=True, help="touched at suite start")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"))
    args = parser.parse_args(argv)
    since = args.since_file.stat().st_mtime
    data_dirs = station_data_dirs(args.root)
    windows = recording_windows(data_dirs)
    keys = key_needles(args.root)
    problems: list[str] = []
    logs = [p for p in _regular_files(args.root) if LOG_NAMES.match(p.name)]
    for log in logs:
        data = log.read_bytes()[:MAX_SCAN]
        problems += [f"{log}: {what}" for what in leaks_in_log(data, windows, keys)]
    for data_dir in data_dirs:
        problems += private_tree_problems(data_dir)
    tmp_checked = 0
    root = args.root.resolve()
    for path in _regular_files(args.tmp):
        try:
            st = path.stat()
            if st.st_mtime < since or root in path.resolve().parents:
                continue
            with open(path, "rb") as fh:
                data = fh.read(MAX_SCAN)
        except OSError:
            continue
        tmp_checked += 1
        if _has_window(data, windows):
            problems.append(f"{path}: recording bytes under {args.tmp}")
    print(
        f"leak check: {len(logs)} logs, {len(data_dirs)} stations, {len(windows)} recording "
        f"windows, {len(keys)} key forms, {tmp_checked} new files under {args.tmp}: "
        f"{len(problems)} problems"
    )
    for problem in problems[:50]:
        print("  " + problem)
    if not logs or not data_dirs or not windows:
        print("leak check found nothing to check: the suite's temporary tree is missing")
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
