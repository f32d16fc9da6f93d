"""agent.custody.records as a unit: the canonical form, the envelope, and record_problems naming
each kind of damage (and never raising, whatever a record holds)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.custody import keys
from agent.custody.keys import StationKey
from agent.custody.records import (
    FIRST,
    GENESIS,
    Link,
    as_signed,
    canonical,
    envelope,
    link_after,
    record_from_sidecar,
    record_hash,
    record_problems,
    sidecar_bytes,
    signed_body,
)
from agent.custody.seal import signed_record
from agent.store import RecordRow


def _key() -> StationKey:
    private = Ed25519PrivateKey.generate()
    return StationKey(private, keys.key_id(private.public_key()))


KEY = _key()
OTHER_KEY = _key()

FILE_BODY: dict[str, Any] = {
    "v": 1,
    "type": "file",
    "device_serial": "CAM01",
    "officer_id": "OFC-1",
    "session_id": 3,
    "file_id": 7,
    "original_name": "RECORD/20260101_0001.MP4",
    "original_name_b64": base64.b64encode(b"RECORD/20260101_0001.MP4").decode(),
    "size": 4096,
    "sha256": "ab" * 32,
    "kind": "video",
    "important": False,
    "segment": None,
}
AUDIT_BODY: dict[str, Any] = {
    "v": 1,
    "type": "audit",
    "action": "device.enrolled",
    "operator": "tech",
    "at": "2026-01-01T00:00:00+00:00",
    "details": {"serial": "CAM01"},
}


def _file_record(
    seq: int = 1, prev: str = GENESIS, key: StationKey = KEY, **body: Any
) -> RecordRow:
    return signed_record("file", {**FILE_BODY, **body}, 7, seq, prev, key, "STATION-01")


def _resigned(record: RecordRow, body: Any, key: StationKey = KEY) -> RecordRow:
    """The record with another body, hashed and signed again (damage only the fields show)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    signature = base64.b64encode(key.sign(text.encode())).decode()
    return dataclasses.replace(
        record, body=text, record_hash=record_hash(text), signature=signature
    )


# ---- the canonical form ---------------------------------------------------------------------


def test_canonical_form_is_sorted_compact_utf8_and_independent_of_key_order() -> None:
    body = {"b": 1, "a": "Ünïcode ✓", "c": [True, None, -3], "d": {"y": "", "x": 0}}
    expected = '{"a":"Ünïcode ✓","b":1,"c":[true,null,-3],"d":{"x":0,"y":""}}'.encode()
    assert canonical(body) == expected
    assert canonical(dict(reversed(list(body.items())))) == expected


json_scalars = st.none() | st.booleans() | st.integers() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(database=None)  # nothing written into the work tree
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_canonical_form_is_stable_through_parsing(body: dict[str, Any]) -> None:
    # What a sidecar round trip does: parse the canonical bytes and make them canonical again.
    once = canonical(body)
    assert canonical(json.loads(once)) == once


def test_record_hash_is_the_sha256_of_the_signed_bytes() -> None:
    record = _file_record()
    assert record.record_hash == hashlib.sha256(record.body.encode()).hexdigest()
    assert record_hash(record.body) == record.record_hash


def test_a_sidecar_gives_back_the_record_exactly() -> None:
    record = _file_record()
    data = sidecar_bytes(record)
    assert json.loads(data) == envelope(record)
    assert set(envelope(record)) == {"body", "signature", "key_id", "record_hash"}
    assert record_from_sidecar(data) == record
    assert as_signed(dataclasses.replace(record, seq=99, file_id=5, kind="audit")) == record


@pytest.mark.parametrize(
    "data",
    [b"", b"{half a sidecar", b"[]", b'{"body": []}', b'{"body": {"type": "file"}}', b"\xff\xfe"],
)
def test_what_is_not_a_sidecar_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="custody sidecar"):
        record_from_sidecar(data)


# ---- whole records --------------------------------------------------------------------------


def test_a_whole_chain_has_no_problems() -> None:
    first = _file_record()
    second = signed_record("audit", AUDIT_BODY, None, 2, first.record_hash, KEY, "STATION-01")
    assert record_problems(first, KEY, expected=FIRST) == []
    assert link_after(first) == Link(2, first.record_hash)
    assert record_problems(second, KEY, expected=link_after(first)) == []
    assert signed_body(second) == json.loads(second.body)


def _damaged(change: Callable[[RecordRow], RecordRow]) -> RecordRow:
    return change(_file_record(seq=2, prev="11" * 32))


