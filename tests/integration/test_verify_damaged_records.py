"""`dockagent verify` on custody records damaged in the database: a body that is a JSON list, a
signature that is not base64, a column or a signed field of the wrong type.

verify is the command that names every problem, so it never refuses the database: it exits with
the verify-failed code and names the record and the problem, on its text and its JSON output.
Every other command refuses at open (exit 65), naming the record, its problem and `dockagent
rebuild`; the rebuild restores the record from its signed sidecar, after which verify passes.
Never a traceback. The damage is done with SQLite by hand; the forged record is signed with the
station key, as a bug could have signed it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.core.errors import EXIT_VERIFY_FAILED
from agent.custody import keys
from agent.custody.records import canonical
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows

REFUSED = 65  # EX_DATAERR: the open check's ChainDamaged
SPEC = CameraSpec(
    serial="DAMAGED1",
    seed=21,
    days=1,
    files_per_day=3,
    file_size=32 * 1024,
    large_files=0,
    split_every=0,
    other_files=0,
)


def _resigned_with_size_as_text(station: Station, record: dict[str, object]) -> list[object]:
    body = json.loads(str(record["body"]))
    body["size"] = str(body["size"])
    text = canonical(body).decode()
    key = keys.load_or_create(station.data_dir / "station.key")
    signature = base64.b64encode(key.sign(text.encode())).decode("ascii")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return [text, digest, signature]


# damage: (SQL setting one record's columns, its arguments from the record, the problem kind
# verify names, the words of its detail)
Damage = tuple[str, Callable[[Station, dict[str, object]], list[object]], str, str]
DAMAGE: dict[str, Damage] = {
    "body_a_json_list": (
        "UPDATE records SET body=? WHERE seq=?",
        lambda _st, rec: [json.dumps(list(json.loads(str(rec["body"])).items()))],
        "record_malformed",
        "its body is a JSON list, not a JSON object",
    ),
    "signature_not_base64": (
        "UPDATE records SET signature=? WHERE seq=?",
        lambda _st, rec: ["%%not-base64%%" + str(rec["signature"])[14:]],
        "bad_signature",
        "its signature is not base64",
    ),
    "file_id_column_text": (
        "UPDATE records SET file_id=? WHERE seq=?",
        lambda _st, rec: [f"file {rec['file_id']}"],
        "record_malformed",
        "its file id column is a string, not an integer",
    ),
    "signed_size_a_string": (
        "UPDATE records SET body=?, record_hash=?, signature=? WHERE seq=?",
        _resigned_with_size_as_text,
        "record_malformed",
        "its body's size is a string, not an integer",
    ),
}


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _damage(station: Station, kind: str) -> dict[str, object]:
    """Damage the custody record of the first video; returns its file row."""
    row = rows(station.data_dir, "SELECT * FROM files WHERE kind='video' ORDER BY id LIMIT 1")[0]
    record = rows(station.data_dir, "SELECT * FROM records WHERE seq=?", (row["record_seq"],))[0]
    sql, args, _, _ = DAMAGE[kind]
    conn = sqlite3.connect(station.data_dir / "dockagent.db", isolation_level=None)
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute(sql, (*args(station, record), record["seq"]))
    conn.close()
    return row


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_verify_names_a_damaged_record_and_rebuild_restores_it(
    station: Station, tmp_path: Path, kind: str
) -> None:
    cam = tmp_path / "cam"
    manifest = write_camera(SPEC, cam)
    _ok(station.run("import", str(cam)))
    _ok(station.run("verify"))
    row = _damage(station, kind)
    seq, file_id = row["record_seq"], row["id"]
    _sql, _args, problem, words = DAMAGE[kind]

    proc = station.run("verify")
    _no_traceback(proc)
    assert proc.returncode == EXIT_VERIFY_FAILED, proc.stdout + proc.stderr
    assert f"FAIL {problem}: record {seq}" in proc.stdout, proc.stdout
    assert words in proc.stdout, proc.stdout
    assert "verify FAILED" in proc.stdout

    as_json = station.run("verify", "--json")
    _no_traceback(as_json)
    assert as_json.returncode == EXIT_VERIFY_FAILED, as_json.stdout + as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    named = [p for p in report["problems"] if p["kind"] == problem and p["seq"] == seq]
    assert named and words in named[0]["detail"], report["problems"]
    if kind != "file_id_column_text":  # the column is the damage: it cannot name the file
        assert named[0]["file_id"] == file_id

    # Every other command refuses the database at open, naming the record and its problem.
    for command in (["status"], ["import", str(cam)]):
        refused = station.run(*command)
        _no_traceback(refused)
        assert refused.returncode == REFUSED, (command, refused.stdout, refused.stderr)
        assert f"damaged at record {seq} ({words}" in refused.stderr, refused.stderr
        assert "run `dockagent rebuild`" in refused.stderr

    rebuilt = station.run("rebuild", "--json")
    _no_traceback(rebuilt)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert json.loads(rebuilt.stdout)["whole"]
    _ok(station.run("verify"))
    record = rows(station.data_dir, "SELECT * FROM records WHERE seq=?", (seq,))[0]
    assert record["file_id"] == file_id and json.loads(record["body"])["size"] == row["size"]
    assert_all_sealed(station.data_dir, SPEC.serial, {e[0]: e[2] for e in manifest.entries})
