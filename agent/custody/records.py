"""A custody record: its canonical form, its envelope, its hash and link, and the one check of it.

A record's body is canonical JSON (sorted keys, no insignificant white space, UTF-8, only strings,
integers, booleans and null: the RFC 8785 form for these types); its hash is the SHA-256 of those
bytes, and each body names the hash of the body before it (`prev`), so removing, reordering or
editing a record breaks the chain. The envelope wraps body, signature, key id and hash, as a
sidecar holds it and as the central server receives it. `record_problems` is the one check of a
record, used by `dockagent verify`, the check at every open and `dockagent rebuild`.

Pure: no files, no store, no signing (agent.custody.seal signs). Whatever a record holds, hostile
or damaged, the check never raises: every finding is a Problem.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agent.core.model import Problem, display_name
from agent.custody.keys import Verifier, verify_signature
from agent.store import RecordRow

GENESIS = "0" * 64  # the `prev` of the first record
RECORD_VERSION = 1
KINDS = ("file", "audit", "confirmation")
FILE_KINDS = ("file", "confirmation")  # the kinds whose records name a file row
SIGNATURE_BYTES = 64  # Ed25519 (RFC 8032, section 5.1.6)

# What every version of a body has held, with its JSON type; fields added later are optional.
_COMMON_FIELDS: dict[str, type] = {
    "v": int,
    "type": str,
    "seq": int,
    "prev": str,
    "key_id": str,
    "station_id": str,
}
_KIND_FIELDS: dict[str, dict[str, type]] = {
    "file": {"file_id": int, "session_id": int, "device_serial": str, "size": int, "sha256": str},
    "audit": {"action": str, "operator": str, "at": str, "details": dict},
    # A sink's confirmation of a file (agent.custody.seal.Sealer.confirm): what was confirmed,
    # by which sink, the sink the station's own configuration names, and what the sink said.
    "confirmation": {
        "file_id": int,
        "sha256": str,
        "sink_kind": str,
        "sink_endpoint": str,
        "sink_id": str,
        "station_sink_id": str,
        "level": str,
        "sink_ref": str,
        "at": str,
    },
}
_TYPE_NAMES = {int: "an integer", str: "a string", dict: "an object"}

# ---- the canonical form, the hash, the envelope --------------------------------------------


def canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(body: str) -> str:
    """The hash of a body as stored (the bytes that were signed)."""
    return hashlib.sha256(body.encode()).hexdigest()


def envelope(record: RecordRow) -> dict[str, Any]:
    """What a sidecar holds and what is sent to the central server with the file.

    ValueError if the body is not JSON text or a column beside it not text (a damaged record
    has no envelope).
    """
    for name in ("body", "signature", "key_id", "record_hash"):
        if not isinstance(getattr(record, name), str):
            raise ValueError(f"its {name.replace('_', ' ')} is not text")
    try:
        body = json.loads(record.body)
    except RecursionError as exc:
        raise ValueError("its body is nested too deeply") from exc
    return {
        "body": body,
        "signature": record.signature,
        "key_id": record.key_id,
        "record_hash": record.record_hash,
    }


def sidecar_bytes(record: RecordRow) -> bytes:
    """The envelope as a sidecar holds it. ValueError as envelope()."""
    text = json.dumps(envelope(record), sort_keys=True, indent=1, ensure_ascii=False)
    return text.encode() + b"\n"


def record_from_sidecar(data: bytes) -> RecordRow:
    """The record a sidecar (of a file or an audit record) holds; ValueError if it holds none.

    Unverified: the caller checks it with record_problems. The body is made canonical again,
    which gives back the signed bytes exactly (sidecars hold only strings, integers, booleans
    and null).
    """
    try:
        env = json.loads(data)
        body = env["body"]
        kind = body["type"]
        record = RecordRow(
            seq=body["seq"],
            kind=kind,
            file_id=body.get("file_id") if kind in FILE_KINDS else None,
            body=canonical(body).decode(),
            record_hash=env["record_hash"],
            prev_hash=body["prev"],
            signature=env["signature"],
            key_id=env["key_id"],
        )
    except (KeyError, TypeError, AttributeError, RecursionError, ValueError) as exc:
        # ValueError: not JSON, not UTF-8
        raise ValueError(f"not a custody sidecar ({exc})") from exc
    if not _is_int(record.seq) or record.kind not in KINDS:
        raise ValueError("not a custody sidecar")
    if record.kind in FILE_KINDS and not _is_int(record.file_id):
        raise ValueError("a file record without a file id")
    return record


def as_signed(record: RecordRow) -> RecordRow:
    """The record its signed body describes, as a sidecar of it would give it back: seq, kind
    and file id stored beside the body (in the database) are not covered by the hash.
    ValueError if the body describes none."""
    return record_from_sidecar(json.dumps(envelope(record)).encode())


def signed_body(record: RecordRow) -> dict[str, Any] | None:
    """The body as an object, or None if it is not one (record_problems names why)."""
    try:
        body = envelope(record)["body"]
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# ---- the link to the record before ---------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """Where the next record must stand: at `seq`, naming `prev` as the record before it (None
    where the record before could not say, its body not being text)."""

    seq: int
    prev: str | None


FIRST = Link(1, GENESIS)


def link_after(record: RecordRow) -> Link | None:
    """The place of the record that follows this one (None if this one has no number)."""
    if not _is_int(record.seq):
        return None
    data = _body_bytes(record)
    return Link(record.seq + 1, None if data is None else hashlib.sha256(data).hexdigest())


def link_problems(record: RecordRow, expected: Link) -> list[Problem]:
    """A record not where `expected` says: a gap before it, or a link to another record."""
    if not _is_int(record.seq) or not isinstance(record.prev_hash, str):
        return []  # named by record_problems as a column of the wrong type
    problems: list[Problem] = []
    if record.seq > expected.seq:
        problems.append(
            _problem(record, "chain_gap", f"record {expected.seq} is missing before {record.seq}")
        )
    elif record.seq < expected.seq:
        problems.append(
            _problem(record, "chain_broken", f"it stands after record {expected.seq - 1}")
        )
    if expected.prev is not None and record.prev_hash != expected.prev:
        problems.append(
            _problem(
                record,
                "chain_broken",
                "does not link to the record before it (removed, reordered or edited)",
            )
        )
    return problems


# ---- the one check of a record -------------------------------------------------------------


def record_problems(
    record: RecordRow, key: Verifier | None, *, expected: Link | None = None
) -> list[Problem]:
    """Everything wrong with one record: its columns' types, its body (text, JSON, an object,
    the fields every record has), its hash, the place its body names against the columns beside
    it, its link to `expected` (if given), and, where the key is at hand, its key id and
    signature. Never raises, whatever the record holds."""
    problems = _column_problems(record)
    data = _body_bytes(record)
    body: Any = None
    if data is None:
        if isinstance(record.body, str):
            problems.append(_problem(record, "record_unreadable", "its body is not UTF-8 text"))
    else:
        body, unreadable = _parse(record, record.body)
        problems.extend(unreadable)
        if isinstance(record.record_hash, str) and (
            hashlib.sha256(data).hexdigest() != record.record_hash
        ):
            problems.append(_problem(record, "record_edited", "its body does not match its hash"))
    if isinstance(body, dict):
        problems.extend(_field_problems(record, body))
        problems.extend(_place_problems(record, body))
    if expected is not None:
        problems.extend(link_problems(record, expected))
    if key is not None:
        problems.extend(_signature_problems(record, key, data))
    return problems


def _column_problems(record: RecordRow) -> list[Problem]:
    """The columns beside the body, each of its type (a database can be edited to hold any)."""
    problems: list[Problem] = []
    if not _is_int(record.seq):
        problems.append(_problem(record, "record_malformed", _wrong("seq column", record.seq, int)))
    if record.kind not in KINDS:
        problems.append(
            _problem(record, "record_malformed", f"its kind column is {_shown(record.kind)}")
        )
    if record.file_id is not None and not _is_int(record.file_id):
        problems.append(
            _problem(record, "record_malformed", _wrong("file id column", record.file_id, int))
        )
    for name in ("body", "record_hash", "prev_hash", "signature", "key_id"):
        value = getattr(record, name)
        if not isinstance(value, str):
            column = name.replace("_", " ") + " column"
            problems.append(_problem(record, "record_malformed", _wrong(column, value, str)))
    return problems


def _parse(record: RecordRow, text: str) -> tuple[Any, list[Problem]]:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return None, [_problem(record, "record_unreadable", "its body is not JSON")]
    if not isinstance(body, dict):
        detail = f"its body is {_json_type(body)}, not a JSON object"
        return body, [_problem(record, "record_malformed", detail)]
    return body, []


def _field_problems(record: RecordRow, body: dict[str, Any]) -> list[Problem]:
    """The fields every record of its type has held since the first version, of their types."""
    fields = dict(_COMMON_FIELDS)
    kind = body.get("type")
    if isinstance(kind, str) and kind in _KIND_FIELDS:
        fields.update(_KIND_FIELDS[kind])
    problems: list[Problem] = []
    for name, wanted in fields.items():
        if name not in body:
            problems.append(_problem(record, "record_malformed", f"its body lacks {name}"))
        elif not _of_type(body[name], wanted):
            detail = _wrong(f"body's {name}", body[name], wanted)
            problems.append(_problem(record, "record_malformed", detail))
    if isinstance(kind, str) and kind not in KINDS:
        detail = f"its body's type is {_shown(kind)}, not a kind of custody record"
        problems.append(_problem(record, "record_malformed", detail))
    return problems


def _place_problems(record: RecordRow, body: dict[str, Any]) -> list[Problem]:
    """The body against the columns beside it: damage there would put a verified record at
    another place in the chain, on the wrong file, or under another key."""
    problems: list[Problem] = []
    seq = body.get("seq")
    if _is_int(seq) and seq != record.seq:
        detail = f"its body says seq {seq}, stored as {_shown(record.seq)}"
        problems.append(_problem(record, "chain_broken", detail))
    prev = body.get("prev")
    if isinstance(prev, str) and prev != record.prev_hash:
        detail = "its body links to another record than its prev column"
        problems.append(_problem(record, "chain_broken", detail))
    file_id = body.get("file_id") if body.get("type") in FILE_KINDS else None
    for column, value, named, typed in (
        ("kind", record.kind, body.get("type"), record.kind in KINDS),
        ("file id", record.file_id, file_id, record.file_id is None or _is_int(record.file_id)),
        ("key id", record.key_id, body.get("key_id"), isinstance(record.key_id, str)),
    ):
        # A column of the wrong type is named as that; a body field of the wrong type too.
        if typed and value != named:
            detail = f"its {column} column is not the one its body names"
            problems.append(_problem(record, "record_edited", detail))
    return problems


def _signature_problems(record: RecordRow, key: Verifier, data: bytes | None) -> list[Problem]:
    if not isinstance(record.key_id, str) or not isinstance(record.signature, str):
        return []  # named as columns of the wrong type
    if record.key_id != key.key_id:
        detail = f"signed by key {_shown(record.key_id)}, the station key is {key.key_id}"
        return [_problem(record, "unknown_key", detail)]
    signature = _signature_bytes(record.signature)
    if isinstance(signature, str):
        return [_problem(record, "bad_signature", signature)]
    if data is not None and not verify_signature(key.public, signature, data):
        # (a body that is not text was never signed, and is named above)
        return [_problem(record, "bad_signature", "its signature does not verify")]
    return []


def _signature_bytes(text: str) -> bytes | str:
    """The signature's bytes, or why it has none."""
    try:
        signature = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error (not base64), or not ASCII
        return "its signature is not base64"
    if len(signature) != SIGNATURE_BYTES:
        return f"its signature is {len(signature)} bytes, not {SIGNATURE_BYTES}"
    return signature


