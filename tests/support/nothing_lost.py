"""The "nothing lost" checker: an invariant over camera, station and sink, apart from agent/.

Before a run, `Manifest.of_camera` records each fixture camera's files (raw name bytes, size,
sha256). After the run and the agent's recovery, `check` asserts, reading only the file system,
the SQLite file (standard library, on a private copy) and the station's public key
(cryptography), that:

- every recorded file is in at least one safe place: complete at the sink with its hash, or
  held by the station (a row in a custody state, a custody record, a staged copy that hashes
  right), or still on its camera with its hash (files the agent reported sealed or wiped do not
  count as safe on the camera: they must be at the station or the sink);
- nothing at the sink is unknown, and no file was uploaded twice;
- each file is held by the station at most once, and every row the station trusts (sealed,
  uploading, confirmed and not purged, held) has a staged copy that hashes to its sha256: a
  zero-length or unsynced copy behind a trusted row is a failure, whatever else holds the file;
- every custody record verifies (canonical JSON, hash, link to its predecessor, Ed25519
  signature by the station key) and the chain runs whole from 1 to its head; each file record
  names its row, and each signed sidecar equals its record (beside the staged copy, or, once
  the copy is purged, as a line of `staging/_archive/<day>.sidecars`).

A station that encrypts its copies to a central key ([custody] encrypt_to) is checked with
that key's identity file (by default the `central.key` a sealed test station keeps beside its
data directory, tests/support/sealed_mode.py): staged copies and sink objects are decrypted
with Debian's `age` (never the agent's pyrage) and the plaintext hashed, and each must also
hash, as stored, to the ciphertext hash its row and record name.

It shares no code with the agent on purpose: a bug there must not hide itself here. Nothing
here writes to the station, the camera or the sink.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tests.support.sealed_mode import decrypted_sha256, station_identity
from tests.support.volumes import sha256_file

GENESIS = "0" * 64
# Row states in which the station says it holds a verified copy (DESIGN.md "File states").
TRUSTED_STATES = frozenset({"sealed", "uploading", "confirmed", "held"})
SIDECAR_SUFFIX = ".custody.json"
TEMP_SUFFIX = ".part"


@dataclass(frozen=True)
class Recorded:
    """One file of a fixture camera as it was before the run."""

    serial: str
    name: bytes  # '/'-separated path below the volume root, raw bytes
    size: int
    sha256: str


@dataclass
class Manifest:
    """What the fixture cameras held before the run: the checker's ground truth."""

    files: list[Recorded] = field(default_factory=list)

    @staticmethod
    def scan(root: Path) -> dict[bytes, tuple[int, str]]:
        """Regular files below root (symlinks not followed), by raw relative path."""
        base = os.fsencode(root)
        found: dict[bytes, tuple[int, str]] = {}

        def fail(exc: OSError) -> None:
            raise exc

        for dirpath, _dirs, names in os.walk(base, onerror=fail):
            for name in names:
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                if stat.S_ISREG(st.st_mode):
                    found[os.path.relpath(full, base)] = (st.st_size, sha256_file(full))
        return found

    def add_camera(self, serial: str, root: Path) -> None:
        for name, (size, sha) in sorted(self.scan(root).items()):
            self.files.append(Recorded(serial, name, size, sha))

    @classmethod
    def of_camera(cls, serial: str, root: Path) -> Manifest:
        manifest = cls()
        manifest.add_camera(serial, root)
        return manifest

    def serials(self) -> set[str]:
        return {f.serial for f in self.files}


@dataclass(frozen=True)
class SinkObject:
    """A complete object at the sink (partial uploads are not objects)."""

    where: str
    size: int
    sha256: str  # of the camera's bytes (decrypted, for an encrypted station)
    claimed_sha256: str  # what its name or metadata says it is
    stored_sha256: str = ""  # of the bytes as the sink holds them, where they differ


def directory_sink_objects(
    root: Path, identity: Path | None = None
) -> tuple[list[SinkObject], list[str]]:
    """A directory sink: `<sha256>.<ext>` files beside `<sha256>.json` (upload-protocol.md);
    with `identity`, each object decrypted (its name is then the ciphertext's hash)."""
    objects: list[SinkObject] = []
    partial: list[str] = []
    if not root.exists():
        return objects, partial
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        name = path.name
        if name.endswith(TEMP_SUFFIX) or name.startswith("."):
            partial.append(str(path))
            continue
        if name.endswith(".json"):
            continue
        claimed = name.split(".", 1)[0]
        raw = sha256_file(path)
        plain = decrypted_sha256(path, identity) if identity is not None else raw
        stored = raw if identity is not None else ""
        objects.append(SinkObject(str(path), path.stat().st_size, plain, claimed, stored))
    return objects, partial


