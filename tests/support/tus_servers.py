"""Three independent, real tus 1.0 servers on loopback, started (and installed if need be) by tests.

`resumable-upload` (PyPI, pinned in pyproject's dev extras) runs with sha256 checksums enabled;
`@tus/server` + `@tus/file-store` (npm, pinned in tests/support/tus-node/package-lock.json) runs
with an upload-finished hook answering RFC 9530 Repr-Digest; `tuspyserver` (PyPI, a FastAPI
router, pinned in the dev extras with uvicorn) runs as its documentation deploys it, offering
neither checksums nor Repr-Digest. All bind 127.0.0.1 only and are stopped by their context
managers. Written apart from agent/: nothing here imports the agent.
At the end: @tus/server + @tus/s3-store in front of moto's S3 server (tus_over_object_store).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import boto3

from tests.support.sealed_mode import plain_sha256
from tests.support.volumes import sha256_file

NODE_DIR = Path(__file__).resolve().parent / "tus-node"
LOOPBACK = "127.0.0.1"


# The servers' ports: each pytest-xdist worker takes its own block below the kernel's ephemeral
# range (ip_local_port_range, 32768-60999 by default), so a port found free here is not taken
# between this check and the server's bind by another worker's server or by any process's
# outgoing connection (those draw from the ephemeral range). Within the block the ports are
# taken in turn: one just closed may still be held by connections in TIME_WAIT.
# A soak (tests/soak) runs for hours beside test runs and stops its server for outages: it
# takes the block below all of them, 19000-19999. Sharing 31000 with a test run outside xdist,
# a test's server once bound the soak's port during an outage and took the soak's uploads.
PORT_BASE = 20000
PORT_BLOCK = 1000
WORKER_BLOCKS = 11  # 20000-30999 for workers gw0..gw10 (and gw11.. again), 31000-31999 without
SOAK_BLOCK = -1  # 19000-19999
_next_port = [0]
_port_lock = threading.Lock()


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist
    digits = worker.removeprefix("gw")
    return int(digits) % WORKER_BLOCKS if digits.isdigit() else WORKER_BLOCKS


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def free_port(block: int | None = None) -> int:
    """A loopback port nothing listens on, for a server started next (restartable on it);
    from this worker's block unless `block` names another (SOAK_BLOCK)."""
    start = PORT_BASE + (_worker_index() if block is None else block) * PORT_BLOCK
    with _port_lock:
        for _ in range(PORT_BLOCK):
            port = start + _next_port[0] % PORT_BLOCK
            _next_port[0] += 1
            if _bindable(port):
                return port
    raise RuntimeError(f"no free loopback port in {start}-{start + PORT_BLOCK - 1}")


