"""SIGKILL of the agent in the middle of a 1 GiB upload, then a restart: it resumes from the
server's offset (HEAD), re-sends at most what was in flight, and the server's copy hashes equal.

The counting proxy of tests/support sits between the agent and @tus/server and counts every
PATCH body byte that reached the server, so "bytes re-sent" is measured outside the agent.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import requests

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.fault_proxy import FaultProxy
from tests.support.sealed_mode import staged_size
from tests.support.tus_servers import sync_config, tus_node_server

MIB = 1 << 20
GIB = 1 << 30
CHUNK = 16 * MIB
SPEC = CameraSpec(
    serial="KILL01",
    days=1,
    files_per_day=1,
    large_files=1,
    large_size=GIB,
    split_every=0,
    important_every=0,
    audio_every=0,
    photo_every=0,
    other_files=0,
)


def _offset(data_dir: Path, file_id: int) -> int:
    conn = sqlite3.connect(f"file:{data_dir / 'dockagent.db'}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(
            "SELECT upload_offset FROM files WHERE id=? AND upload_url IS NOT NULL", (file_id,)
        ).fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_killed_during_a_1gib_upload_resumes_from_the_servers_offset(
    station: Station, tmp_path: Path
) -> None:
    manifest = write_camera(SPEC, tmp_path / "cam")
    big = max(manifest.entries, key=lambda e: e.size)
    assert big.size == GIB
    with tus_node_server(tmp_path / "server") as server, FaultProxy(server.port) as proxy:
        station.configure(
            sync_config(
                proxy.endpoint, confirm_level="verified", chunk_bytes=CHUNK, max_parallel_uploads=1
            )
        )
        assert station.run("import", str(tmp_path / "cam")).returncode == 0
        file_id = next(
            r["id"] for r in rows(station.data_dir) if bytes(r["camera_path"]) == big.rel_path
        )
        agent = station.start("sync", "--once")
        try:
            deadline = time.monotonic() + 120
            while _offset(station.data_dir, file_id) < GIB // 3:
                assert agent.poll() is None, "sync finished before it could be killed"
                assert time.monotonic() < deadline, "the upload made no progress"
                time.sleep(0.02)
            os.kill(agent.pid, signal.SIGKILL)
        finally:
            agent.wait(timeout=30)
        assert agent.returncode == -signal.SIGKILL
        stored_offset = _offset(station.data_dir, file_id)
        url = rows(station.data_dir, "SELECT upload_url FROM files WHERE id=?", (file_id,))[0][
            "upload_url"
        ]
        head = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
        server_offset = int(head.headers["Upload-Offset"])
        sent_before = proxy.patch_bytes
        exchanges_before = len(proxy.exchanges)
        assert 0 < stored_offset <= server_offset < GIB
        assert (
            rows(station.data_dir, "SELECT state FROM files WHERE id=?", (file_id,))[0]["state"]
            == "uploading"
        )

        progress = {item["file_id"]: item for item in station.json("queue")["files"]}[file_id]
        assert progress["state"] == "uploading"
        assert progress["upload_offset"] == stored_offset and progress["upload_percent"] > 30

        resumed = station.run("sync", "--once", "--json")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert json.loads(resumed.stdout)["released_stale"] == 1
        patches_after = [e for e in proxy.exchanges[exchanges_before:] if e.method == "PATCH"]
        assert patches_after and int(patches_after[0].offset) == server_offset
        # The bytes of the staged copy: the ciphertext's, a little more, where it is sealed.
        whole = staged_size(rows(station.data_dir, "SELECT * FROM files WHERE id=?", (file_id,))[0])
        resent = proxy.patch_bytes - whole
        print(
            f"\nkilled at server offset {server_offset} (row said {stored_offset}); "
            f"PATCH bytes before kill {sent_before}, total {proxy.patch_bytes}, "
            f"re-sent {resent} bytes ({resent / MIB:.2f} MiB; chunk is {CHUNK // MIB} MiB)"
        )
        assert 0 <= resent <= CHUNK
        row = rows(station.data_dir, "SELECT * FROM files WHERE id=?", (file_id,))[0]
        assert row["state"] == "confirmed" and row["confirm_level"] == "verified"
        assert row["sink_ref"] == url  # the same upload, resumed, not a new one
        assert server.plain_sha256(url, station.identity) == big.sha256
