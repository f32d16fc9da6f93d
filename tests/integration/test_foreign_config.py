"""Custody moves only under the station's own configuration, and every confirmation is signed.

A technician's own configuration (another file, the same data directory) that points the sync at
a directory of their choosing with purge grace 0 is refused; root may override it explicitly, and
then each confirmation names the foreign sink and `dockagent verify` fails naming it. Purge and
wipe follow only from a signed confirmation record, never from a row that merely says confirmed;
a lost confirmation sidecar is written again, and `dockagent rebuild` restores the records.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows

SPEC = CameraSpec(serial="FOR01", days=1, files_per_day=3, file_size=64 * 1024)
BASE = 'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n[devices]\nrequire_enrollment = false\n'


def _import(station: Station, cam: Path) -> None:
    proc = station.run("import", str(cam), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _records(station: Station, kind: str) -> list[dict[str, object]]:
    found = rows(station.data_dir, "SELECT body FROM records WHERE kind=? ORDER BY seq", (kind,))
    return [json.loads(str(r["body"])) for r in found]


def _technician_config(station: Station, archive: Path) -> Path:
    own = station.root / "technician.toml"
    own.write_text(
        BASE + f'[ingest]\nwipe_policy = "never"\n[sync]\npurge_grace_s = 0\n'
        f'directory_root = "{archive}"\n'
    )
    return own


def test_a_foreign_sink_sync_leaves_a_signed_trace_that_verify_names(
    station: Station, tmp_path: Path
) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n')
    write_camera(SPEC, tmp_path / "cam")
    _import(station, tmp_path / "cam")
    elsewhere = tmp_path / "elsewhere"
    own = _technician_config(station, elsewhere)

    refused = station.run("sync", "--once", DOCKAGENT_CONFIG=str(own))
    assert refused.returncode == 77, refused.stdout + refused.stderr
    assert "not this station's configuration" in refused.stderr
    assert str(own) in refused.stderr and "--foreign-config" in refused.stderr
    assert {r["state"] for r in rows(station.data_dir)} == {"sealed"}
    assert not elsewhere.exists()

    # Root says so explicitly (the tests run as root): custody moves, and says where.
    done = station.run("--foreign-config", "sync", "--once", DOCKAGENT_CONFIG=str(own))
    assert done.returncode == 0, done.stdout + done.stderr
    files = rows(station.data_dir)
    assert {r["state"] for r in files} == {"confirmed"}
    confirmations = _records(station, "confirmation")
    assert {c["file_id"] for c in confirmations} == {r["id"] for r in files}
    for body in confirmations:
        assert body["sink_kind"] == "directory"
        assert body["sink_endpoint"] == str(elsewhere.resolve())
        assert body["station_sink_endpoint"] == str((station.data_dir / "archive").resolve())
        assert body["sink_id"] != body["station_sink_id"]
        assert body["config"] == str(own.resolve())
    overridden = [a for a in _records(station, "audit") if a["action"] == "config.overridden"]
    assert len(overridden) == 1 and overridden[0]["details"]["config"] == str(own.resolve())

    # verify, under the station's own configuration, names each confirmation and the sink.
    verify = station.run("verify")
    assert verify.returncode == 4, verify.stdout + verify.stderr
    assert verify.stdout.count("FAIL foreign_sink:") == len(files)
    assert f"directory sink {elsewhere.resolve()}" in verify.stdout
    # doctor names them too, red.
    doctor = station.run("doctor", "--json")
    checks = {c["check"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["confirmations"]["status"] == "red", checks["confirmations"]
    assert str(elsewhere.resolve()) in checks["confirmations"]["detail"]
    assert doctor.returncode == 2


def test_a_sync_under_the_station_configuration_signs_each_confirmation(
    station: Station, tmp_path: Path
) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n')
    write_camera(SPEC, tmp_path / "cam")
    _import(station, tmp_path / "cam")
    done = station.run("sync", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    files = {r["id"]: r for r in rows(station.data_dir)}
    for body in _records(station, "confirmation"):
        row = files[body["file_id"]]
        assert body["sha256"] == row["sha256"] and body["level"] == "verified"
        assert body["sink_id"] == body["station_sink_id"]
        assert body["digest"] == row["sha256"]  # what the directory sink re-read
        assert body["sink_ref"] == row["sink_ref"]
    synced = [a for a in _records(station, "audit") if a["action"] == "sync.ran"]
    assert len(synced) == 1 and synced[0]["details"]["confirmed"]
    # A lost confirmation sidecar is written again by the next command's recovery.
    sidecars = sorted(station.staging.glob("*/*.confirmed.json"))
    assert len(sidecars) == len(files)
    sidecars[0].unlink()
    assert station.run("verify").returncode == 4
    assert station.run("sync", "--once").returncode == 0
    assert sidecars[0].exists()
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    doctor = json.loads(station.run("doctor", "--json").stdout)
    checks = {c["check"]: c for c in doctor["checks"]}
    assert checks["confirmations"]["status"] == "green", checks["confirmations"]


def _confirm_without_a_record(station: Station) -> None:
    """What an edited database says: confirmed, with no sink's signed confirmation."""
    with sqlite3.connect(station.data_dir / "dockagent.db") as db:
        db.execute(
            "UPDATE files SET state='confirmed', confirmed_at='2020-01-01T00:00:00+00:00', "
            "confirm_level='verified', sink_ref='nowhere' WHERE state='sealed'"
        )
    db.close()


