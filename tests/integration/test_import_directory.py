"""`dockagent import` on a directory laid out like a camera: sealing, re-import, verify, wipe."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows, sha256_file

SPEC = CameraSpec(serial="CAMDIR01", days=2, files_per_day=5, file_size=64 * 1024, large_files=0)


@pytest.fixture
def imported(station: Station, tmp_path: Path) -> tuple[Station, Path, dict[bytes, str]]:
    cam = tmp_path / "cam"
    manifest = write_camera(SPEC, cam)
    proc = station.run("import", str(cam), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {e[0]: e[2] for e in manifest.entries}
    return station, cam, expected


def test_every_file_is_sealed_once_with_the_camera_hash(imported) -> None:  # type: ignore[no-untyped-def]
    station, _cam, expected = imported
    assert_all_sealed(station.data_dir, "CAMDIR01", expected)
    assert len(rows(station.data_dir, "SELECT * FROM records")) == len(expected)
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout
    assert f"verify OK: {len(expected)} files" in verify.stdout


def test_importing_again_adds_nothing_and_says_so(imported) -> None:  # type: ignore[no-untyped-def]
    station, cam, expected = imported
    proc = station.run("import", str(cam))
    assert proc.returncode == 0
    assert "nothing new" in proc.stdout
    summary = station.json("import", str(cam))
    assert summary["files_sealed"] == 0 and summary["files_already_held"] == len(expected)
    assert len(rows(station.data_dir, "SELECT * FROM records")) == len(expected)


# What the station's group may read (README "Who may run what"), with exactly these modes;
# everything else, the evidence, its sidecars and the key among it, is the owner's alone.
GROUP_MODES = {
    "dockagent.db": 0o640,
    "dockagent.db-wal": 0o640,
    "dockagent.db-shm": 0o640,
    "store.id": 0o640,
    "station.pub": 0o644,
    "staging": 0o710,
    "staging/_chain": 0o710,
    "staging/_chain/head.json": 0o640,
}


def test_staging_is_private(imported) -> None:  # type: ignore[no-untyped-def]
    station, _, _ = imported
    seen = set()
    for path in [station.data_dir, *station.data_dir.rglob("*")]:
        rel = path.relative_to(station.data_dir).as_posix()
        mode = path.stat().st_mode & 0o777
        if rel in GROUP_MODES:
            seen.add(rel)
            assert mode == GROUP_MODES[rel], f"{path} is {mode:o}"
        else:
            assert mode & 0o077 == 0, f"{path} is {mode:o}"
    assert {"dockagent.db", "station.pub", "staging", "staging/_chain/head.json"} <= seen


def _tamper_db(data_dir: Path, *sql: str) -> None:
    conn = sqlite3.connect(data_dir / "dockagent.db", isolation_level=None)
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute("DROP TRIGGER records_no_delete")
    for statement in sql:
        conn.execute(statement)
    conn.close()


def _video(data_dir: Path) -> dict[str, object]:
    return rows(data_dir, "SELECT * FROM files WHERE kind='video' ORDER BY id LIMIT 1")[0]


def _verify_fails(station: Station, *needles: str) -> dict[str, object]:
    proc = station.run("verify")
    assert proc.returncode == 4, proc.stdout
    for needle in needles:
        assert needle in proc.stdout, proc.stdout
    return json.loads(station.run("verify", "--json").stdout)


def test_a_changed_staged_byte_is_named(imported) -> None:  # type: ignore[no-untyped-def]
    station, _, _ = imported
    row = _video(station.data_dir)
    path = station.staging / str(row["staged_path"])
    with open(path, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    report = _verify_fails(station, "FAIL changed_bytes", str(row["camera_name"]))
    assert [p["file_id"] for p in report["problems"]] == [row["id"]]


def test_a_missing_staged_file_is_named(imported) -> None:  # type: ignore[no-untyped-def]
    station, _, _ = imported
    row = _video(station.data_dir)
    (station.staging / str(row["staged_path"])).unlink()
    _verify_fails(station, "FAIL missing_file", str(row["camera_name"]))


def test_an_edited_record_is_named(imported) -> None:  # type: ignore[no-untyped-def]
    station, _, _ = imported
    _tamper_db(
        station.data_dir,
        "UPDATE records SET body=replace(body, '\"size\":', '\"size\":1') WHERE seq=3",
    )
    _verify_fails(station, "FAIL record_edited: record 3", "FAIL bad_signature: record 3")


def test_an_edited_record_with_recomputed_hash_still_fails_its_signature(imported) -> None:  # type: ignore[no-untyped-def]
    station, _, _ = imported
    conn = sqlite3.connect(station.data_dir / "dockagent.db")
    body = conn.execute("SELECT body FROM records WHERE seq=2").fetchone()[0]
    conn.close()
    forged = body.replace('"kind":"', '"kind":"x')
    assert forged != body
    digest = hashlib.sha256(forged.encode()).hexdigest()
    _tamper_db(
        station.data_dir, f"UPDATE records SET body='{forged}', record_hash='{digest}' WHERE seq=2"
    )
    _verify_fails(station, "FAIL bad_signature: record 2", "FAIL chain_broken: record 3")


def test_a_removed_record_is_named(imported) -> None:  # type: ignore[no-untyped-def]
    station, _, _ = imported
    _tamper_db(station.data_dir, "DELETE FROM records WHERE seq=4")
    _verify_fails(station, "FAIL chain_gap: record 5", "FAIL missing_record")


def test_reordered_records_are_named(imported) -> None:  # type: ignore[no-untyped-def]
    station, _, _ = imported
    _tamper_db(
        station.data_dir,
        "UPDATE records SET seq=-1 WHERE seq=2",
        "UPDATE records SET seq=2 WHERE seq=3",
        "UPDATE records SET seq=3 WHERE seq=-1",
    )
    _verify_fails(station, "FAIL chain_broken: record 2", "FAIL chain_broken: record 3")


def test_the_last_record_removed_is_named(imported) -> None:  # type: ignore[no-untyped-def]
    station, _, _ = imported
    last = rows(station.data_dir, "SELECT max(seq) AS m FROM records")[0]["m"]
    _tamper_db(station.data_dir, f"DELETE FROM records WHERE seq={last}")
    _verify_fails(station, "FAIL chain_truncated", "FAIL missing_record")


def test_an_edited_sidecar_and_row_are_named(imported) -> None:  # type: ignore[no-untyped-def]
    station, _, _ = imported
    row = _video(station.data_dir)
    side = station.staging / (str(row["staged_path"]) + ".custody.json")
    side.write_text(side.read_text().replace(str(row["sha256"]), "0" * 64))
    _tamper_db(station.data_dir, f"UPDATE files SET size=size+1 WHERE id={row['id']}")
    _verify_fails(station, "FAIL sidecar_differs", "FAIL row_edited")


def test_after_seal_wipes_recordings_only(station: Station, tmp_path: Path) -> None:
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "after_seal"\n'
    )
    cam = tmp_path / "cam"
    manifest = write_camera(SPEC, cam)
    proc = station.run("import", str(cam), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    left = sorted(p.relative_to(cam).as_posix() for p in cam.rglob("*") if p.is_file())
    assert left == ["DEVICE.INF", "LOG/BATTERY.CSV", "LOG/SYSTEM.LOG"]
    recordings = [e for e in manifest.entries if e[0].startswith(b"RECORD/")]
    assert summary["wipe"]["wiped"] == len(recordings)
    wiped = rows(station.data_dir, "SELECT * FROM files WHERE wiped_at IS NOT NULL")
    assert len(wiped) == len(recordings)
    for row in wiped:  # the evidence is still held
        assert sha256_file(station.staging / row["staged_path"]) == row["sha256"]
    assert station.run("verify").returncode == 0


def test_an_unreadable_entry_blocks_the_wipe_and_the_exit_code(
    station: Station, tmp_path: Path
) -> None:
    station.configure(
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "after_seal"\n'
    )
    cam = tmp_path / "cam"
    write_camera(SPEC, cam)
    day = next((cam / "RECORD").iterdir())
    os.mkfifo(day / "PIPE.MP4")
    proc = station.run("import", str(cam))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "NOT SEALED" in proc.stdout and "PIPE.MP4: a FIFO: not read" in proc.stdout
    assert "wipe: not wiped (1 entries on the camera are not accounted for)" in proc.stdout
    assert sum(1 for p in cam.rglob("*.MP4") if p.is_file()) > 0
    # The same import as JSON: the problem carries its kind, for code to test (never its words).
    again = station.run("import", str(cam), "--json")
    problems = json.loads(again.stdout)["problems"]
    assert [(p["file"].rsplit("/", 1)[-1], p["kind"]) for p in problems] == [
        ("PIPE.MP4", "not_taken")
    ]


def test_a_volume_without_device_inf_is_refused(station: Station, tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "holiday.jpg").write_bytes(b"x" * 100)
    proc = station.run("import", str(stick))
    assert proc.returncode == 77
    assert "no DEVICE.INF: not a camera volume" in proc.stderr
    assert not (station.staging).exists() or not any(station.staging.rglob("*.jpg"))