# (damage, problem kind, words of its detail); each record is seq 2 of file 7, expected at
# Link(2, "11" * 32) and checked with the station key.
DAMAGE: dict[str, tuple[Callable[[RecordRow], RecordRow], str, str]] = {
    "body a list": (
        lambda r: dataclasses.replace(r, body="[1, 2]"),
        "record_malformed",
        "its body is a JSON list, not a JSON object",
    ),
    "body not json": (
        lambda r: dataclasses.replace(r, body="{half"),
        "record_unreadable",
        "its body is not JSON",
    ),
    "body not utf-8": (
        lambda r: dataclasses.replace(r, body='{"a":"\udcff"}'),
        "record_unreadable",
        "not UTF-8 text",
    ),
    "body raw bytes": (
        lambda r: dataclasses.replace(r, body=r.body.encode()),  # type: ignore[arg-type]
        "record_malformed",
        "its body column is raw bytes, not a string",
    ),
    "field of the wrong type": (
        lambda r: _resigned(r, {**json.loads(r.body), "size": "4096"}),
        "record_malformed",
        "its body's size is a string, not an integer",
    ),
    "field missing": (
        lambda r: _resigned(r, {k: v for k, v in json.loads(r.body).items() if k != "sha256"}),
        "record_malformed",
        "its body lacks sha256",
    ),
    "unknown record type": (
        lambda r: _resigned(r, {**json.loads(r.body), "type": "note"}),
        "record_malformed",
        "its body's type is 'note'",
    ),
    "signature not base64": (
        lambda r: dataclasses.replace(r, signature="not base64!"),
        "bad_signature",
        "its signature is not base64",
    ),
    "signature not ascii": (
        lambda r: dataclasses.replace(r, signature="sïgnature"),
        "bad_signature",
        "its signature is not base64",
    ),
    "signature too short": (
        lambda r: dataclasses.replace(r, signature=base64.b64encode(b"x" * 12).decode()),
        "bad_signature",
        "its signature is 12 bytes, not 64",
    ),
    "signature of something else": (
        lambda r: dataclasses.replace(
            r, signature=base64.b64encode(KEY.sign(b"something else")).decode()
        ),
        "bad_signature",
        "its signature does not verify",
    ),
    "signature column an integer": (
        lambda r: dataclasses.replace(r, signature=12),  # type: ignore[arg-type]
        "record_malformed",
        "its signature column is an integer, not a string",
    ),
    "body edited": (
        lambda r: dataclasses.replace(r, body=r.body.replace('"size":4096', '"size":4097')),
        "record_edited",
        "its body does not match its hash",
    ),
    "hash edited": (
        lambda r: dataclasses.replace(r, record_hash="0" * 64),
        "record_edited",
        "its body does not match its hash",
    ),
    "kind column edited": (
        lambda r: dataclasses.replace(r, kind="audit"),
        "record_edited",
        "its kind column is not the one its body names",
    ),
    "file id column edited": (
        lambda r: dataclasses.replace(r, file_id=999),
        "record_edited",
        "its file id column is not the one its body names",
    ),
    "file id column text": (
        lambda r: dataclasses.replace(r, file_id="7"),  # type: ignore[arg-type]
        "record_malformed",
        "its file id column is a string, not an integer",
    ),
    "seq column edited": (
        lambda r: dataclasses.replace(r, seq=3),
        "chain_broken",
        "its body says seq 2, stored as 3",
    ),
    "prev column edited": (
        lambda r: dataclasses.replace(r, prev_hash="22" * 32),
        "chain_broken",
        "does not link to the record before it",
    ),
    "a record before it missing": (
        lambda r: _file_record(seq=4, prev="11" * 32),
        "chain_gap",
        "record 2 is missing before 4",
    ),
    "linked to another record": (
        lambda r: _file_record(seq=2, prev="33" * 32),
        "chain_broken",
        "does not link to the record before it",
    ),
    "signed by another key": (
        lambda r: _file_record(seq=2, prev="11" * 32, key=OTHER_KEY),
        "unknown_key",
        f"signed by key '{OTHER_KEY.key_id}', the station key is {KEY.key_id}",
    ),
    "key id column edited": (
        lambda r: dataclasses.replace(r, key_id="0123456789abcdef"),
        "unknown_key",
        "signed by key '0123456789abcdef'",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_each_kind_of_damage_is_named(damage: str) -> None:
    change, kind, words = DAMAGE[damage]
    record = _damaged(change)
    problems = record_problems(record, KEY, expected=Link(2, "11" * 32))
    assert (kind, True) in {(p.kind, words in p.detail) for p in problems}, problems
    for p in problems:
        json.dumps(p.as_dict())  # `verify --json` prints every one
        assert p.seq == (record.seq if isinstance(record.seq, int) else None)


def test_a_key_id_column_the_body_does_not_name_is_named_as_an_edit() -> None:
    record = dataclasses.replace(_file_record(), key_id="0123456789abcdef")
    kinds = {p.kind: p.detail for p in record_problems(record, KEY)}
    assert kinds["record_edited"] == "its key id column is not the one its body names"


def test_without_the_key_only_signatures_are_left_unchecked() -> None:
    forged = dataclasses.replace(_file_record(), signature="not base64!")
    assert record_problems(forged, None) == []
    edited = dataclasses.replace(forged, record_hash="0" * 64)
    assert [p.kind for p in record_problems(edited, None)] == ["record_edited"]


def test_problems_name_their_record_and_file() -> None:
    record = dataclasses.replace(_file_record(seq=1), record_hash="0" * 64)
    (problem,) = record_problems(record, KEY, expected=FIRST)
    assert (problem.seq, problem.file_id, problem.kind) == (1, 7, "record_edited")


def test_a_hostile_key_id_is_shown_escaped_and_cut_short() -> None:
    record = dataclasses.replace(_file_record(), key_id="\x1b[2J" + "k" * 100)
    detail = next(p.detail for p in record_problems(record, KEY) if p.kind == "unknown_key")
    assert "\x1b" not in detail and "\\u001b[2J" in detail and len(detail) < 120


# ---- never raises ---------------------------------------------------------------------------

FIELDS = [f.name for f in dataclasses.fields(RecordRow)]
anything = json_values | st.binary(max_size=64) | st.floats(allow_nan=True)


def _check_never_raises(record: RecordRow) -> None:
    for key in (KEY, None):
        for expected in (None, FIRST, Link(5, None)):
            problems = record_problems(record, key, expected=expected)
            for p in problems:
                assert isinstance(p.detail, str) and p.kind
                json.dumps(p.as_dict())
    link_after(record)
    signed_body(record)
    try:
        sidecar_bytes(record)
        as_signed(record)
    except ValueError:
        pass


@settings(max_examples=300, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), anything)
def test_record_problems_never_raises_on_any_value_in_any_field(field: str, value: Any) -> None:
    _check_never_raises(dataclasses.replace(_file_record(), **{field: value}))


@settings(max_examples=300, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_record_problems_never_raises_on_any_json_body(body: Any) -> None:
    record = _file_record()
    text = json.dumps(body)
    _check_never_raises(dataclasses.replace(record, body=text, record_hash=record_hash(text)))
    if isinstance(body, dict):  # every field of a signed body, of any value
        _check_never_raises(_resigned(record, {**json.loads(record.body), **body}))


@settings(max_examples=300, database=None)
@given(st.sampled_from(FIELDS), st.binary(max_size=64))
def test_record_problems_never_raises_on_any_bytes_in_any_field(field: str, raw: bytes) -> None:
    record = _file_record()
    _check_never_raises(dataclasses.replace(record, **{field: raw}))
    # The bytes as text, as a database edited to hold them gives them back.
    text = raw.decode("utf-8", "surrogateescape")
    _check_never_raises(dataclasses.replace(record, **{field: text}))


@settings(max_examples=300, database=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_a_sidecar_of_any_bytes_is_a_record_or_a_value_error(data: bytes) -> None:
    try:
        record = record_from_sidecar(data)
    except ValueError:
        return
    _check_never_raises(record)


@settings(max_examples=300, database=None)
@given(st.sampled_from(["body", "signature", "key_id", "record_hash"]), json_values)
def test_a_sidecar_with_any_value_in_any_field_is_a_record_or_a_value_error(
    field: str, value: Any
) -> None:
    env = json.loads(sidecar_bytes(_file_record()))
    env[field] = value
    try:
        record = record_from_sidecar(json.dumps(env).encode())
    except ValueError:
        return
    _check_never_raises(record)


CONFIRMATION_BODY: dict[str, Any] = {
    "v": 1,
    "type": "confirmation",
    "file_id": 7,
    "sha256": "ab" * 32,
    "size": 4096,
    "sink_kind": "directory",
    "sink_endpoint": "/srv/archive",
    "sink_id": "cd" * 32,
    "station_sink_id": "cd" * 32,
    "station_sink_endpoint": "/srv/archive",
    "level": "verified",
    "sink_ref": "/srv/archive/STATION-01/2026/01/01/" + "ab" * 32 + ".mp4",
    "digest": "ab" * 32,
    "config": "/etc/dockagent/config.toml",
    "at": "2026-01-01T00:00:00+00:00",
}


def test_a_confirmation_record_verifies_and_comes_back_from_its_sidecar_on_its_file() -> None:
    record = signed_record("confirmation", CONFIRMATION_BODY, 7, 2, "ef" * 32, KEY, "STATION-01")
    assert record_problems(record, KEY) == []
    back = record_from_sidecar(sidecar_bytes(record))
    assert back == record and back.file_id == 7 and back.kind == "confirmation"


def test_a_confirmation_record_without_its_sink_or_on_another_file_is_named() -> None:
    body = {k: v for k, v in CONFIRMATION_BODY.items() if k != "sink_endpoint"}
    record = signed_record("confirmation", body, 7, 2, "ef" * 32, KEY, "STATION-01")
    assert [p.detail for p in record_problems(record, KEY)] == ["its body lacks sink_endpoint"]
    moved = dataclasses.replace(
        signed_record("confirmation", CONFIRMATION_BODY, 7, 2, "ef" * 32, KEY, "STATION-01"),
        file_id=8,
    )
    assert [p.kind for p in record_problems(moved, KEY)] == ["record_edited"]
