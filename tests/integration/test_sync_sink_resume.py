"""Several tus sinks ([[sync.sinks]]) each resume their own upload after the agent is killed.

Two real @tus/server instances on loopback, each behind the counting proxy of tests/support
(which counts the PATCH body bytes that reached its server and logs each request's offset).
The agent is killed (SIGKILL) in the middle of its upload to the first sink, then, with that
server stopped, in the middle of its upload to the second: each server now holds part of the
file at its own offset. The next run resumes each upload where its own server is (HEAD), sends
no byte twice and creates no second upload; both end confirmed with the sealed hash.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.fault_proxy import FaultProxy
from tests.support.tus_servers import TusServer, free_port, tus_node_server

MIB = 1 << 20
SIZE = 12 * MIB
SPEC = CameraSpec(
    serial="RESUME01",
    days=1,
    files_per_day=1,
    large_files=1,
    large_size=SIZE,
    split_every=0,
    important_every=0,
    audio_every=0,
    photo_every=0,
    other_files=0,
)


def _config(a: str, b: str) -> str:
    return (
        'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n'
        '[sync]\nheld_when = "all"\nchunk_bytes = 1048576\nmax_parallel_uploads = 1\n'
        "bandwidth_bytes_per_s = 3145728\nretry_attempts = 1\npurge_grace_s = 3600\n"
        f'[[sync.sinks]]\nname = "a"\nkind = "tus"\nendpoint = "{a}"\nconfirm_level = "verified"\n'
        f'[[sync.sinks]]\nname = "b"\nkind = "tus"\nendpoint = "{b}"\nconfirm_level = "verified"\n'
    )


def _kill_when(station: Station, proxy: FaultProxy, at_least: int) -> None:
    """`sync --once` started and killed once `proxy`'s server has taken `at_least` bytes."""
    agent = station.start("sync", "--once")
    try:
        deadline = time.monotonic() + 120
        while proxy.patch_bytes < at_least:
            assert agent.poll() is None, "sync ended before it could be killed"
            assert time.monotonic() < deadline, "the upload made no progress"
            time.sleep(0.01)
        os.kill(agent.pid, signal.SIGKILL)
    finally:
        agent.wait(timeout=30)
    assert agent.returncode == -signal.SIGKILL


def _upload_path(proxy: FaultProxy) -> str:
    """The one upload of the large recording on this server (the small files beside it go
    in one short PATCH each)."""
    paths = {e.path for e in proxy.exchanges if e.method == "PATCH" and e.body_bytes > 4096}
    assert len(paths) == 1, paths
    return paths.pop()


def _head_offset(server: TusServer, path: str) -> int:
    url = f"http://127.0.0.1:{server.port}{path}"
    answer = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
    return int(answer.headers["Upload-Offset"])


def test_each_tus_sink_resumes_its_own_upload_after_a_kill(
    station: Station, tmp_path: Path
) -> None:
    write_camera(SPEC, tmp_path / "cam")
    port_a, port_b = free_port(), free_port()
    with ExitStack() as stack:
        server_a = stack.enter_context(tus_node_server(tmp_path / "tus-a", port=port_a))
        server_b = stack.enter_context(tus_node_server(tmp_path / "tus-b", port=port_b))
        proxy_a = stack.enter_context(FaultProxy(port_a))
        proxy_b = stack.enter_context(FaultProxy(port_b))
        station.configure(_config(proxy_a.endpoint, proxy_b.endpoint))
        assert station.run("import", str(tmp_path / "cam")).returncode == 0
        (row,) = [r for r in rows(station.data_dir) if r["size"] == SIZE]

        # Killed while sink a's upload is under way.
        _kill_when(station, proxy_a, 3 * MIB)
        # Sink a's server away: the next run moves on to sink b, and is killed there.
        server_a.proc.terminate()
        server_a.proc.wait(timeout=10)
        _kill_when(station, proxy_b, 6 * MIB)
        server_a = stack.enter_context(tus_node_server(tmp_path / "tus-a", port=port_a))

        path_a, path_b = _upload_path(proxy_a), _upload_path(proxy_b)
        held_a, held_b = _head_offset(server_a, path_a), _head_offset(server_b, path_b)
        assert 0 < held_a < SIZE and 0 < held_b < SIZE
        before_a, before_b = len(proxy_a.exchanges), len(proxy_b.exchanges)

        done = station.run("sync", "--once", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        for proxy, before, path, held in (
            (proxy_a, before_a, path_a, held_a),
            (proxy_b, before_b, path_b, held_b),
        ):
            # The same upload, resumed from the server's own offset: no second upload of the
            # recording, its first PATCH at that offset, exactly the missing bytes sent.
            assert _upload_path(proxy) == path
            patches = [
                e for e in proxy.exchanges[before:] if e.path == path and e.method == "PATCH"
            ]
            assert patches and int(patches[0].offset) == held
            assert sum(e.body_bytes for e in patches) == SIZE - held
        for server, path in ((server_a, path_a), (server_b, path_b)):
            assert _head_offset(server, path) == SIZE
            assert server.stored_sha256(f"http://127.0.0.1:{server.port}{path}") == row["sha256"]
    (final,) = rows(station.data_dir, "SELECT * FROM files WHERE id=?", (row["id"],))
    assert final["state"] == "confirmed" and final["confirm_level"] == "verified"
    sinks = rows(
        station.data_dir,
        "SELECT sink, state, level FROM file_sinks WHERE file_id=? ORDER BY sink",
        (row["id"],),
    )
    assert [(s["sink"], s["state"], s["level"]) for s in sinks] == [
        ("a", "confirmed", "verified"),
        ("b", "confirmed", "verified"),
    ]
