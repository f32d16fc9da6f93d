"""Corrupt state: the agent refuses to run on a damaged database, and `dockagent rebuild`
restores the queue and the chain from the signed sidecars without uploading anything twice.

A real station (the CLI as processes) takes two cameras in, uploads the first to a real tus
server, records technician actions, and then has its database damaged in one way each: header
overwritten, file truncated, file emptied, a copy without its -wal, a byte changed inside a
custody record. Every command must refuse with exit 65 and name `dockagent rebuild`; after the
rebuild `verify` passes, every camera file is held once with its hash, and the next sync
uploads only what the server did not have. A rebuild killed at each of its steps is finished
by the next one with nothing lost; a record it cannot restore, or two signed records for one
place, are named and kept, never dropped. The checks read SQLite and the server's store
directly (tests/support), never through the agent (which only signs the forged records).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.core import crashpoints
from agent.custody import keys
from agent.custody.keys import StationKey
from agent.custody.records import canonical
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows, sha256_file
from tests.support.nothing_lost import Manifest, check, tus_file_store_objects
from tests.support.tus_servers import TusServer, sync_config, tus_node_server

KIB, MIB = 1 << 10, 1 << 20
SMALL = {
    "days": 1,
    "files_per_day": 3,
    "file_size": 48 * KIB,
    "large_files": 0,
    "split_every": 0,
    "other_files": 0,
}
CAM_A = CameraSpec(serial="CORRUPTA", seed=11, **SMALL)  # type: ignore[arg-type]
CAM_B = CameraSpec(serial="CORRUPTB", seed=12, **SMALL)  # type: ignore[arg-type]
REFUSED = 65


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _expected(cam: Path) -> dict[bytes, str]:
    return {name: sha for name, (_size, sha) in Manifest.scan(cam).items()}


def _uploads_created(server: TusServer) -> int:
    """Every POST leaves an info file in @tus/file-store, finished or not."""
    return len(list(server.store_dir.glob("*.json")))


# ---- the damage ----------------------------------------------------------------------------


def _damage_header(db: Path, _stale: bytes) -> str:
    with open(db, "r+b") as fh:
        fh.write(b"this is no longer SQLite!" * 4)
    return "is damaged"


def _truncate(db: Path, _stale: bytes) -> str:
    os.truncate(db, db.stat().st_size // 2)
    return "is damaged"


def _empty(db: Path, _stale: bytes) -> str:
    os.truncate(db, 0)
    return "is empty"


def _without_wal(db: Path, stale: bytes) -> str:
    # The copy taken while camera B's commits were still only in the -wal file.
    db.write_bytes(stale)
    return "lacks committed changes"


def _change_record_byte(db: Path, _stale: bytes) -> str:
    # One hex digit of the newest file record's sha256 (the import after it is signed too), in
    # place: the page stays well formed, so only the chain's own hash can tell.
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    body = conn.execute(
        "SELECT body FROM records WHERE kind='file' ORDER BY seq DESC LIMIT 1"
    ).fetchone()[0]
    conn.close()
    data = bytearray(db.read_bytes())
    needle = body.encode()
    at = data.find(needle)
    assert at >= 0, "the newest record is not in the database file"
    while at >= 0:
        digit = at + needle.index(b'"sha256":"') + len(b'"sha256":"')
        data[digit] = ord("0") if data[digit] != ord("0") else ord("1")
        at = data.find(needle, at + 1)
    db.write_bytes(bytes(data))
    return "custody chain"


DAMAGE: dict[str, Callable[[Path, bytes], str]] = {
    "damaged_header": _damage_header,
    "truncated": _truncate,
    "zero_length": _empty,
    "copied_without_wal": _without_wal,
    "changed_record_byte": _change_record_byte,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_database_is_refused_then_rebuilt_without_uploading_twice(
    station: Station, tmp_path: Path, damage: str
) -> None:
    cam_a, cam_b = tmp_path / "cam-a", tmp_path / "cam-b"
    write_camera(CAM_A, cam_a)
    write_camera(CAM_B, cam_b)
    manifest = Manifest.of_camera(CAM_A.serial, cam_a)
    manifest.add_camera(CAM_B.serial, cam_b)
    with tus_node_server(tmp_path / "server") as server:
        station.configure(sync_config(server.endpoint, confirm_level="verified"))
        _ok(station.run("import", str(cam_a)))
        _ok(station.run("sync", "--once"))
        uploaded_a = _uploads_created(server)
        assert uploaded_a == len(rows(station.data_dir)) > 3
        _ok(station.run("devices", "enroll", CAM_B.serial, "--officer", "OFC-1"))
        _ok(station.run("assign", CAM_B.serial, "OFC-2"))

        db = station.data_dir / "dockagent.db"
        # A reader holding a snapshot keeps camera B's commits in the -wal file (as the
        # daemon's connections do while it runs): the copy taken then lacks them.
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN")
        holder.execute("SELECT COUNT(*) FROM records").fetchone()
        _ok(station.run("import", str(cam_b)))
        assert Path(f"{db}-wal").stat().st_size > 0
        stale = db.read_bytes()
        holder.execute("COMMIT")
        holder.close()  # the last connection: checkpoints the -wal into the database
        assert not Path(f"{db}-wal").exists()
        records_before = len(rows(station.data_dir, "SELECT seq FROM records"))

        needle = DAMAGE[damage](db, stale)

        for command in (["status"], ["import", str(cam_b)], ["sync", "--once"], ["queue"]):
            proc = station.run(*command)
            assert proc.returncode == REFUSED, (command, proc.stdout, proc.stderr)
            assert needle in proc.stderr and "run `dockagent rebuild`" in proc.stderr.lower(), (
                command,
                proc.stderr,
            )
        assert _uploads_created(server) == uploaded_a

        rebuilt = station.run("rebuild", "--json")
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        report = json.loads(rebuilt.stdout)
        assert report["problems"] == [] and report["whole"]
        assert report["files"] == len(manifest.files)
        # Confirmed by the sink's signed confirmations in the chain (a receipt alone, unsigned,
        # would leave them sealed until the sink says so again).
        assert report["confirmed"] == uploaded_a and report["reconfirm"] == 0
        assert report["moved_aside"] and (station.data_dir / report["moved_aside"][0]).exists()

        verify = station.run("verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        # Every record came back, plus the signed record of the rebuild itself.
        chain = rows(station.data_dir, "SELECT seq, kind, body FROM records ORDER BY seq")
        assert [r["seq"] for r in chain] == list(range(1, records_before + 2))
        assert json.loads(chain[-1]["body"])["action"] == "store.rebuilt"
        for cam, spec in ((cam_a, CAM_A), (cam_b, CAM_B)):
            assert_all_sealed(station.data_dir, spec.serial, _expected(cam))
        enrolled = json.loads(_ok(station.run("devices", "enrolled", "--json")))["enrolled"]
        assert CAM_B.serial in json.dumps(enrolled)

        # The same camera again: every file is recognised as held (identity to the ns).
        again = station.json("import", str(cam_b))
        assert again["files_sealed"] == 0 and again["files_already_held"] > 0

        _ok(station.run("sync", "--once"))
        assert _uploads_created(server) == len(manifest.files)
        sink = tus_file_store_objects(server.store_dir)
        assert len(sink[0]) == len(manifest.files) and sink[1] == []
        result = check(manifest, station.data_dir, sink=sink)
        assert result.problems == [], result.problems
        assert {r["state"] for r in rows(station.data_dir)} == {"confirmed"}


# ---- an upload in flight and purged copies ------------------------------------------------

CAM_BIG = CameraSpec(
    serial="CORRUPTC",
    seed=13,
    days=1,
    files_per_day=1,
    large_files=1,
    large_size=6 * MIB,
    split_every=0,
    important_every=0,
    audio_every=0,
    photo_every=0,
    other_files=0,
)


def _wait_for(what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_rebuild_keeps_purged_files_confirmed_and_resumes_an_upload_in_flight(
    station: Station, tmp_path: Path
) -> None:
    cam_a, cam_c = tmp_path / "cam-a", tmp_path / "cam-c"
    write_camera(CAM_A, cam_a)
    write_camera(CAM_BIG, cam_c)
    manifest = Manifest.of_camera(CAM_A.serial, cam_a)
    manifest.add_camera(CAM_BIG.serial, cam_c)
    with tus_node_server(tmp_path / "server") as server:
        station.configure(
            sync_config(
                server.endpoint,
                confirm_level="verified",
                purge_grace_s=0,
                chunk_bytes=MIB,
                bandwidth_bytes_per_s=MIB,
            )
        )
        _ok(station.run("import", str(cam_a)))
        _ok(station.run("sync", "--once"))
        purged = rows(station.data_dir, "SELECT * FROM files WHERE purged_at IS NOT NULL")
        assert purged and all(not (station.staging / r["staged_path"]).exists() for r in purged)
        _ok(station.run("import", str(cam_c)))
        big = rows(
            station.data_dir,
            "SELECT * FROM files WHERE device_serial=? ORDER BY size DESC",
            (CAM_BIG.serial,),
        )[0]
        receipt = station.staging / (big["staged_path"] + ".upload.json")

        # Killed while the 6 MiB file is half sent (1 MiB/s): the server holds a partial upload.
        sync = station.start("sync", "--once")

        def partial() -> bool:
            if not receipt.exists():
                return False
            url = json.loads(receipt.read_text())["upload_url"]
            data = server.stored_path(url)
            return data.exists() and 2 * MIB <= data.stat().st_size < big["size"]

        try:
            _wait_for("a partial upload", partial)
        finally:
            sync.send_signal(signal.SIGKILL)
            sync.wait()
        in_flight = json.loads(receipt.read_text())["upload_url"]

        # The killed sync's last commits are in the -wal, which may hold the database's first
        # page too (it grew): checkpointed first, so the damage below is what a reader sees.
        with sqlite3.connect(station.data_dir / "dockagent.db") as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        _damage_header(station.data_dir / "dockagent.db", b"")
        assert station.run("status").returncode == REFUSED
        report = json.loads(_ok(station.run("rebuild", "--json")))
        assert report["whole"] and report["purged"] == len(purged)
        assert report["resumable"] >= 1
        assert station.run("verify").returncode == 0

        _ok(station.run("sync", "--once"))
        # Resumed with HEAD: the upload in flight was finished, not created again (and its
        # copy purged: the receipt is archived with its sidecars, staging/_archive).
        assert not receipt.exists()
        archived = [
            json.loads(line)
            for path in (station.staging / "_archive").iterdir()
            for line in path.read_text().splitlines()
        ]
        (kept,) = {a["text"] for a in archived if a["name"] == f"{big['staged_path']}.upload.json"}
        assert json.loads(kept)["upload_url"] == in_flight
        assert server.plain_sha256(in_flight, station.identity) == big["sha256"]
        sink = tus_file_store_objects(server.store_dir, station.identity)
        assert sorted(o.sha256 for o in sink[0]) == sorted(f.sha256 for f in manifest.files)
        result = check(manifest, station.data_dir, sink=sink)
        assert result.problems == [], result.problems
        states = rows(station.data_dir, "SELECT state, purged_at FROM files")
        assert {r["state"] for r in states} == {"confirmed"}


# ---- what the sidecars alone cannot tell --------------------------------------------------


@pytest.fixture
def two_cameras(station: Station, tmp_path: Path) -> tuple[Station, dict[str, Path]]:
    cams = {CAM_A.serial: tmp_path / "cam-a", CAM_B.serial: tmp_path / "cam-b"}
    write_camera(CAM_A, cams[CAM_A.serial])
    write_camera(CAM_B, cams[CAM_B.serial])
    _ok(station.run("import", str(cams[CAM_A.serial])))
    _ok(station.run("devices", "enroll", CAM_B.serial, "--officer", "OFC-1"))
    _ok(station.run("import", str(cams[CAM_B.serial])))
    return station, cams


def _sidecar_of(station: Station, seq: int) -> Path:
    row = rows(station.data_dir, "SELECT staged_path FROM files WHERE record_seq=?", (seq,))
    if row:
        return station.staging / (row[0]["staged_path"] + ".custody.json")
    return station.staging / "_chain" / f"{seq:010d}.audit.json"


def test_a_lost_sidecar_is_taken_from_the_damaged_database(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, cams = two_cameras
    audit_seq = rows(station.data_dir, "SELECT seq FROM records WHERE kind='audit'")[0]["seq"]
    lost = [_sidecar_of(station, 2), _sidecar_of(station, audit_seq)]
    for side in lost:
        side.unlink()
    _change_record_byte(station.data_dir / "dockagent.db", b"")
    report = json.loads(_ok(station.run("rebuild", "--json")))
    assert report["whole"] and report["salvaged"] == 2, report
    assert all(side.exists() for side in lost)  # restored from the rebuilt chain
    _ok(station.run("verify"))
    for serial, cam in cams.items():
        assert_all_sealed(station.data_dir, serial, _expected(cam))


def test_a_record_nothing_holds_is_named_and_the_chain_is_not_called_whole(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, _cams = two_cameras
    _sidecar_of(station, 3).unlink()
    _empty(station.data_dir / "dockagent.db", b"")
    proc = station.run("rebuild")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "PROBLEM record 3 of the chain: no sidecar holds it" in proc.stdout
    assert "chain NOT whole" in proc.stdout
    assert station.run("verify").returncode == 4


def test_a_whole_database_is_rebuilt_only_when_forced(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, cams = two_cameras
    proc = station.run("rebuild")
    assert proc.returncode == 64 and "nothing to rebuild" in proc.stderr
    assert not list(station.data_dir.glob("dockagent.db.damaged-*"))
    _ok(station.run("rebuild", "--force"))
    assert len(list(station.data_dir.glob("dockagent.db.damaged-*"))) == 1
    _ok(station.run("verify"))
    for serial, cam in cams.items():
        assert_all_sealed(station.data_dir, serial, _expected(cam))


def test_a_lost_database_and_marker_do_not_become_a_fresh_queue(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, cams = two_cameras
    (station.data_dir / "dockagent.db").unlink()
    (station.data_dir / "store.id").unlink()
    for command in (["status"], ["import", str(cams[CAM_A.serial])]):
        proc = station.run(*command)
        assert proc.returncode == REFUSED, proc.stderr
        assert "staging holds custody records up to" in proc.stderr
    assert not (station.data_dir / "dockagent.db").exists()
    _ok(station.run("rebuild"))
    _ok(station.run("verify"))


def test_rows_lost_before_their_seal_are_found_and_set_aside(
    station: Station, tmp_path: Path
) -> None:
    cam_a, cam_b = tmp_path / "cam-a", tmp_path / "cam-b"
    write_camera(CAM_A, cam_a)
    write_camera(CAM_B, cam_b)
    _ok(station.run("import", str(cam_a)))  # exits cleanly: the -wal is checkpointed
    crashed = station.run("import", str(cam_b), DOCKAGENT_CRASH_AT="copy.staged")
    assert crashed.returncode == -signal.SIGKILL
    db = station.data_dir / "dockagent.db"
    assert Path(f"{db}-wal").stat().st_size > 0
    for suffix in ("-wal", "-shm"):  # the database copied without its -wal
        Path(f"{db}{suffix}").unlink()
    proc = station.run("import", str(cam_b))
    assert proc.returncode == REFUSED, proc.stdout + proc.stderr
    assert "the database knows files up to" in proc.stderr and "dockagent rebuild" in proc.stderr
    report = json.loads(_ok(station.run("rebuild", "--json")))
    assert report["whole"] and report["set_aside"], report
    aside = list(station.data_dir.glob("unsealed-*/CORRUPTB/*"))
    assert len(aside) == len(report["set_aside"])
    _ok(station.run("import", str(cam_b)))  # the camera still holds them: copied again
    _ok(station.run("verify"))
    for cam, spec in ((cam_a, CAM_A), (cam_b, CAM_B)):
        assert_all_sealed(station.data_dir, spec.serial, _expected(cam))


def test_a_seal_the_database_lost_is_not_signed_twice(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, cams = two_cameras
    newest = rows(station.data_dir, "SELECT seq FROM records WHERE kind='file' ORDER BY seq DESC")
    last = rows(
        station.data_dir,
        "SELECT * FROM records WHERE seq<=? ORDER BY seq DESC LIMIT 2",
        (newest[0]["seq"],),
    )
    # The newest seal undone in the database (as if its commit was lost, and with it the
    # signed import after it), the head beside staging moved back with it: only the file's
    # signed sidecar still tells.
    conn = sqlite3.connect(station.data_dir / "dockagent.db", isolation_level=None)
    conn.execute("DROP TRIGGER records_no_delete")
    conn.execute("DELETE FROM records WHERE seq>=?", (last[0]["seq"],))
    conn.execute(
        "UPDATE files SET state='staged', record_seq=NULL WHERE id=?", (last[0]["file_id"],)
    )
    conn.execute("UPDATE meta SET value=? WHERE key='chain_head_seq'", (str(last[1]["seq"]),))
    conn.close()
    head = {"seq": last[1]["seq"], "record_hash": last[1]["record_hash"]}
    (station.staging / "_chain" / "head.json").write_text(json.dumps(head))
    proc = station.run("import", str(cams[CAM_B.serial]))
    assert proc.returncode == REFUSED, proc.stdout + proc.stderr
    assert f"holds a signed record of file {last[0]['file_id']}" in proc.stderr
    assert len(rows(station.data_dir, "SELECT seq FROM records")) == last[0]["seq"] - 1
    _ok(station.run("rebuild"))
    _ok(station.run("verify"))
    for serial, cam in cams.items():
        assert_all_sealed(station.data_dir, serial, _expected(cam))


# ---- a rebuild killed, a rebuild that meets what it cannot restore ------------------------


def _kept_databases(station: Station) -> list[Path]:
    return [
        p
        for p in station.data_dir.glob("dockagent.db.damaged-*")
        if not p.name.endswith(("-wal", "-shm"))
    ]


@pytest.mark.parametrize("step", crashpoints.REBUILD_STEPS)
def test_a_rebuild_killed_at_any_step_is_finished_by_the_next(two_cameras, step: str) -> None:  # type: ignore[no-untyped-def]
    station, cams = two_cameras
    audit_seq = rows(station.data_dir, "SELECT seq FROM records WHERE kind='audit'")[0]["seq"]
    for side in (_sidecar_of(station, 2), _sidecar_of(station, audit_seq)):
        side.unlink()  # held only by the damaged database from now on
    db = station.data_dir / "dockagent.db"
    _change_record_byte(db, b"")
    damaged = sha256_file(db)
    records_before = len(rows(station.data_dir, "SELECT seq FROM records"))

    killed = station.run("rebuild", DOCKAGENT_CRASH_AT=step)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    again = station.run("rebuild", "--json")
    if step == "rebuild.replaced":
        # The rebuilt database was in place: the second run only writes what recovery writes.
        assert again.returncode == 64 and "nothing to rebuild" in again.stderr, again.stderr
    else:
        assert again.returncode == 0, again.stdout + again.stderr
        report = json.loads(again.stdout)
        assert report["whole"] and report["salvaged"] == 2, report

    _ok(station.run("verify"))
    chain = rows(station.data_dir, "SELECT seq, body FROM records ORDER BY seq")
    assert [r["seq"] for r in chain] == list(range(1, records_before + 2))
    assert [json.loads(r["body"]).get("action") for r in chain].count("store.rebuilt") == 1
    kept = _kept_databases(station)
    assert len(kept) == 1 and sha256_file(kept[0]) == damaged  # kept once, as found
    assert not list(station.data_dir.glob("dockagent.db.rebuild*"))
    for serial, cam in cams.items():
        assert_all_sealed(station.data_dir, serial, _expected(cam))


def _station_key(station: Station) -> StationKey:
    return keys.load_or_create(station.data_dir / "station.key")


def _signed(key: StationKey, body: dict[str, object]) -> tuple[str, str, str]:
    """A record body signed as the station signs one: (body, record_hash, signature)."""
    text = canonical(body).decode()
    signature = base64.b64encode(key.sign(text.encode())).decode("ascii")
    return text, hashlib.sha256(text.encode()).hexdigest(), signature


def _tamper(db: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS records_no_update")
    conn.execute("DROP INDEX IF EXISTS records_file")
    for sql, args in statements:
        conn.execute(sql, args)
    conn.close()


def test_a_record_the_damaged_database_holds_otherwise_is_named_not_dropped(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, _cams = two_cameras
    record = rows(station.data_dir, "SELECT * FROM records WHERE seq=2")[0]
    body = json.loads(record["body"])
    body["important"] = not body["important"]  # a second signed record for the same place
    text, digest, signature = _signed(_station_key(station), body)
    _tamper(
        station.data_dir / "dockagent.db",
        (
            "UPDATE records SET body=?, record_hash=?, signature=? WHERE seq=2",
            (text, digest, signature),
        ),
    )
    proc = station.run("rebuild")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "record 2: " in proc.stdout and "hold different signed records" in proc.stdout


def test_a_salvaged_record_is_placed_by_its_signed_body_not_its_columns(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, cams = two_cameras
    file_id = rows(station.data_dir, "SELECT file_id FROM records WHERE seq=2")[0]["file_id"]
    _sidecar_of(station, 2).unlink()
    db = station.data_dir / "dockagent.db"
    _tamper(db, ("UPDATE records SET file_id=999 WHERE seq=2", ()))  # outside the signed body
    _change_record_byte(db, b"")
    report = json.loads(_ok(station.run("rebuild", "--json")))
    assert report["whole"] and report["salvaged"] == 1, report
    assert (
        rows(station.data_dir, "SELECT file_id FROM records WHERE seq=2")[0]["file_id"] == file_id
    )
    assert not rows(station.data_dir, "SELECT id FROM files WHERE id=999")
    _ok(station.run("verify"))
    for serial, cam in cams.items():
        assert_all_sealed(station.data_dir, serial, _expected(cam))


def test_a_record_no_row_can_hold_is_named_and_kept_and_the_station_runs(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, cams = two_cameras
    head = rows(station.data_dir, "SELECT * FROM records ORDER BY seq DESC LIMIT 1")[0]
    first = rows(station.data_dir, "SELECT * FROM records WHERE seq=2")[0]
    # A second custody record of file `first` at the head of the chain, validly signed (as a
    # bug could have made one): no schema row can hold it, and it must not vanish unnamed.
    body = {**json.loads(first["body"]), "seq": head["seq"] + 1, "prev": head["record_hash"]}
    text, digest, signature = _signed(_station_key(station), body)
    db = station.data_dir / "dockagent.db"
    _tamper(
        db,
        (
            "INSERT INTO records(seq, kind, file_id, body, record_hash, prev_hash, signature, "
            "key_id, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                body["seq"],
                "file",
                first["file_id"],
                text,
                digest,
                head["record_hash"],
                signature,
                first["key_id"],
                "2026-01-01T00:00:00+00:00",
            ),
        ),
    )
    proc = station.run("rebuild", "--force")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert f"has two custody records (2 and {body['seq']})" in proc.stdout
    kept = _kept_databases(station)
    assert len(kept) == 1
    conn = sqlite3.connect(f"file:{kept[0]}?mode=ro", uri=True)
    assert (
        conn.execute("SELECT COUNT(*) FROM records WHERE seq=?", (body["seq"],)).fetchone()[0] == 1
    )
    conn.close()
    _ok(station.run("import", str(cams[CAM_A.serial])))
    for serial, cam in cams.items():
        assert_all_sealed(station.data_dir, serial, _expected(cam))


def test_a_sidecar_the_chain_rejects_is_set_aside_and_later_actions_work(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, _cams = two_cameras
    head = rows(station.data_dir, "SELECT MAX(seq) AS seq FROM records")[0]["seq"]
    garbage = station.staging / "_chain" / f"{head + 1:010d}.audit.json"
    garbage.write_bytes(b"{half a sidecar")
    _empty(station.data_dir / "dockagent.db", b"")
    proc = station.run("rebuild")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert f"_chain/{garbage.name}: unreadable" in proc.stdout
    # Its seq went to the rebuild's own record, whose sidecar now bears the name.
    assert json.loads(garbage.read_bytes())["body"]["action"] == "store.rebuilt"
    assert [p.read_bytes() for p in station.data_dir.glob(f"unsealed-*/_chain/{garbage.name}")] == [
        b"{half a sidecar"
    ]
    # The next technician action follows the rebuild's record.
    _ok(station.run("devices", "enroll", "CORRUPTZ", "--officer", "OFC-9"))
    _ok(station.run("verify"))


def test_a_database_of_a_newer_dockagent_is_not_rebuilt_unless_forced(two_cameras) -> None:  # type: ignore[no-untyped-def]
    station, _cams = two_cameras
    _tamper(
        station.data_dir / "dockagent.db",
        (
            "INSERT INTO _sqlite_migrations(migration_set, name, applied_at) VALUES (?,?,?)",
            ("dockagent", "9999_from_the_future", "2030-01-01 00:00:00"),
        ),
    )
    proc = station.run("rebuild")
    assert proc.returncode == 65 and "upgrade dockagent" in proc.stderr, proc.stderr
    assert not _kept_databases(station)
    _ok(station.run("rebuild", "--force"))
    assert len(_kept_databases(station)) == 1
    _ok(station.run("verify"))
