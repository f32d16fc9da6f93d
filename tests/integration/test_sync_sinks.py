"""Several sinks ([[sync.sinks]]): each file goes to the central tus server and to a NAS
directory, each confirmed and signed apart; [sync] held_when says whose confirmations unlock
the purge of the staged copy and the wipe of the camera.

The tus server is a real one on loopback (@tus/server, tests/support/tus_servers.py); "failing"
is its port with nothing listening (connection refused), "healed" the server started there.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows, sha256_file
from tests.support.tus_servers import free_port, tus_node_server

SPEC = CameraSpec(serial="TWO01", days=1, files_per_day=3, file_size=96 * 1024)
BASE = 'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n'
EX_TEMPFAIL = 75


def _config(nas: Path, endpoint: str, held_when: str, grace_s: int = 0) -> str:
    return (
        BASE
        + '[ingest]\nwipe_policy = "after_confirm"\n'
        + f"[sync]\npurge_grace_s = {grace_s}\nheld_when = {held_when}\n"
        + f'[[sync.sinks]]\nname = "nas"\nkind = "directory"\ndirectory_root = "{nas}"\n'
        + f'[[sync.sinks]]\nname = "central"\nkind = "tus"\nendpoint = "{endpoint}"\n'
    )


def _import(station: Station, cam: Path) -> dict[str, object]:
    proc = station.run("import", str(cam), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout))


def _sink_states(station: Station) -> dict[tuple[int, str], str]:
    with sqlite3.connect(station.data_dir / "dockagent.db") as db:
        return {
            (int(f), str(s)): str(st)
            for f, s, st in db.execute("SELECT file_id, sink, state FROM file_sinks")
        }


def _bodies(station: Station, kind: str = "confirmation") -> list[dict[str, object]]:
    with sqlite3.connect(station.data_dir / "dockagent.db") as db:
        query = "SELECT body FROM records WHERE kind=?"
        return [json.loads(b) for (b,) in db.execute(query, (kind,))]


def _confirmations(station: Station) -> dict[str, set[int]]:
    """Sink name -> the files the chain holds a signed confirmation of from it."""
    result: dict[str, set[int]] = {}
    for body in _bodies(station):
        result.setdefault(str(body["sink_name"]), set()).add(int(body["file_id"]))
    return result


def _nas_copy(nas: Path, row: dict[str, object]) -> Path:
    day = datetime.fromisoformat(str(row["staged_at"]))
    ext = str(row["staged_path"]).rsplit(".", 1)[1]
    return nas / "TEST-STATION" / f"{day:%Y/%m/%d}" / f"{row['sha256']}.{ext}"


def _recordings(cam: Path) -> set[Path]:
    found = {p for p in (cam / "RECORD").rglob("*") if p.is_file()}
    assert found
    return found


def test_all_sinks_required_files_wait_for_the_failing_one_then_end_held(
    station: Station, tmp_path: Path
) -> None:
    nas, port = tmp_path / "nas", free_port()
    endpoint = f"http://127.0.0.1:{port}/files"
    station.configure(_config(nas, endpoint, '"all"'))
    write_camera(SPEC, tmp_path / "cam")
    cam = tmp_path / "cam"
    recordings = _recordings(cam)
    _import(station, cam)

    # The central server is down: the NAS confirms every file, nothing is purged or wiped.
    proc = station.run("sync", "--once", "--json")
    assert proc.returncode == EX_TEMPFAIL, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    ids = {int(r["id"]) for r in rows(station.data_dir)}
    assert report["sinks"]["central"]["waiting"] == len(ids)
    assert _sink_states(station) == {
        **{(i, "nas"): "confirmed" for i in ids},
        **{(i, "central"): "waiting" for i in ids},
    }
    assert _confirmations(station) == {"nas": ids}
    status = json.loads(station.run("status", "--json").stdout)["sinks"]
    assert (status["central"]["waiting"], status["nas"]["waiting"]) == (len(ids), 0)
    queue = json.loads(station.run("queue", "--json").stdout)["files"]
    assert {int(i["file_id"]): i["sinks"] for i in queue} == {
        i: {"nas": "confirmed", "central": "waiting"} for i in ids
    }
    # Bytes sent to each sink: all of the staged copy to the NAS, none yet to the central server.
    sizes = {int(r["id"]): int(str(r["stored_size"] or r["size"])) for r in rows(station.data_dir)}
    assert {int(i["file_id"]): i["sink_uploads"] for i in queue} == {
        i: {
            "nas": {"state": "confirmed", "upload_done": sizes[i], "upload_total": sizes[i]},
            "central": {"state": "waiting", "upload_done": 0, "upload_total": sizes[i]},
        }
        for i in ids
    }
    for row in rows(station.data_dir):
        assert row["state"] == "sealed" and row["purged_at"] is None
        assert "sink central" in str(row["reason"])
        assert sha256_file(_nas_copy(nas, row)) == row["sha256"]
        assert (station.staging / str(row["staged_path"])).exists()
    assert _import(station, cam)["wipe"]["state"] == "not wiped"  # type: ignore[index]
    assert all(p.exists() for p in recordings)

    # The central server comes back: it confirms too, the NAS is not sent the files again.
    with tus_node_server(tmp_path / "tus", port=port) as server:
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for row in rows(station.data_dir):
            assert row["state"] == "confirmed" and row["purged_at"] is not None
            assert not (station.staging / str(row["staged_path"])).exists()
        for body in _bodies(station):  # the server holds the sealed bytes
            if body["sink_name"] == "central":
                assert server.stored_sha256(str(body["sink_ref"])) == body["sha256"]
    assert _confirmations(station) == {"nas": ids, "central": ids}
    assert set(_sink_states(station).values()) == {"confirmed"}
    assert _import(station, cam)["wipe"]["state"] == "wiped"  # type: ignore[index]
    assert not any(p.exists() for p in recordings)
    verify = station.run("verify")  # each sink's confirmation is the station's own sink's
    assert verify.returncode == 0, verify.stdout + verify.stderr
    synced = [
        b["details"]["sink"]  # type: ignore[index]
        for b in _bodies(station, "audit")
        if b["action"] == "sync.ran"
    ]
    assert synced and all(s.startswith(f"nas: directory sink {nas}; central: tus") for s in synced)


def test_held_when_one_sink_purges_and_wipes_after_its_confirmation_only(
    station: Station, tmp_path: Path
) -> None:
    nas = tmp_path / "nas"
    endpoint = f"http://127.0.0.1:{free_port()}/files"  # nothing listens: refused
    station.configure(_config(nas, endpoint, '["nas"]'))
    write_camera(SPEC, tmp_path / "cam")
    cam = tmp_path / "cam"
    recordings = _recordings(cam)
    _import(station, cam)

    proc = station.run("sync", "--once", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = {int(r["id"]) for r in rows(station.data_dir)}
    assert _confirmations(station) == {"nas": ids}
    for row in rows(station.data_dir):
        assert row["state"] == "confirmed" and row["purged_at"] is not None
        assert sha256_file(_nas_copy(nas, row)) == row["sha256"]
    # The central server can no longer get the purged copies: held for it, with the reason.
    assert json.loads(proc.stdout)["sinks"]["central"]["held"] == len(ids)
    with sqlite3.connect(station.data_dir / "dockagent.db") as db:
        reasons = {r for (r,) in db.execute("SELECT reason FROM file_sinks WHERE sink='central'")}
    assert reasons == {"the staged copy was purged before this sink confirmed the file"}
    assert _import(station, cam)["wipe"]["state"] == "wiped"  # type: ignore[index]
    assert not any(p.exists() for p in recordings)


def test_a_sink_outside_held_when_gets_the_files_once_it_heals(
    station: Station, tmp_path: Path
) -> None:
    nas, port = tmp_path / "nas", free_port()
    endpoint = f"http://127.0.0.1:{port}/files"
    station.configure(_config(nas, endpoint, '["nas"]', grace_s=3600))
    write_camera(SPEC, tmp_path / "cam")
    cam = tmp_path / "cam"
    recordings = _recordings(cam)
    _import(station, cam)

    proc = station.run("sync", "--once", "--json")
    assert proc.returncode == EX_TEMPFAIL, proc.stdout + proc.stderr  # central still waits
    ids = {int(r["id"]) for r in rows(station.data_dir)}
    assert json.loads(proc.stdout)["sinks"]["central"]["waiting"] == len(ids)
    assert {r["state"] for r in rows(station.data_dir)} == {"confirmed"}
    assert _import(station, cam)["wipe"]["state"] == "wiped"  # type: ignore[index]
    assert not any(p.exists() for p in recordings)

    with tus_node_server(tmp_path / "tus", port=port) as server:
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for body in _bodies(station):
            if body["sink_name"] == "central":
                assert server.stored_sha256(str(body["sink_ref"])) == body["sha256"]
    assert _confirmations(station) == {"nas": ids, "central": ids}
    assert set(_sink_states(station).values()) == {"confirmed"}


@pytest.mark.parametrize(
    ("sinks", "problem"),
    [
        (
            '[[sync.sinks]]\nname = "a"\ndirectory_root = "/srv/a"\n'
            '[[sync.sinks]]\nname = "a"\ndirectory_root = "/srv/b"\n',
            "'a' names two sinks",
        ),
        (
            'held_when = ["a", "b"]\n[[sync.sinks]]\nname = "a"\ndirectory_root = "/srv/a"\n',
            "'b' is no sink",
        ),
        (
            '[[sync.sinks]]\nname = "a"\nkind = "tus"\nendpoint = "https://ev.example/files"\n'
            '[[sync.sinks]]\nname = "b"\nkind = "tus"\nendpoint = "https://ev.example/files/"\n',
            "both go to https://ev.example/files",
        ),
        ('[[sync.sinks]]\nname = "a"\n', "directory_root: required for directory sink 'a'"),
        ('[[sync.sinks]]\nname = "a"\nkind = "tus"\n', "required when kind is tus"),
        ('[[sync.sinks]]\nname = "a b"\ndirectory_root = "/srv/a"\n', "letters, digits"),
    ],
)
def test_wrong_sink_lists_are_refused(station: Station, sinks: str, problem: str) -> None:
    station.configure(BASE + "[sync]\n" + sinks)
    proc = station.run("sync", "--once")
    assert proc.returncode == 78, proc.stdout + proc.stderr
    assert problem in proc.stderr and "sync" in proc.stderr


def test_a_rebuild_keeps_each_sinks_standing_and_sends_the_missing_sink_its_files(
    station: Station, tmp_path: Path
) -> None:
    """A rebuilt database tells a file one required sink confirmed from a held one: it stays in
    the queue, the sink that confirmed it is not sent it again, the missing one gets it."""
    nas, port = tmp_path / "nas", free_port()
    station.configure(_config(nas, f"http://127.0.0.1:{port}/files", '"all"'))
    write_camera(SPEC, tmp_path / "cam")
    _import(station, tmp_path / "cam")
    assert station.run("sync", "--once").returncode == EX_TEMPFAIL  # the NAS only
    ids = {int(r["id"]) for r in rows(station.data_dir)}

    proc = station.run("rebuild", "--force", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for row in rows(station.data_dir):
        assert row["state"] == "sealed" and row["purged_at"] is None
    assert {k: v for k, v in _sink_states(station).items() if v == "confirmed"} == {
        (i, "nas"): "confirmed" for i in ids
    }

    nas_copies = {p: p.stat().st_mtime_ns for p in nas.rglob("*") if p.is_file()}
    with tus_node_server(tmp_path / "tus", port=port):
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for row in rows(station.data_dir):
        assert row["state"] == "confirmed" and row["purged_at"] is not None
    assert _confirmations(station) == {"nas": ids, "central": ids}
    assert {p: p.stat().st_mtime_ns for p in nas.rglob("*") if p.is_file()} == nas_copies
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_rebuild_sends_a_sink_outside_held_when_the_files_it_still_waits_for(
    station: Station, tmp_path: Path
) -> None:
    nas, port = tmp_path / "nas", free_port()
    station.configure(_config(nas, f"http://127.0.0.1:{port}/files", '["nas"]', grace_s=3600))
    write_camera(SPEC, tmp_path / "cam")
    _import(station, tmp_path / "cam")
    station.run("sync", "--once")  # the NAS holds them; the central server is down
    ids = {int(r["id"]) for r in rows(station.data_dir)}
    assert {r["state"] for r in rows(station.data_dir)} == {"confirmed"}

    proc = station.run("rebuild", "--force", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {r["state"] for r in rows(station.data_dir)} == {"confirmed"}
    assert _sink_states(station) == {
        **{(i, "nas"): "confirmed" for i in ids},
        **{(i, "central"): "waiting" for i in ids},
    }
    with tus_node_server(tmp_path / "tus", port=port):
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _confirmations(station) == {"nas": ids, "central": ids}