@dataclass
class TusServer:
    name: str
    port: int
    store_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    # The highest confirmation level this server lets a client reach (upload-protocol.md).
    highest_level: str
    # The creation URL's path, and the suffix of the file beside each upload that keeps its
    # metadata (JSON with a "metadata" object), as each server lays them out.
    path: str = "/files"
    info_suffix: str = ".json"

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    def stored_path(self, upload_url: str) -> Path:
        return self.store_dir / upload_url.rstrip("/").rsplit("/", 1)[-1]

    def stored_sha256(self, upload_url: str) -> str:
        return sha256_file(self.stored_path(upload_url))

    def plain_sha256(self, upload_url: str, identity: Path | None) -> str:
        """The hash of the camera's bytes the upload holds: decrypted with the central key's
        identity where the station sealed its copies to it (tests/support/sealed_mode.py)."""
        return plain_sha256(self.stored_path(upload_url), identity)

    def stored_metadata(self, upload_url: str) -> dict[str, Any]:
        """Upload-Metadata as the server recorded it (decoded), where the store keeps it."""
        stored = self.stored_path(upload_url)
        info = stored.with_name(stored.name + self.info_suffix)
        return dict(json.loads(info.read_text())["metadata"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_listening(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tus server exited with {proc.returncode}: {log_path.read_text()}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"tus server did not listen on {port} within 30 s: {log_path.read_text()}")


@contextmanager
def _running(
    cmd: list[str],
    name: str,
    root: Path,
    level: str,
    cwd: Path,
    port: int | None = None,
    **layout: str,
) -> Iterator[TusServer]:
    root.mkdir(parents=True, exist_ok=True)
    store = root / "uploads"
    store.mkdir(exist_ok=True)
    port = port or free_port()
    log_path = root / "server.log"
    # A server's scratch files (@tus/s3-store keeps an incomplete part in os.tmpdir()) stay
    # under its root: the leak check allows no recording bytes under /tmp.
    scratch = root / "tmp"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch)}
    # Appended to: a server restarted on the same root keeps the log of its earlier runs.
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [part.format(port=port, store=store, root=root) for part in cmd],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(proc, port, log_path)
        yield TusServer(name, port, store, proc, log_path, level, **layout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def resumable_upload_server(root: Path) -> Iterator[TusServer]:
    """resumable-upload's own server, sha256 per-chunk checksums on: level `checksummed`."""
    cmd = [
        sys.executable,
        "-m",
        "resumable_upload",
        "serve",
        "--host",
        LOOPBACK,
        "--port",
        "{port}",
        "--base-path",
        "/files",
        "--upload-dir",
        "{store}",
        "--db-path",
        "{root}/uploads.db",
        "--checksum-algorithms",
        "sha256",
        "--request-timeout",
        "20",
        "--log-level",
        "WARNING",
    ]
    with _running(cmd, "resumable-upload", root, "checksummed", root) as server:
        yield server


def _node_deps_installed() -> bool:
    """Whether node_modules holds every dependency of package.json at its pinned version."""
    pins = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    for name, version in pins.items():
        installed = NODE_DIR / "node_modules" / name / "package.json"
        if not installed.exists() or json.loads(installed.read_text())["version"] != version:
            return False
    return True


def ensure_node_deps() -> None:
    """Install the pinned npm packages from the lock file if they are not all there yet
    (scripts/bootstrap --test runs this too)."""
    if _node_deps_installed():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is missing: install Node.js >= 20.19 (scripts/bootstrap --test)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=600,
    )


@contextmanager
def tus_node_server(
    root: Path, port: int | None = None, *, keep_digests: int = 0, drop_digests: int = 0
) -> Iterator[TusServer]:
    """@tus/server + @tus/file-store with the Repr-Digest hook: level `verified`.

    Started again with the same root and port, it serves the uploads of its earlier runs:
    the file store keeps each upload's data and `<id>.json` on disk (scripts/soak restarts it).
    `drop_digests`: after the first `keep_digests` finished uploads, so many of the next ones
    never get their Repr-Digest, at the finishing PATCH or at a HEAD (a digest lost for good).
    """
    ensure_node_deps()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is missing: install Node.js >= 20.19")
    cmd = [node, str(NODE_DIR / "server.js"), "--port", "{port}", "--dir", "{store}"]
    if drop_digests:
        cmd += ["--keep-digests", str(keep_digests), "--drop-digests", str(drop_digests)]
    with _running(cmd, "@tus/server", root, "verified", NODE_DIR, port) as server:
        yield server


@contextmanager
def tuspyserver_server(root: Path) -> Iterator[TusServer]:
    """tuspyserver's FastAPI router under uvicorn (tests/support/tuspyserver_app.py): no
    checksums, no Repr-Digest, so level `complete`. Its creation URL ends in a slash (OPTIONS
    is routed at `/files/` only); each upload's metadata is kept in `<id>.info`."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve().parent / "tuspyserver_app.py"),
        "--port",
        "{port}",
        "--dir",
        "{store}",
    ]
    with _running(
        cmd, "tuspyserver", root, "complete", root, path="/files/", info_suffix=".info"
    ) as server:
        yield server


def sync_config(endpoint: str, *, wipe_policy: str = "never", **sync: object) -> str:
    """A test station's config uploading to `endpoint` with tus; extra [sync] keys as given."""
    lines = [
        'station_id = "TEST-STATION"',
        "[storage]",
        "reserve_bytes = 0",
        "[ingest]",
        f'wipe_policy = "{wipe_policy}"',
        "[sync]",
        'kind = "tus"',
        f'endpoint = "{endpoint}"',
    ]
    for key, value in sync.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


