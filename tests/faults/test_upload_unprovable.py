"""A tus upload the server finished but did not prove (no Repr-Digest sha-512, RFC 9530) under
`confirm_level = "verified"`: sent again as a new upload, a bounded number of times, by a real
@tus/server that loses the digests of chosen finished uploads for good (tests/support/tus-node
--keep-digests/--drop-digests), with the loopback fault proxy counting what reaches it.

Each `sync --once` is a process of its own: the count of unprovable uploads that bounds the
sending again is read from the database by the next one (a restart between attempts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.fault_proxy import FaultProxy
from tests.support.tus_servers import TusServer, sync_config, tus_node_server
from tests.support.volumes import sha256_file

MIB = 1 << 20
# Three recordings of two PATCHes each and the camera's small files, sent one after the other
# (max_parallel_uploads 1), so the server finishes them in the queue's order.
SPEC = CameraSpec(
    serial="UNP01",
    days=1,
    files_per_day=3,
    file_size=3 * MIB // 2,
    size_jitter=0,
    split_every=0,
    important_every=0,
    audio_every=0,
    photo_every=0,
    other_files=0,
)
FOR_GOOD = 1000  # more finished uploads than any test makes


@contextmanager
def _server(tmp_path: Path, keep: int, drop: int) -> Iterator[tuple[TusServer, FaultProxy]]:
    with (
        tus_node_server(tmp_path / "tus", keep_digests=keep, drop_digests=drop) as server,
        FaultProxy(server.port) as proxy,
    ):
        yield server, proxy


def _start(station: Station, proxy: FaultProxy, tmp_path: Path) -> Path:
    station.configure(
        sync_config(
            proxy.endpoint,
            wipe_policy="after_confirm",
            confirm_level="verified",
            chunk_bytes=MIB,
            max_parallel_uploads=1,
            purge_grace_s=0,
        )
    )
    cam = tmp_path / "cam"
    write_camera(SPEC, cam)
    proc = station.run("import", str(cam))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cam


def _recordings(cam: Path) -> list[Path]:
    return sorted((cam / "RECORD").rglob("*.MP4"))


def _stored_uploads(server: TusServer) -> list[str]:
    """The sha-256 of every upload's bytes the server's file store holds (`<id>` beside its
    `<id>.json`), complete or not."""
    return sorted(
        sha256_file(info.with_suffix(""))
        for info in server.store_dir.glob("*.json")
        if info.with_suffix("").exists()
    )


def _count(proxy: FaultProxy, method: str, status: int) -> int:
    return sum(e.method == method and e.status == status for e in proxy.exchanges)


def test_an_upload_whose_digest_the_server_lost_is_sent_again_and_confirmed_verified(
    station: Station, tmp_path: Path
) -> None:
    # The first finished upload is proven; the second's digest is lost for good.
    with _server(tmp_path, keep=1, drop=1) as (server, proxy):
        cam = _start(station, proxy, tmp_path)
        first = station.run("sync", "--once", "--json")
        assert first.returncode == 75, first.stdout + first.stderr  # one file to retry
        assert "upload.reuploaded" in first.stderr
        report = json.loads(first.stdout)
        files = len(rows(station.data_dir))
        assert len(report["confirmed"]) == files - 1 and not report["held"]
        (waiting,) = [r for r in rows(station.data_dir) if r["state"] != "confirmed"]
        assert waiting["state"] == "sealed" and waiting["unprovable_uploads"] == 1
        assert "complete and unprovable" in waiting["last_error"]
        assert waiting["upload_url"] is None  # the next attempt is a new upload
        assert waiting["purged_at"] is None
        assert (station.staging / str(waiting["staged_path"])).exists()
        # The unprovable upload was terminated (tus termination): the server holds no copy
        # the station cannot name.
        assert _count(proxy, "DELETE", 204) == 1
        # Not confirmed: its recording stays on the camera.
        docked = station.run("import", str(cam), "--json")
        assert json.loads(docked.stdout)["wipe"]["state"] == "not wiped"
        assert all(p.exists() for p in _recordings(cam))

        second = station.run("sync", "--once", "--json")
        assert second.returncode == 0, second.stdout + second.stderr
        final = rows(station.data_dir)
        assert {r["state"] for r in final} == {"confirmed"}
        assert {r["confirm_level"] for r in final} == {"verified"}
        for row in final:
            assert server.plain_sha256(str(row["sink_ref"]), station.identity) == row["sha256"]
            assert row["purged_at"] and not (station.staging / str(row["staged_path"])).exists()
        # Exactly one complete copy of each file: one upload more than files, one terminated.
        assert _count(proxy, "POST", 201) == len(final) + 1
        assert _stored_uploads(server) == sorted(str(r["sha256"]) for r in final)
        again = station.run("import", str(cam), "--json")
        assert json.loads(again.stdout)["wipe"]["state"] == "wiped"
        assert not any(p.exists() for p in _recordings(cam))


def test_a_server_that_never_gave_a_digest_holds_the_file_at_its_first_upload(
    station: Station, tmp_path: Path
) -> None:
    """A configuration problem (the server gives no digest at all): held at once, the file
    not sent again, its upload kept."""
    with _server(tmp_path, keep=0, drop=FOR_GOOD) as (server, proxy):
        cam = _start(station, proxy, tmp_path)
        proc = station.run("sync", "--once")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        held = rows(station.data_dir)
        assert {r["state"] for r in held} == {"held"}
        for row in held:
            assert row["reason_kind"] == "upload_unconfirmable"
            assert "1 upload of the file complete and unprovable" in row["reason"], row["reason"]
            assert "never given this station a Repr-Digest sha-512" in row["reason"]
            assert row["unprovable_uploads"] == 0 and row["upload_url"]
            assert (station.staging / str(row["staged_path"])).exists()
        assert "upload.reuploaded" not in proc.stderr
        assert _count(proxy, "POST", 201) == len(held)
        assert _count(proxy, "DELETE", 204) == 0
        assert len(_stored_uploads(server)) == len(held)
        docked = station.run("import", str(cam), "--json")
        assert json.loads(docked.stdout)["wipe"]["state"] == "not wiped"


def test_a_file_unprovable_after_the_bound_is_held_naming_its_uploads_across_restarts(
    station: Station, tmp_path: Path
) -> None:
    """A server that proved the first finished upload and then never again: each other file is
    sent FRESH_UPLOADS (2) more times, one per `sync --once` (a process of its own, so the count
    comes from the database), then held; never more than 3 uploads of a file."""
    with _server(tmp_path, keep=1, drop=FOR_GOOD) as (server, proxy):
        cam = _start(station, proxy, tmp_path)
        others = len(rows(station.data_dir)) - 1
        for run, count in ((1, 1), (2, 2)):
            proc = station.run("sync", "--once")
            assert proc.returncode == 75, proc.stdout + proc.stderr
            waiting = [r for r in rows(station.data_dir) if r["state"] != "confirmed"]
            assert len(waiting) == others, run
            assert {r["state"] for r in waiting} == {"sealed"}
            assert {r["unprovable_uploads"] for r in waiting} == {count}
        last = station.run("sync", "--once")
        assert last.returncode == 3, last.stdout + last.stderr
        final = {r["id"]: r for r in rows(station.data_dir)}
        held = [r for r in final.values() if r["state"] == "held"]
        assert len(held) == others
        for row in held:
            assert row["reason_kind"] == "upload_unconfirmable"
            assert "3 uploads of the file complete and unprovable" in row["reason"], row["reason"]
            assert "never given" not in row["reason"]
            assert (station.staging / str(row["staged_path"])).exists()
        # 1 + 3 uploads of each other file; each held file's first two terminated, its last
        # kept (a technician who lowers confirm_level confirms it without sending it again).
        assert _count(proxy, "POST", 201) == 1 + 3 * others
        assert _count(proxy, "DELETE", 204) == 2 * others
        assert len(_stored_uploads(server)) == 1 + others
        # Held stays held: a later pass sends nothing.
        posts = _count(proxy, "POST", 201)
        assert station.run("sync", "--once").returncode == 3
        assert _count(proxy, "POST", 201) == posts
        docked = station.run("import", str(cam), "--json")
        assert json.loads(docked.stdout)["wipe"]["state"] == "not wiped"
        assert all(p.exists() for p in _recordings(cam))
        # A technician's retry gives each file its fresh uploads again.
        assert station.run("retry", "--held").returncode == 0
        released = [r for r in rows(station.data_dir) if r["state"] != "confirmed"]
        assert {(r["state"], r["unprovable_uploads"]) for r in released} == {("sealed", 0)}


def test_with_several_sinks_the_tus_sink_sends_its_unprovable_upload_again(
    station: Station, tmp_path: Path
) -> None:
    """[[sync.sinks]]: a NAS and the tus server, both required; the server loses the digest of
    the second finished upload: the NAS keeps its confirmation, the tus sink sends the file
    again at the next pass and confirms it `verified`."""
    nas = tmp_path / "nas"
    nas.mkdir()
    with _server(tmp_path, keep=1, drop=1) as (server, proxy):
        station.configure(
            'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n'
            '[ingest]\nwipe_policy = "after_confirm"\n'
            "[sync]\npurge_grace_s = 0\nmax_parallel_uploads = 1\nchunk_bytes = 1048576\n"
            f'[[sync.sinks]]\nname = "nas"\nkind = "directory"\ndirectory_root = "{nas}"\n'
            f'[[sync.sinks]]\nname = "central"\nkind = "tus"\nendpoint = "{proxy.endpoint}"\n'
            'confirm_level = "verified"\n'
        )
        write_camera(SPEC, tmp_path / "cam")
        assert station.run("import", str(tmp_path / "cam")).returncode == 0
        first = station.run("sync", "--once")
        assert first.returncode == 75, first.stdout + first.stderr
        assert "upload.reuploaded" in first.stderr
        (waiting,) = [r for r in rows(station.data_dir) if r["state"] != "confirmed"]
        assert waiting["unprovable_uploads"] == 1 and waiting["purged_at"] is None
        second = station.run("sync", "--once")
        assert second.returncode == 0, second.stdout + second.stderr
        final = rows(station.data_dir)
        assert {(r["state"], r["confirm_level"]) for r in final} == {("confirmed", "verified")}
        assert _count(proxy, "POST", 201) == len(final) + 1
        assert _count(proxy, "DELETE", 204) == 1
        assert _stored_uploads(server) == sorted(str(r["sha256"]) for r in final)