def test_no_purge_without_a_signed_confirmation(station: Station, tmp_path: Path) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n[sync]\npurge_grace_s = 0\n')
    write_camera(SPEC, tmp_path / "cam")
    _import(station, tmp_path / "cam")
    _confirm_without_a_record(station)
    done = station.run("sync", "--once", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["purged"] == 0
    for row in rows(station.data_dir):
        assert row["purged_at"] is None
        assert (station.staging / str(row["staged_path"])).exists()


def test_no_wipe_without_a_signed_confirmation(station: Station, tmp_path: Path) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "after_confirm"\n')
    manifest = write_camera(SPEC, tmp_path / "cam")
    _import(station, tmp_path / "cam")
    _confirm_without_a_record(station)
    proc = station.run("import", str(tmp_path / "cam"), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["wipe"]["state"] == "not wiped"
    for entry in manifest.entries:
        assert (tmp_path / "cam" / entry.rel_path.decode()).exists()
    assert all(r["wiped_at"] is None for r in rows(station.data_dir))


def test_rebuild_restores_the_confirmation_records(station: Station, tmp_path: Path) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n')
    write_camera(SPEC, tmp_path / "cam")
    _import(station, tmp_path / "cam")
    assert station.run("sync", "--once").returncode == 0
    before = _records(station, "confirmation")
    assert before
    for name in ("dockagent.db", "dockagent.db-wal", "dockagent.db-shm"):
        (station.data_dir / name).unlink(missing_ok=True)
    rebuilt = station.run("rebuild")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert _records(station, "confirmation") == before
    assert {r["state"] for r in rows(station.data_dir)} == {"confirmed"}
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_an_import_by_hand_that_wipes_the_camera_is_signed(
    station: Station, tmp_path: Path
) -> None:
    station.configure(BASE + '[ingest]\nwipe_policy = "after_seal"\n')
    write_camera(SPEC, tmp_path / "cam")
    proc = station.run("import", str(tmp_path / "cam"), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wiped = json.loads(proc.stdout)["wipe"]["wiped"]
    assert wiped > 0
    imported = [a for a in _records(station, "audit") if a["action"] == "camera.imported"]
    assert len(imported) == 1 and imported[0]["operator"]
    details = imported[0]["details"]
    assert (details["device_serial"], details["wiped"]) == (SPEC.serial, wiped)
    assert details["config"] == str(station.config_path.resolve())


def test_doctor_names_a_foreign_confirmation_signed_after_the_last_clean_verify(
    station: Station, tmp_path: Path
) -> None:
    # doctor reads only the confirmations after the last clean verify's head (a year holds a
    # million): one signed after it is still named.
    station.configure(BASE + '[ingest]\nwipe_policy = "never"\n')
    write_camera(SPEC, tmp_path / "cam")
    _import(station, tmp_path / "cam")
    assert station.run("sync", "--once").returncode == 0
    assert station.run("verify").returncode == 0
    later = CameraSpec(serial="FOR02", days=1, files_per_day=2, file_size=64 * 1024)
    write_camera(later, tmp_path / "cam2")
    _import(station, tmp_path / "cam2")
    elsewhere = tmp_path / "elsewhere"
    own = _technician_config(station, elsewhere)
    done = station.run("--foreign-config", "sync", "--once", DOCKAGENT_CONFIG=str(own))
    assert done.returncode == 0, done.stdout + done.stderr
    foreign = [c for c in _records(station, "confirmation") if c["sink_id"] != c["station_sink_id"]]
    assert foreign
    checks = {c["check"]: c for c in json.loads(station.run("doctor", "--json").stdout)["checks"]}
    assert checks["confirmations"]["status"] == "red", checks["confirmations"]
    assert f"{len(foreign)} file(s) confirmed by a sink" in checks["confirmations"]["detail"]