# ---- a tus service in front of object storage ----------------------------------------------------
# @tus/server + @tus/s3-store (tus-node/server-s3.js) in front of moto's S3 server (PyPI `moto[server]`,
# pinned in pyproject's dev extras): what a fleet's central side can be (README "Reference
# deployment for a fleet"). Both bind 127.0.0.1 only; the node server keeps nothing of an upload
# itself, so one started again on the same port and bucket resumes it.

S3_BUCKET = "evidence"
# moto accepts any key pair; server-s3.js names the same one.
S3_KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@dataclass
class ObjectStore:
    """A running S3-compatible store (moto) with one bucket, read back by the tests with boto3."""

    endpoint: str
    bucket: str
    client: Any

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        for piece in self.client.get_object(Bucket=self.bucket, Key=key)["Body"].iter_chunks(
            1 << 20
        ):
            digest.update(piece)
        return digest.hexdigest()

    def object_keys(self) -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def unfinished_bytes(self, key: str) -> int:
        """Bytes the bucket holds of the unfinished upload `key`: its multipart upload's parts
        and the shorter tail @tus/s3-store keeps as the object `<key>.part`."""
        held = 0
        listed = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        for upload in listed.get("Uploads", []):
            if upload["Key"] == key:
                parts = self.client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]
                )
                held += sum(part["Size"] for part in parts.get("Parts", []))
        if key + ".part" in self.object_keys():
            held += self.client.head_object(Bucket=self.bucket, Key=key + ".part")["ContentLength"]
        return held

    def text(self, key: str) -> str:
        return str(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode())


@contextmanager
def moto_s3(root: Path) -> Iterator[ObjectStore]:
    """moto's standalone server on loopback with the bucket S3_BUCKET created."""
    cmd = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", "{port}"]
    with _running(cmd, "moto", root, "", root) as server:
        endpoint = f"http://{LOOPBACK}:{server.port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_KEYS)
        client.create_bucket(Bucket=S3_BUCKET)
        try:
            yield ObjectStore(endpoint, S3_BUCKET, client)
        finally:
            client.close()


@dataclass(kw_only=True)
class TusS3Server(TusServer):
    """A tus server whose uploads are objects of `store` (the key is the upload's id)."""

    store: ObjectStore

    def stored_path(self, upload_url: str) -> Path:
        raise TypeError("uploads of this server are objects of its store: see stored_key")

    def stored_key(self, upload_url: str) -> str:
        return upload_url.rstrip("/").rsplit("/", 1)[-1]

    def stored_sha256(self, upload_url: str) -> str:
        return self.store.sha256(self.stored_key(upload_url))

    def stored_metadata(self, upload_url: str) -> dict[str, Any]:
        info = json.loads(self.store.text(self.stored_key(upload_url) + ".info"))
        return dict(info["metadata"])


@contextmanager
def tus_s3_server(root: Path, store: ObjectStore, port: int | None = None) -> Iterator[TusS3Server]:
    """@tus/server + @tus/s3-store over `store`, Repr-Digest of the stored object: `verified`."""
    ensure_node_deps()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is missing: install Node.js >= 20.19")
    script = str(NODE_DIR / "server-s3.js")
    cmd = [
        node,
        script,
        "--port",
        "{port}",
        "--s3-endpoint",
        store.endpoint,
        "--bucket",
        store.bucket,
    ]
    with _running(cmd, "@tus/server+s3", root, "verified", NODE_DIR, port) as server:
        yield TusS3Server(**{f.name: getattr(server, f.name) for f in fields(server)}, store=store)


@contextmanager
def tus_over_object_store(root: Path) -> Iterator[TusS3Server]:
    """moto and the S3-backed tus server together (one `with`, as the other servers)."""
    with moto_s3(root / "s3") as store, tus_s3_server(root / "tus", store) as server:
        yield server