def tus_file_store_objects(
    store_dir: Path, identity: Path | None = None
) -> tuple[list[SinkObject], list[str]]:
    """@tus/file-store: `<id>` data beside `<id>.json` (size and Upload-Metadata); with
    `identity`, each object decrypted."""
    objects: list[SinkObject] = []
    partial: list[str] = []
    for info_path in sorted(store_dir.glob("*.json")):
        data_path = info_path.with_suffix("")
        info = json.loads(info_path.read_text())
        size = info.get("size")
        metadata = info.get("metadata") or {}
        have = data_path.stat().st_size if data_path.exists() else -1
        if size is None or have != int(size):
            partial.append(str(data_path))
            continue
        obj = SinkObject(str(data_path), have, sha256_file(data_path), metadata.get("sha256", ""))
        objects.append(_decrypted(obj, identity) if identity is not None else obj)
    return objects, partial


def public_key_of(key_path: Path) -> Ed25519PublicKey:
    """The station's public key, read from its PEM signing key file."""
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey), "the station key is not Ed25519"
    return private.public_key()


def _read_station(data_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows and records from a private copy of the database (and its WAL), so the checker
    never changes the station's files, even by checkpointing."""
    with tempfile.TemporaryDirectory(prefix="nothing-lost-") as tmp:
        for suffix in ("", "-wal"):
            src = data_dir / f"dockagent.db{suffix}"
            if src.exists():
                shutil.copyfile(src, Path(tmp) / f"dockagent.db{suffix}")
        conn = sqlite3.connect(Path(tmp) / "dockagent.db")
        conn.row_factory = sqlite3.Row
        try:
            files = [dict(r) for r in conn.execute("SELECT * FROM files ORDER BY id")]
            records = [dict(r) for r in conn.execute("SELECT * FROM records ORDER BY seq")]
        finally:
            conn.close()
    return files, records


@dataclass
class Report:
    """Where each recorded file was found, and every violation of the invariant."""

    at_sink: int = 0
    held: int = 0
    on_camera: int = 0
    records: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def summary(self) -> str:
        return (
            f"{self.at_sink} at the sink, {self.held} held by the station, {self.on_camera} "
            f"still on a camera, {self.records} custody records, {len(self.problems)} problems"
        )


def _check_chain(
    records: list[dict[str, Any]], public: Ed25519PublicKey, report: Report
) -> dict[int, dict[str, Any]]:
    """Verify every record and the links between them; return the file records by file id."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(raw).hexdigest()[:16]
    prev = GENESIS
    by_file: dict[int, dict[str, Any]] = {}
    for expected_seq, rec in enumerate(records, start=1):
        seq = rec["seq"]
        if seq != expected_seq:
            report.problem(f"chain: record {expected_seq} missing (next is {seq})")
            return by_file
        text: str = rec["body"]
        body = json.loads(text)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if canonical != text:
            report.problem(f"record {seq}: body is not canonical JSON")
        if hashlib.sha256(text.encode()).hexdigest() != rec["record_hash"]:
            report.problem(f"record {seq}: hash does not match its body")
        if rec["prev_hash"] != prev or body.get("prev") != prev or body.get("seq") != seq:
            report.problem(f"record {seq}: does not link to record {seq - 1}")
        if rec["key_id"] != key_id or body.get("key_id") != key_id:
            report.problem(f"record {seq}: signed by key {rec['key_id']}, station key is {key_id}")
        try:
            public.verify(base64.b64decode(rec["signature"]), text.encode())
        except (InvalidSignature, ValueError):
            report.problem(f"record {seq}: signature does not verify")
        if rec["kind"] == "file":
            file_id = body.get("file_id")
            if file_id != rec["file_id"] or file_id in by_file:
                report.problem(f"record {seq}: file id {file_id} named twice or wrongly")
            by_file[int(file_id)] = {**rec, "parsed": body}
        prev = rec["record_hash"]
        report.records += 1
    return by_file


def _archived_sidecars(staging: Path) -> dict[str, bytes]:
    """Every archived sidecar by the name it had beside its copy (JSON lines, `text` the exact
    bytes); a torn last line is not one."""
    found: dict[str, bytes] = {}
    for path in sorted((staging / "_archive").glob("*.sidecars")):
        for line in path.read_bytes().splitlines(keepends=True):
            if line.endswith(b"\n") and b'"text"' in line:
                entry = json.loads(line)
                found.setdefault(entry["name"], entry["text"].encode())
    return found


def _sidecar_problem(
    staging: Path, row: dict[str, Any], rec: dict[str, Any], archived: Mapping[str, bytes]
) -> str:
    """What is wrong with the signed sidecar of a file record's staged copy ("" if nothing)."""
    name = row["staged_path"] + SIDECAR_SUFFIX
    side = staging / name
    try:
        data = archived[name] if row.get("purged_at") and name in archived else side.read_bytes()
        envelope = json.loads(data)
    except (OSError, ValueError) as exc:
        return f"file {row['id']}: sidecar unreadable ({exc.__class__.__name__})"
    if (
        envelope.get("record_hash") != rec["record_hash"]
        or envelope.get("signature") != rec["signature"]
        or envelope.get("body") != rec["parsed"]
    ):
        return f"file {row['id']}: sidecar differs from record {rec['seq']}"
    return ""


def _check_file_records(
    by_file_record: dict[int, dict[str, Any]],
    rows: list[dict[str, Any]],
    staging: Path,
    check_sidecars: bool,
    report: Report,
) -> None:
    """Each file record names its row and agrees with it; its sidecar equals it."""
    rows_by_id = {int(r["id"]): r for r in rows}
    archived = _archived_sidecars(staging) if check_sidecars else {}
    for file_id, rec in by_file_record.items():
        row = rows_by_id.get(file_id)
        body = rec["parsed"]
        if row is None:
            report.problem(f"record {rec['seq']} names file {file_id}, which has no row")
            continue
        if (body.get("sha256"), body.get("size")) != (row["sha256"], row["size"]):
            report.problem(f"record {rec['seq']} and row {file_id} disagree on hash or size")
        if row["record_seq"] != rec["seq"]:
            report.problem(f"row {file_id} points at record {row['record_seq']}, not {rec['seq']}")
        if check_sidecars and row["staged_path"]:
            problem = _sidecar_problem(staging, row, rec, archived)
            if problem:
                report.problem(problem)


def _check_purges(
    rows: list[dict[str, Any]], records: list[dict[str, Any]], report: Report
) -> None:
    """A staged copy is purged only after a sink's signed confirmation of its hash."""
    confirmed = {
        (rec["file_id"], json.loads(rec["body"]).get("sha256"))
        for rec in records
        if rec["kind"] == "confirmation"
    }
    for row in rows:
        if row.get("purged_at") and (row["id"], row["sha256"]) not in confirmed:
            report.problem(f"row {row['id']} was purged without a signed confirmation")


def _staged_copy_good(staging: Path, row: dict[str, Any], identity: Path | None) -> bool:
    path = staging / (row["staged_path"] or "")
    try:
        if not path.is_file():
            return False
        if identity is None:
            return sha256_file(path) == row["sha256"]
        # Encrypted: as stored, the ciphertext the row names; decrypted, the camera's bytes.
        return (
            sha256_file(path) == row.get("stored_sha256")
            and decrypted_sha256(path, identity) == row["sha256"]
        )
    except OSError:
        return False


def _verified_rows(
    rows: list[dict[str, Any]],
    by_file_record: dict[int, dict[str, Any]],
    staging: Path,
    report: Report,
    identity: Path | None = None,
) -> set[int]:
    """Rows the station trusts must be backed by a staged copy that hashes right: the ids of
    those that are (a confirmed and purged row is the sink's to hold, checked there)."""
    verified: set[int] = set()
    for row in rows:
        if row["state"] not in TRUSTED_STATES:
            continue
        file_id = int(row["id"])
        if file_id not in by_file_record:
            report.problem(f"row {file_id} is {row['state']} without a custody record")
            continue
        if row.get("purged_at"):
            continue
        if _staged_copy_good(staging, row, identity):
            verified.add(file_id)
        else:
            report.problem(
                f"row {file_id} ({row['state']}) is trusted but its staged copy "
                f"{row['staged_path']!r} is missing or does not hash to its sha256"
            )
    return verified


def _check_sink(sink_objects: list[SinkObject], manifest: Manifest, report: Report) -> Counter[str]:
    """Nothing unknown or mislabelled at the sink, nothing twice; the hashes it holds."""
    sink_hashes = Counter(obj.sha256 for obj in sink_objects)
    recorded_hashes = Counter(f.sha256 for f in manifest.files)
    for obj in sink_objects:
        if obj.sha256 not in recorded_hashes:
            report.problem(f"sink holds an unknown object {obj.where}")
        elif obj.claimed_sha256 and obj.claimed_sha256 != (obj.stored_sha256 or obj.sha256):
            held = obj.stored_sha256 or obj.sha256
            report.problem(f"sink object {obj.where} says {obj.claimed_sha256}, holds {held}")
    for sha, count in sink_hashes.items():
        if count > recorded_hashes.get(sha, 0):
            report.problem(f"sink holds {count} copies of {sha[:12]}: uploaded twice")
    return sink_hashes


@dataclass(frozen=True)
class _Places:
    """Where recorded files can be safe now: the sink's hashes, the rows verified at the
    station, the cameras' files, and what the agent said it held (not safe on the camera)."""

    rows: list[dict[str, Any]]
    sink_hashes: Counter[str]
    verified_rows: set[int]
    on_camera: dict[str, dict[bytes, tuple[int, str]]]
    must_be_held: set[tuple[str, bytes]]


def _place_file(f: Recorded, places: _Places, report: Report) -> None:
    """Count where one recorded file is safe; LOST if nowhere, a problem if held twice."""
    trusted = [
        r
        for r in places.rows
        if r["device_serial"] == f.serial
        and bytes(r["camera_path"]) == f.name
        and r["sha256"] == f.sha256
        and r["state"] in TRUSTED_STATES
    ]
    if len(trusted) > 1:
        report.problem(f"{f.serial} {f.name!r}: held {len(trusted)} times by the station")
    safe = []
    if places.sink_hashes.get(f.sha256):
        report.at_sink += 1
        safe.append("sink")
    if any(int(r["id"]) in places.verified_rows for r in trusted):
        report.held += 1
        safe.append("station")
    if (f.size, f.sha256) == places.on_camera.get(f.serial, {}).get(f.name):
        report.on_camera += 1
        if (f.serial, f.name) not in places.must_be_held:
            safe.append("camera")
    if not safe:
        report.problem(f"LOST: {f.serial} {f.name!r} ({f.size} bytes, {f.sha256[:12]})")


def _decrypted(obj: SinkObject, identity: Path) -> SinkObject:
    """A sink object of a sealed station as its camera bytes hash (once: a directory sink's
    objects are decrypted as they are listed, with the identity given there)."""
    if obj.stored_sha256:
        return obj
    plain = decrypted_sha256(Path(obj.where), identity)
    return SinkObject(obj.where, obj.size, plain, obj.claimed_sha256, obj.sha256)


def check(
    manifest: Manifest,
    data_dir: Path,
    *,
    key_path: Path | None = None,
    cameras: Mapping[str, Path | None] | None = None,
    sink: tuple[list[SinkObject], list[str]] | None = None,
    reported_held: Iterable[tuple[str, bytes]] = (),
    check_sidecars: bool = True,
    identity: Path | None = None,
) -> Report:
    """Check the invariant; `cameras` maps serials to their mounted roots now (None: gone).

    `reported_held` names (serial, raw name) pairs the agent said it sealed or wiped before the
    fault: for those, "still on the camera" is not enough. `identity`: the central key's age
    identity file, for a station that encrypts its copies to it (by default the one a sealed
    test station keeps beside `data_dir`).
    """
    report = Report()
    identity = identity if identity is not None else station_identity(data_dir)
    staging = data_dir / "staging"
    public = public_key_of(key_path or data_dir / "station.key")
    rows, records = _read_station(data_dir)
    by_file_record = _check_chain(records, public, report)
    _check_file_records(by_file_record, rows, staging, check_sidecars, report)
    verified_rows = _verified_rows(rows, by_file_record, staging, report, identity)
    _check_purges(rows, records, report)
    sink_objects, _partial = sink if sink is not None else ([], [])
    if identity is not None:
        sink_objects = [_decrypted(obj, identity) for obj in sink_objects]
    places = _Places(
        rows=rows,
        sink_hashes=_check_sink(sink_objects, manifest, report),
        verified_rows=verified_rows,
        on_camera={
            serial: Manifest.scan(root) if root is not None else {}
            for serial, root in (cameras or {}).items()
        },
        must_be_held=set(reported_held),
    )
    for f in manifest.files:
        _place_file(f, places, report)
    return report


def assert_nothing_lost(manifest: Manifest, data_dir: Path, **kwargs: Any) -> Report:
    report = check(manifest, data_dir, **kwargs)
    assert not report.problems, report.summary() + ":\n" + "\n".join(report.problems[:40])
    return report
