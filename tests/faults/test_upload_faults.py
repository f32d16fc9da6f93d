"""Server and network faults between the agent and a real tus server (@tus/server behind the
loopback fault proxy of tests/support): 500, 503 + Retry-After, a stall past the read timeout,
a reset mid-body, a truncated answer, 409 with a wrong offset, an offset beyond the length,
404/410 for an expired upload, a Repr-Digest that does not match, and a server that stays down.

In every case: nothing is confirmed that the server does not hold byte for byte, no staged copy
is purged and no recording is wiped before its confirmation, and once the server is healthy the
queue drains completely.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.tus_servers import TusServer, sync_config

MIB = 1 << 20
# Three 2.5 MiB recordings (three 1 MiB PATCHes each) and the camera's small metadata files.
SPEC = CameraSpec(
    serial="FLT01",
    days=1,
    files_per_day=3,
    file_size=5 * MIB // 2,
    size_jitter=0,
    split_every=0,
    important_every=0,
    audio_every=0,
    photo_every=0,
    other_files=0,
)


def _configure(station: Station, proxy: FaultProxy, **extra: object) -> None:
    settings: dict[str, object] = {
        "confirm_level": "verified",
        "chunk_bytes": MIB,
        "max_parallel_uploads": 1,
        "read_timeout_s": 2,
        "connect_timeout_s": 2,
        "retry_attempts": 3,
        "purge_grace_s": 0,
    }
    settings.update(extra)
    station.configure(sync_config(proxy.endpoint, wipe_policy="after_confirm", **settings))


def _recordings(cam: Path) -> dict[bytes, Path]:
    return {p.relative_to(cam).as_posix().encode(): p for p in (cam / "RECORD").rglob("*.MP4")}


def _check_nothing_early(station: Station, server: TusServer, cam: Path) -> None:
    """Confirmed means held by the server byte for byte; the rest is not purged or wiped."""
    on_camera = _recordings(cam)
    for row in rows(station.data_dir):
        staged = station.staging / str(row["staged_path"])
        if row["state"] == "confirmed":
            assert server.plain_sha256(str(row["sink_ref"]), station.identity) == row["sha256"], (
                row["id"]
            )
            assert row["confirm_level"] == "verified"
        else:
            assert row["purged_at"] is None and staged.exists(), row["id"]
            if bytes(row["camera_path"]) in on_camera:
                assert on_camera[bytes(row["camera_path"])].exists(), "wiped before confirmed"


def _drain_when_healthy(station: Station, server: TusServer, proxy: FaultProxy, cam: Path) -> None:
    proxy.clear()
    if any(r["state"] == "held" for r in rows(station.data_dir)):
        assert station.run("retry", "--held").returncode == 0
    proc = station.run("sync", "--once", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["left"] == {}
    final = rows(station.data_dir)
    assert {r["state"] for r in final} == {"confirmed"}
    for row in final:
        assert server.plain_sha256(str(row["sink_ref"]), station.identity) == row["sha256"]
        assert row["purged_at"] and not (station.staging / str(row["staged_path"])).exists()
    again = station.run("import", str(cam), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["wipe"]["state"] == "wiped"
    assert not any(p.exists() for p in _recordings(cam).values())


def _start(station: Station, proxy: FaultProxy, tmp_path: Path, **extra: object) -> Path:
    _configure(station, proxy, **extra)
    write_camera(SPEC, tmp_path / "cam")
    proc = station.run("import", str(tmp_path / "cam"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp_path / "cam"


# Faults after which the same `sync --once` recovers by itself (short retries, HEAD, new upload).
RECOVERABLE = {
    "500": [Fault("status", "PATCH", nth=2, status=500)],
    "503-retry-after": [Fault("status", "PATCH", nth=2, status=503, headers={"Retry-After": "1"})],
    "stall-past-timeout": [Fault("stall", "PATCH", nth=2, stall_s=4)],
    "reset-mid-body": [Fault("reset_mid_body", "PATCH", nth=2)],
    "truncated-answer": [Fault("truncate_response", "PATCH", nth=2)],
    "409-wrong-offset": [Fault("status", "PATCH", nth=2, status=409)],
    "offset-beyond-length": [
        Fault("status", "PATCH", nth=2, status=409),
        Fault("offset_beyond", "HEAD", nth=1),
    ],
    "404-expired": [Fault("status", "PATCH", nth=2, status=404)],
    "410-expired": [Fault("status", "PATCH", nth=2, status=410)],
    "500-on-create": [Fault("status", "POST", nth=1, status=500)],
}


@pytest.mark.parametrize("case", sorted(RECOVERABLE))
def test_recoverable_fault(
    station: Station, server: TusServer, proxy: FaultProxy, tmp_path: Path, case: str
) -> None:
    cam = _start(station, proxy, tmp_path)
    proxy.arm(*RECOVERABLE[case])
    proc = station.run("sync", "--once", "--json")
    assert not proxy.unfired(), f"{case}: fault never fired"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_nothing_early(station, server, cam)
    assert {r["state"] for r in rows(station.data_dir)} == {"confirmed"}
    if case == "offset-beyond-length":  # the abandoned upload is terminated (tus termination)
        assert [e for e in proxy.exchanges if e.method == "DELETE" and e.status == 204]
    if case in ("offset-beyond-length", "404-expired", "410-expired"):
        assert "upload.restarted" in proc.stderr
        posts = [e for e in proxy.exchanges if e.method == "POST"]
        assert len(posts) == len(rows(station.data_dir)) + 1
    if case == "503-retry-after":
        assert '"wait_s": 1' in proc.stderr or '"wait_s": 1.' in proc.stderr
    if case in ("stall-past-timeout", "truncated-answer", "409-wrong-offset"):
        heads = [e for e in proxy.exchanges if e.method == "HEAD"]
        assert heads, "a lost answer or a conflict must be followed by HEAD"
    # One kept-alive connection carries the whole queue, apart from the ones a fault broke.
    assert proxy.connections <= 3, proxy.connections
    _drain_when_healthy(station, server, proxy, cam)


def test_a_mismatching_repr_digest_holds_the_file_with_an_alarm(
    station: Station, server: TusServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    cam = _start(station, proxy, tmp_path)
    proxy.arm(Fault("bad_digest", "PATCH", nth=1))
    proc = station.run("sync", "--once")
    assert not proxy.unfired()
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "upload.digest_mismatched" in proc.stderr
    held = [r for r in rows(station.data_dir) if r["state"] == "held"]
    assert len(held) == 1 and "Repr-Digest" in held[0]["reason"]
    assert held[0]["upload_url"] is None  # a retry starts a fresh upload
    _check_nothing_early(station, server, cam)
    second = station.run("import", str(cam), "--json")
    assert json.loads(second.stdout)["wipe"]["state"] == "not wiped"
    _drain_when_healthy(station, server, proxy, cam)


def test_a_server_that_stays_down_defers_everything_then_drains(
    station: Station, server: TusServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    cam = _start(station, proxy, tmp_path, retry_attempts=1)
    proxy.arm(*[Fault("status", "OPTIONS", nth=1, status=503) for _ in range(40)])
    proc = station.run("sync", "--once", "--json")
    assert proc.returncode == 75, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert not report["confirmed"] and len(report["deferred"]) == len(rows(station.data_dir))
    for row in rows(station.data_dir):
        assert row["state"] == "sealed" and row["next_attempt_at"] and "503" in row["last_error"]
    queue = station.json("queue")["files"]
    assert all(item["next_attempt_at"] for item in queue)
    assert "retry after" in station.run("queue").stdout
    first = queue[0]["file_id"]
    assert station.run("retry", str(first)).returncode == 0
    assert {i["file_id"]: i for i in station.json("queue")["files"]}[first][
        "next_attempt_at"
    ] is None
    assert station.run("retry", "999999").returncode == 64
    _check_nothing_early(station, server, cam)
    _drain_when_healthy(station, server, proxy, cam)
