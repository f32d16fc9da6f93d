"""`dockagent sync` to a stock tus service in front of object storage (README "Reference
deployment for a fleet"): @tus/server + @tus/s3-store over an S3 API (moto), both on loopback.

The evidence must land as objects of the bucket, byte-identical (the objects are read back and
hashed here), confirmed `verified` by the Repr-Digest the server computed from the object it
reads back from the bucket. The service keeps no state of its own: killed in the middle of an
upload and started again on the same port and bucket, it resumes the upload from what the
bucket holds (@tus/s3-store keeps parts of at least 5 MiB and the shorter tail apart), even when
that is less than it had acknowledged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent.core.config import SyncConfig
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.tus_servers import (
    moto_s3,
    sync_config,
    tus_over_object_store,
    tus_s3_server,
)

MIB = 1 << 20
# 4 MiB PATCHes: below the store's 5 MiB part minimum, so every other PATCH leaves its bytes in
# the bucket as the tail `<id>.part` and the next PATCH completes it into an 8 MiB part.
CHUNK = 4 * MIB
DEFAULT_CHUNK = SyncConfig().chunk_bytes


def test_a_cameras_files_land_in_the_object_store_identical_and_verified(
    station: Station, tmp_path: Path
) -> None:
    """The station's default 16 MiB PATCHes: each is two whole 8 MiB parts of the multipart
    upload (PATCHes shorter than a part are in the restart test below)."""
    spec = CameraSpec(
        serial="S3CAM1",
        days=1,
        files_per_day=3,
        file_size=64 * 1024,
        large_files=1,
        large_size=17 * MIB + 7,
        important_every=2,
    )
    manifest = write_camera(spec, tmp_path / "cam")
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    with tus_over_object_store(tmp_path / "server") as server:
        station.configure(sync_config(server.endpoint, confirm_level="verified"))
        assert station.run("import", str(tmp_path / "cam")).returncode == 0
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr + server.log()
        held = rows(station.data_dir)
        assert len(json.loads(proc.stdout)["confirmed"]) == len(held) == len(expected)
        for row in held:
            assert (row["state"], row["confirm_level"]) == ("confirmed", "verified"), row["reason"]
            assert expected[bytes(row["camera_path"])] == row["sha256"]
            assert server.stored_sha256(str(row["sink_ref"])) == row["sha256"]
            meta = server.stored_metadata(str(row["sink_ref"]))
            assert (meta["sha256"], meta["device_serial"]) == (row["sha256"], "S3CAM1")
        assert max(r["size"] for r in held) > DEFAULT_CHUNK  # several PATCHes
        # Each upload is one finished object with its digest beside it; no tail left behind.
        keys = server.store.object_keys()
        uploads = {server.stored_key(str(r["sink_ref"])) for r in held}
        assert {k for k in keys if "." not in k} == uploads
        assert not [k for k in keys if k.endswith(".part")]
        for key in uploads:
            assert "sha-512=:" in server.store.text(key + ".repr-digest")
        verify = station.run("verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr


def _upload(data_dir: Path, file_id: int) -> tuple[str | None, int]:
    row = rows(data_dir, "SELECT upload_url, upload_offset FROM files WHERE id=?", (file_id,))[0]
    return row["upload_url"], int(row["upload_offset"] or 0)


@pytest.mark.parametrize(
    ("chunk", "tail_lost"),
    [(8 * MIB, False), (CHUNK, True)],
    ids=["8MiB-patches-parts-kept", "4MiB-patches-tail-lost"],
)
def test_the_tus_service_killed_mid_upload_and_restarted_resumes_from_the_bucket(
    station: Station, tmp_path: Path, chunk: int, tail_lost: bool
) -> None:
    """8 MiB PATCHes are whole parts, which the bucket keeps: the restarted service resumes
    where the station was told. 4 MiB PATCHes leave a tail (`<id>.part`), which @tus/s3-store
    deletes when the next PATCH begins and stores again only inside the part that PATCH makes:
    an instance killed in between has lost acknowledged bytes, its offset goes back, and the
    station must send them again (same upload), the object still byte-identical."""
    spec = CameraSpec(
        serial="S3CAM2",
        days=1,
        files_per_day=1,
        large_files=1,
        large_size=12 * MIB + 3,
        split_every=0,
        important_every=0,
        audio_every=0,
        photo_every=0,
        other_files=0,
    )
    manifest = write_camera(spec, tmp_path / "cam")
    big = max(manifest.entries, key=lambda e: e.size)
    with moto_s3(tmp_path / "s3") as store, tus_s3_server(tmp_path / "tus", store) as first:
        port = first.port
        station.configure(
            sync_config(
                first.endpoint,
                confirm_level="verified",
                chunk_bytes=chunk,
                max_parallel_uploads=1,
                # 12 MiB in about 6 s: the service dies while a PATCH is on the wire.
                bandwidth_bytes_per_s=2 * MIB,
                retry_attempts=8,
            )
        )
        assert station.run("import", str(tmp_path / "cam")).returncode == 0
        file_id = next(
            r["id"] for r in rows(station.data_dir) if bytes(r["camera_path"]) == big.rel_path
        )
        agent = station.start("sync", "--once", "--json", pipe=True, text=True)
        try:
            deadline = time.monotonic() + 60
            while _upload(station.data_dir, file_id)[1] < chunk:  # the first PATCH answered
                assert agent.poll() is None, "sync finished before the service was killed"
                assert time.monotonic() < deadline, "the upload made no progress"
                time.sleep(0.02)
            url = _upload(station.data_dir, file_id)[0]
            assert url is not None
            if tail_lost:
                # The next PATCH has begun: the store fetched the tail and deleted it.
                while server_key(url) + ".part" in store.object_keys():
                    assert time.monotonic() < deadline, "the tail was never taken up"
                    time.sleep(0.02)
            else:
                time.sleep(0.6)  # into the next PATCH (about 2 s at this rate)
            first.proc.kill()  # SIGKILL: nothing of the upload is handed over or flushed
            first.proc.wait(timeout=10)
            acknowledged = _upload(station.data_dir, file_id)[1]
            assert acknowledged == chunk < big.size
            held = store.unfinished_bytes(server_key(url))
            assert held < acknowledged if tail_lost else held == acknowledged, held
            # Another process on the same port and bucket, nothing of the first one's memory.
            with tus_s3_server(tmp_path / "tus", store, port=port) as second:
                out, err = agent.communicate(timeout=120)
                assert agent.returncode == 0, out + err + second.log()
                row = rows(station.data_dir, "SELECT * FROM files WHERE id=?", (file_id,))[0]
                assert (row["state"], row["confirm_level"]) == ("confirmed", "verified")
                assert row["sink_ref"] == url  # the same upload, resumed, not a new one
                assert "upload.restarted" not in err
                # The station noticed the server's offset differ from the one it was told.
                assert ('"event": "upload.resumed"' in err) is tail_lost
                assert second.stored_sha256(url) == big.sha256
                # One object per file, none begun anew nor left behind (no tail, no orphan).
                uploads = {server_key(str(r["sink_ref"])) for r in rows(station.data_dir)}
                assert server_key(url) in uploads
                kept = {k for k in store.object_keys() if not k.endswith((".info", ".repr-digest"))}
                assert kept == uploads
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(timeout=30)


def server_key(upload_url: str) -> str:
    return upload_url.rstrip("/").rsplit("/", 1)[-1]


def test_the_service_refuses_an_object_store_off_this_machine(tmp_path: Path) -> None:
    """Loopback only: an S3 endpoint of another host stops the service before it contacts it."""
    with moto_s3(tmp_path / "s3") as store:
        store.endpoint = "http://objects.example.invalid:9000"  # RFC 6761: never resolves
        refused = pytest.raises(RuntimeError, match=r"exited with 2.*loopback")
        with refused, tus_s3_server(tmp_path / "tus", store):
            pass