# ---- small pieces --------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _of_type(value: object, wanted: type) -> bool:
    return _is_int(value) if wanted is int else isinstance(value, wanted)


def _body_bytes(record: RecordRow) -> bytes | None:
    """The body as the bytes that were signed, or None if it is not (UTF-8) text."""
    if not isinstance(record.body, str):
        return None
    try:
        return record.body.encode()
    except UnicodeEncodeError:  # a lone surrogate: never signed
        return None


def _problem(record: RecordRow, kind: str, detail: str) -> Problem:
    seq = record.seq if _is_int(record.seq) else None
    file_id = record.file_id if _is_int(record.file_id) else None
    return Problem(kind, detail, file_id=file_id, seq=seq)


def _wrong(what: str, value: object, wanted: type) -> str:
    return f"its {what} is {_json_type(value)}, not {_TYPE_NAMES[wanted]}"


_JSON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "true or false"),  # before int: a bool is an int
    (int, "an integer"),
    (float, "a fraction"),
    (str, "a string"),
    ((list, tuple), "a JSON list"),
    (dict, "an object"),
    ((bytes, bytearray, memoryview), "raw bytes"),
)


def _json_type(value: object) -> str:
    for kind, name in _JSON_TYPES:
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


def _shown(value: object) -> str:
    """A hostile value shown safely (escaped, cut short), for a person to read."""
    if isinstance(value, str):
        cut = display_name(value[:40]) + ("..." if len(value) > 40 else "")
        return f"'{cut}'"
    if _is_int(value):
        return str(value)
    return _json_type(value)
