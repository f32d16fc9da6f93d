"""A HEAD refused after the server acknowledged the last byte (resumable-upload behind the
loopback fault proxy): the upload is not refused for it.

The server's PATCH answers 204 with Upload-Offset = length; the HEAD of the finished upload,
which could only add a Repr-Digest, is answered 400 (a key the server wants), 404 (the finished
upload moved to its final place) or 500. The file is confirmed at the level the
acknowledgement proves (`checksummed`: every chunk under the server's sha256 checksums),
without a byte sent again; where confirm_level needs more (`verified`), it waits for the
backoff and is asked again, never held for the HEAD.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.sealed_mode import staged_size
from tests.support.tus_servers import TusServer, resumable_upload_server, sync_config

MIB = 1 << 20
SPEC = CameraSpec(
    serial="HEAD01",
    days=1,
    files_per_day=2,
    file_size=3 * MIB // 2,
    size_jitter=0,
    split_every=0,
    important_every=0,
    audio_every=0,
    photo_every=0,
    other_files=0,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusServer]:
    with resumable_upload_server(tmp_path_factory.mktemp("resumable-upload")) as srv:
        yield srv


def _start(station: Station, proxy: FaultProxy, tmp_path: Path, level: str) -> None:
    station.configure(
        sync_config(
            proxy.endpoint,
            confirm_level=level,
            chunk_bytes=MIB,
            max_parallel_uploads=1,
            retry_attempts=2,
            purge_grace_s=0,
        )
    )
    write_camera(SPEC, tmp_path / "cam")
    proc = station.run("import", str(tmp_path / "cam"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("status", [400, 404, 500])
def test_a_head_refused_after_the_last_byte_confirms_at_the_acknowledged_level(
    station: Station, server: TusServer, tmp_path: Path, status: int
) -> None:
    with FaultProxy(server.port) as proxy:
        _start(station, proxy, tmp_path, "checksummed")
        # Every HEAD is refused (more than the queue can ask), every PATCH reaches the server.
        proxy.arm(*[Fault("status", "HEAD", status=status) for _ in range(64)])
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        final = rows(station.data_dir)
        assert {r["state"] for r in final} == {"confirmed"}, [r["reason"] for r in final]
        refused = [e for e in proxy.exchanges if e.method == "HEAD" and e.status == status]
        assert len(refused) >= sum(r["size"] > 0 for r in final)
        for row in final:
            assert row["confirm_level"] == "checksummed"
            assert server.plain_sha256(str(row["sink_ref"]), station.identity) == row["sha256"]
            assert row["upload_offset"] == staged_size(row)
            assert row["purged_at"]  # confirmed: the staged copy went after its grace
        # Nothing started anew or sent twice: one upload per file, each byte once.
        assert sum(e.method == "POST" for e in proxy.exchanges) == len(final)
        assert not [e for e in proxy.exchanges if e.method == "DELETE"]
        assert proxy.patch_bytes == sum(staged_size(r) for r in final)
        assert "upload.head_failed" in proc.stderr and "upload.held" not in proc.stderr


def test_a_head_refused_after_the_last_byte_waits_when_the_level_needs_more(
    station: Station, server: TusServer, tmp_path: Path
) -> None:
    with FaultProxy(server.port) as proxy:
        _start(station, proxy, tmp_path, "verified")
        proxy.arm(*[Fault("status", "HEAD", status=400) for _ in range(64)])
        proc = station.run("sync", "--once", "--json")
        # Deferred (75), not held (3): the HEAD is asked again after the backoff.
        assert proc.returncode == 75, proc.stdout + proc.stderr
        waiting = [r for r in rows(station.data_dir) if r["size"] > 0]
        assert waiting and len(json.loads(proc.stdout)["deferred"]) >= len(waiting)
        for row in waiting:
            assert row["state"] == "sealed", (row["state"], row["reason"])
            assert row["next_attempt_at"] and "HEAD answered 400" in row["last_error"]
            assert "acknowledged every byte" in row["last_error"]
            assert row["upload_offset"] == staged_size(row) and row["purged_at"] is None
            assert (station.staging / str(row["staged_path"])).exists()
        sent = proxy.patch_bytes
        # Asked again once the server answers HEAD: the acknowledged uploads are confirmed at the
        # level the technician accepts, without a byte sent again.
        proxy.clear()
        station.configure(sync_config(proxy.endpoint, confirm_level="checksummed"))
        again = station.run("sync", "--once", "--json")
        assert again.returncode == 0, again.stdout + again.stderr
        assert {r["state"] for r in rows(station.data_dir)} == {"confirmed"}
        assert proxy.patch_bytes == sent
        assert "upload.created" not in again.stderr
