"""agent.custody.seal as a unit: what sealing signs, links, commits and writes beside staging.

A real store and key in a temporary data directory, cameras docked in-process
(tests/support/docking.py) so the real Sealer seals them; audit records sealed directly.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from agent.core.model import FileState
from agent.custody import chainfiles
from agent.custody.keys import verify_signature
from agent.custody.records import (
    FIRST,
    GENESIS,
    canonical,
    link_after,
    record_problems,
    sidecar_bytes,
)
from agent.custody.seal import original_name, signed_record
from agent.custody.staging import SIDECAR_SUFFIX, audit_sidecar_path
from agent.store import RecordRow
from tests.support.docking import DockingStation, make_camera

NOW = "2026-01-01T00:00:00.000+00:00"


@pytest.fixture
def dock(tmp_path: Path) -> Iterator[DockingStation]:
    config = tmp_path / "config.toml"
    config.write_text(
        'station_id = "SEAL-TEST"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        "[devices]\nrequire_enrollment = false\n"
    )
    station = DockingStation.open(tmp_path / "data", config)
    yield station
    station.close()


def _docked(dock: DockingStation, tmp_path: Path) -> list[RecordRow]:
    camera, _ = make_camera(tmp_path, "cam", serial="SEAL01")
    summary = dock.dock(camera, datetime(2026, 1, 1, 12, 0, 0))
    assert summary.files_sealed == summary.files_found > 0, summary
    return list(dock.store.records())


def test_signed_record_is_canonical_hashed_and_signed_over_its_bytes(
    dock: DockingStation,
) -> None:
    record = signed_record("audit", {"v": 1, "a": "ü"}, None, 5, "ab" * 32, dock.key, "ST")
    body = json.loads(record.body)
    assert body == {"v": 1, "a": "ü", "seq": 5, "prev": "ab" * 32, "key_id": dock.key.key_id,
                    "station_id": "ST"}  # fmt: skip
    assert record.body.encode() == canonical(body)
    assert (record.seq, record.prev_hash, record.key_id) == (5, "ab" * 32, dock.key.key_id)
    signature = base64.b64decode(record.signature)
    assert verify_signature(dock.key.public, signature, record.body.encode())


def test_sealed_files_form_one_verified_chain_from_genesis(
    dock: DockingStation, tmp_path: Path
) -> None:
    records = _docked(dock, tmp_path)
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert records[0].prev_hash == GENESIS
    expected = FIRST
    for record in records:
        assert record_problems(record, dock.key, expected=expected) == []
        expected = link_after(record)  # type: ignore[assignment]
    assert dock.store.meta("chain_head_seq") == str(records[-1].seq)


def test_each_sealed_file_has_its_record_its_sidecar_and_the_head(
    dock: DockingStation, tmp_path: Path
) -> None:
    records = {r.seq: r for r in _docked(dock, tmp_path)}
    staging = dock.config.staging_path
    for row in dock.store.all_files():
        assert row.state == FileState.SEALED
        record = records[row.record_seq]
        body = json.loads(record.body)
        assert (record.kind, record.file_id) == ("file", row.id)
        assert (body["file_id"], body["sha256"], body["size"]) == (
            row.id,
            row.sha256,
            row.size,
        )
        assert body["original_name"] == original_name(row.camera_path)
        assert base64.b64decode(body["original_name_b64"]) == row.camera_path
        side = staging / (row.staged_path + SIDECAR_SUFFIX)
        assert side.read_bytes() == sidecar_bytes(record)
    last = max(records.values(), key=lambda r: r.seq)
    assert chainfiles.read_head(staging) == chainfiles.Head(last.seq, last.record_hash)


def test_an_audit_record_joins_the_same_chain_and_is_written_after_its_commit(
    dock: DockingStation, tmp_path: Path
) -> None:
    before = _docked(dock, tmp_path)[-1]
    staging = dock.config.staging_path
    record = dock.sealer.sign_audit("device.enrolled", {"serial": "SEAL02"}, "tech", NOW)
    assert (record.seq, record.prev_hash, record.kind, record.file_id) == (
        before.seq + 1,
        before.record_hash,
        "audit",
        None,
    )
    body = json.loads(record.body)
    assert (body["action"], body["operator"], body["details"]) == (
        "device.enrolled",
        "tech",
        {"serial": "SEAL02"},
    )
    assert record_problems(record, dock.key, expected=link_after(before)) == []
    side = audit_sidecar_path(staging, record.seq)
    assert side.read_bytes() == sidecar_bytes(record)
    assert chainfiles.read_head(staging) == chainfiles.Head(record.seq, record.record_hash)


def test_an_audit_record_of_a_transaction_rolled_back_leaves_no_files(
    dock: DockingStation, tmp_path: Path
) -> None:
    before = _docked(dock, tmp_path)[-1]
    staging = dock.config.staging_path
    with pytest.raises(RuntimeError), dock.store.transaction():
        dock.sealer.sign_audit("device.enrolled", {"serial": "SEAL03"}, "tech", NOW)
        raise RuntimeError("the caller's transaction fails")
    assert dock.store.chain_head() == (before.seq, before.record_hash)
    assert not audit_sidecar_path(staging, before.seq + 1).exists()
    assert chainfiles.read_head(staging) == chainfiles.Head(before.seq, before.record_hash)


def test_an_audit_record_without_files_writes_none(dock: DockingStation, tmp_path: Path) -> None:
    before = _docked(dock, tmp_path)[-1]
    staging = dock.config.staging_path
    record = dock.sealer.sign_audit("store.rebuilt", {}, "tech", NOW, write_files=False)
    assert dock.store.chain_head() == (record.seq, record.record_hash)
    assert not audit_sidecar_path(staging, record.seq).exists()
    assert chainfiles.read_head(staging) == chainfiles.Head(before.seq, before.record_hash)
