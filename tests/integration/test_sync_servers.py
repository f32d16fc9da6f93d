"""`dockagent sync --once` against three independent, real tus servers on loopback.

resumable-upload (PyPI; sha256 per-chunk checksums), @tus/server (npm; Repr-Digest from its
upload-finished hook) and tuspyserver (PyPI; neither, and a HEAD that refuses an upload without
the `filename` and `filetype` metadata of the reference clients): every file must arrive
byte-identical, with the metadata and the signed custody record of upload-protocol.md, confirmed
at the highest level the server supports, also when parallel workers send many files of one
content (one upload each) at the same time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from agent.core.config import SyncConfig
from agent.sync.jobs import UploadJob
from agent.sync.tus_sink import TusSink
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.fault_proxy import FaultProxy
from tests.support.tus_servers import (
    TusServer,
    resumable_upload_server,
    sync_config,
    tus_node_server,
    tuspyserver_server,
)

MIB = 1 << 20
SPEC = CameraSpec(
    serial="SYNC01",
    days=1,
    files_per_day=4,
    file_size=256 * 1024,
    large_files=1,
    large_size=9 * MIB,
    important_every=2,
)
SERVERS: dict[str, Callable[[Path], AbstractContextManager[TusServer]]] = {
    "resumable-upload": resumable_upload_server,
    "tus-node": tus_node_server,
}
# The first test runs against every server; the costlier ones against the first two.
EVERY_SERVER = {**SERVERS, "tuspyserver": tuspyserver_server}
# `filetype` (the reference tus clients' key) by the camera file's extension.
FILETYPES = {
    "MP4": "video/mp4",
    "WAV": "audio/wav",
    "JPG": "image/jpeg",
    "TXT": "text/plain",
    "LOG": "text/plain",
    "CSV": "text/csv",
}


def _import(station: Station, tmp_path: Path) -> dict[bytes, str]:
    manifest = write_camera(SPEC, tmp_path / "cam")
    proc = station.run("import", str(tmp_path / "cam"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {e.rel_path: e.sha256 for e in manifest.entries}


@pytest.mark.parametrize("name", sorted(EVERY_SERVER))
def test_every_file_arrives_identical_and_confirmed_at_the_highest_level(
    station: Station, tmp_path: Path, name: str
) -> None:
    with EVERY_SERVER[name](tmp_path / "server") as server:
        station.configure(
            sync_config(server.endpoint, confirm_level=server.highest_level, chunk_bytes=4 * MIB)
        )
        expected = _import(station, tmp_path)
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr + server.log()
        report = json.loads(proc.stdout)
        held = rows(station.data_dir)
        assert len(report["confirmed"]) == len(held) == len(expected)
        for row in held:
            assert row["state"] == "confirmed", (row["state"], row["reason"])
            assert row["confirm_level"] == server.highest_level
            assert expected[bytes(row["camera_path"])] == row["sha256"]
            assert server.stored_sha256(row["sink_ref"]) == row["sha256"]
            assert row["upload_offset"] == row["size"]
        big = max(held, key=lambda r: r["size"])
        assert big["size"] > 2 * 4 * MIB  # went in several PATCHes
        if name in ("tus-node", "tuspyserver"):
            _check_metadata(station, server, held)


def _check_metadata(station: Station, server: TusServer, held: list[dict[str, object]]) -> None:
    key = load_pem_public_key(station.json("key", "show")["public_key_pem"].encode())
    assert isinstance(key, Ed25519PublicKey)
    for row in held:
        meta = server.stored_metadata(str(row["sink_ref"]))
        assert meta["sha256"] == row["sha256"]
        assert meta["station_id"] == "TEST-STATION"
        assert meta["device_serial"] == "SYNC01"
        assert meta["officer_id"] == SPEC.officer_id
        assert meta["kind"] == row["kind"]
        assert meta["important"] == ("1" if row["important"] else "0")
        body = json.loads(base64.b64decode(meta["custody_record"]))["body"]
        drift = body.get("clock_drift_s")
        assert meta["camera_clock_offset_s"] == ("0" if drift is None else str(drift))
        assert meta["retention_class"] == (body.get("retention_class") or "standard")
        name = str(row["camera_name"]).rsplit("/", 1)[-1]
        assert meta["filename"] == name
        assert meta["filetype"] == FILETYPES.get(
            name.rsplit(".", 1)[-1], "application/octet-stream"
        )
        assert meta["ingested_at"].endswith("+00:00")
        if row["recorded_start"]:  # RFC 3339 with an offset
            assert datetime.fromisoformat(meta["recorded_start"]).utcoffset() is not None
        envelope = json.loads(base64.b64decode(meta["custody_record"]))
        body = json.dumps(
            envelope["body"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        key.verify(base64.b64decode(envelope["signature"]), body.encode())
        assert envelope["body"]["sha256"] == row["sha256"]
        assert envelope["body"]["file_id"] == row["id"]


def test_a_level_the_server_cannot_reach_holds_the_file_and_frees_nothing(
    station: Station, tmp_path: Path
) -> None:
    with resumable_upload_server(tmp_path / "server") as server:
        station.configure(sync_config(server.endpoint, confirm_level="verified"))
        _import(station, tmp_path)
        proc = station.run("sync", "--once")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        held = rows(station.data_dir)
        assert {r["state"] for r in held} == {"held"}
        assert all("only checksummed" in r["reason"] for r in held), held[0]["reason"]
        # It never gave this station a digest: held at each file's first upload, not sent again.
        assert all("1 upload of the file complete and unprovable" in r["reason"] for r in held)
        assert "upload.reuploaded" not in proc.stderr
        assert all((station.staging / str(r["staged_path"])).exists() for r in held)
        assert "upload.held" in proc.stderr
        # The technician accepts checksummed: the finished uploads are confirmed without
        # sending their bytes again (HEAD shows them complete).
        station.configure(sync_config(server.endpoint, confirm_level="checksummed"))
        assert station.run("retry", "--held").returncode == 0
        again = station.run("sync", "--once", "--json")
        assert again.returncode == 0, again.stdout + again.stderr
        assert {r["state"] for r in rows(station.data_dir)} == {"confirmed"}
        assert "upload.created" not in again.stderr


def test_a_staged_copy_changed_since_sealing_is_never_confirmed(
    station: Station, tmp_path: Path
) -> None:
    with resumable_upload_server(tmp_path / "server") as server:
        station.configure(
            sync_config(server.endpoint, confirm_level="checksummed", purge_grace_s=0)
        )
        _import(station, tmp_path)
        victim = rows(station.data_dir, "SELECT * FROM files ORDER BY size DESC LIMIT 1")[0]
        staged = station.staging / str(victim["staged_path"])
        data = bytearray(staged.read_bytes())
        data[len(data) // 2] ^= 0xFF
        staged.write_bytes(bytes(data))
        proc = station.run("sync", "--once")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        after = {r["id"]: r for r in rows(station.data_dir)}
        assert after[victim["id"]]["state"] == "held"
        assert "sealed as" in after[victim["id"]]["reason"]
        assert staged.exists() and after[victim["id"]]["purged_at"] is None
        assert sum(r["state"] == "confirmed" for r in after.values()) == len(after) - 1


def test_an_expired_upload_is_not_resumed_but_started_anew(tmp_path: Path) -> None:
    """tus "expiration": past its Upload-Expires an upload URL is dropped without asking."""
    payload = tmp_path / "evidence.bin"
    payload.write_bytes(os.urandom(3 * MIB + 5))
    sha = hashlib.sha256(payload.read_bytes()).hexdigest()
    with tus_node_server(tmp_path / "server") as server, FaultProxy(server.port) as proxy:
        sync = SyncConfig(kind="tus", endpoint=proxy.endpoint, chunk_bytes=MIB)
        job = UploadJob(
            file_id=1,
            sha256=sha,
            size=payload.stat().st_size,
            path=payload,
            ext="bin",
            ingested_at="2026-01-01T00:00:00+00:00",
            metadata={"filename": "evidence.bin", "sha256": sha},
            custody={},
            resume_url=f"{proxy.endpoint}/expired-upload",
            resume_offset=MIB,
            resume_expires_at="2026-01-01T00:00:00.000+00:00",
        )
        progress = _Progress()
        sink = TusSink(sync)
        try:
            confirmation = sink.send(job, progress)
        finally:
            sink.close()
        assert confirmation.level == "verified"
        assert progress.forgotten == 1 and progress.urls == [confirmation.ref]
        assert next(e.method for e in proxy.exchanges if e.method != "OPTIONS") == "POST"
        assert not [e for e in proxy.exchanges if "expired-upload" in e.path]
        assert server.stored_sha256(confirmation.ref) == sha


class _Progress:
    def __init__(self) -> None:
        self.urls: list[str] = []
        self.offsets: list[int] = []
        self.forgotten = 0

    def url(self, url: str, expires_at: str | None) -> None:
        self.urls.append(url)

    def offset(self, offset: int, checksummed: bool) -> None:
        self.offsets.append(offset)

    def forget(self) -> None:
        self.forgotten += 1


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_files_of_identical_content_uploaded_in_parallel_all_arrive_and_are_confirmed(
    station: Station, tmp_path: Path, name: str
) -> None:
    # Every recording marked important has an empty .IMP marker, and here every video holds the
    # same bytes too: dozens of files with one hash each, which four workers upload at once,
    # each its own tus upload of the same length and metadata sha256.
    spec = CameraSpec(serial="SAME02", days=2, files_per_day=30, file_size=4096, important_every=1)
    manifest = write_camera(spec, tmp_path / "cam")
    same = os.urandom(4096)
    expected: dict[bytes, str] = {}
    for entry in manifest.entries:
        if entry.rel_path.endswith(b".MP4"):
            (tmp_path / "cam" / os.fsdecode(entry.rel_path)).write_bytes(same)
            expected[entry.rel_path] = hashlib.sha256(same).hexdigest()
        else:
            expected[entry.rel_path] = entry.sha256
    shared = {sha: n for sha, n in Counter(expected.values()).items() if n > 1}
    assert shared.get(hashlib.sha256(b"").hexdigest(), 0) >= 60
    assert shared.get(hashlib.sha256(same).hexdigest(), 0) >= 20
    with SERVERS[name](tmp_path / "server") as server:
        station.configure(
            sync_config(server.endpoint, confirm_level=server.highest_level, max_parallel_uploads=4)
        )
        proc = station.run("import", str(tmp_path / "cam"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr + server.log()
        held = rows(station.data_dir)
        assert len(json.loads(proc.stdout)["confirmed"]) == len(held) == len(expected)
        assert {r["state"] for r in held} == {"confirmed"}, [
            (r["camera_name"], r["state"], r["reason"]) for r in held if r["state"] != "confirmed"
        ]
        assert _in_flight_together(held, shared), "no two files of one hash were sent at once"
        # One upload per file on the server, none shared and none left over: the data files
        # of the store (each upload's sidecars have a suffix) are exactly the rows' uploads.
        stored = {server.stored_path(str(r["sink_ref"])).name for r in held}
        assert len(stored) == len(held)
        assert {p.name for p in server.store_dir.iterdir() if "." not in p.name} == stored
        for row in held:
            assert row["confirm_level"] == server.highest_level
            assert expected[bytes(row["camera_path"])] == row["sha256"]
            assert server.stored_sha256(str(row["sink_ref"])) == row["sha256"]
        verify = station.run("verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr


def _in_flight_together(held: list[dict[str, Any]], shared: dict[str, int]) -> bool:
    """Whether two files of one hash were between claim and confirmation at the same time."""
    for sha in shared:
        spans = sorted(
            (str(r["upload_started_at"]), str(r["confirmed_at"]))
            for r in held
            if r["sha256"] == sha
        )
        if any(later[0] < earlier[1] for earlier, later in pairwise(spans)):
            return True
    return False


def test_the_node_server_gives_the_digest_of_an_upload_whose_hook_never_ran(tmp_path: Path) -> None:
    """The reference server stopped between storing an upload's last bytes and its
    upload-finished hook (its digest was never kept): started again, its HEAD still answers the
    Repr-Digest of what it holds, so the station can confirm `verified` instead of holding the
    file for a proof the server could give (seen in the soak, which restarts the server)."""
    body = os.urandom(300_000)
    tus = {"Tus-Resumable": "1.0.0"}
    with tus_node_server(tmp_path / "tus") as server:
        made = requests.post(
            server.endpoint, headers={**tus, "Upload-Length": str(len(body))}, timeout=30
        )
        assert made.status_code == 201, made.text
        url = requests.compat.urljoin(server.endpoint, made.headers["Location"])
        sent = requests.patch(
            url,
            data=body,
            headers={
                **tus,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
            timeout=30,
        )
        assert sent.status_code == 204, sent.text
        kept = server.stored_path(url).with_name(server.stored_path(url).name + ".repr-digest")
        assert kept.exists()
        kept.unlink()  # as if the server had stopped before its hook
        head = requests.head(url, headers=tus, timeout=30)
    sha512 = base64.b64encode(hashlib.sha512(body).digest()).decode()
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == str(len(body))
    assert f"sha-512=:{sha512}:" in head.headers["Repr-Digest"]
