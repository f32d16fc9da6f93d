"""Two independent, real tus 1.0 servers on loopback, started (and installed if need be) by tests.

`resumable-upload` (PyPI, pinned in pyproject's dev extras) runs with sha256 checksums enabled;
`@tus/server` + `@tus/file-store` (npm, pinned in tests/support/tus-node/package-lock.json) runs
with an upload-finished hook answering RFC 9530 Repr-Digest. Both bind 127.0.0.1 only and are
stopped by their context managers. Written apart from agent/: nothing here imports the agent.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.volumes import sha256_file

NODE_DIR = Path(__file__).resolve().parent / "tus-node"
LOOPBACK = "127.0.0.1"


# The servers' ports: each pytest-xdist worker takes its own block below the kernel's ephemeral
# range (ip_local_port_range, 32768-60999 by default), so a port found free here is not taken
# between this check and the server's bind by another worker's server or by any process's
# outgoing connection (those draw from the ephemeral range). Within the block the ports are
# taken in turn: one just closed may still be held by connections in TIME_WAIT.
PORT_BASE = 20000
PORT_BLOCK = 1000
WORKER_BLOCKS = 11  # 20000-30999 for workers gw0..gw10 (and gw11.. again), 31000-31999 without
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


def free_port() -> int:
    """A loopback port nothing listens on, for a server started next (restartable on it)."""
    start = PORT_BASE + _worker_index() * PORT_BLOCK
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

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/files"

    def stored_path(self, upload_url: str) -> Path:
        return self.store_dir / upload_url.rstrip("/").rsplit("/", 1)[-1]

    def stored_sha256(self, upload_url: str) -> str:
        return sha256_file(self.stored_path(upload_url))

    def stored_metadata(self, upload_url: str) -> dict[str, Any]:
        """Upload-Metadata as the server recorded it (decoded), where the store keeps it."""
        info = self.stored_path(upload_url).with_name(self.stored_path(upload_url).name + ".json")
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
    cmd: list[str], name: str, root: Path, level: str, cwd: Path, port: int | None = None
) -> Iterator[TusServer]:
    root.mkdir(parents=True, exist_ok=True)
    store = root / "uploads"
    store.mkdir(exist_ok=True)
    port = port or free_port()
    log_path = root / "server.log"
    # Appended to: a server restarted on the same root keeps the log of its earlier runs.
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [part.format(port=port, store=store, root=root) for part in cmd],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(proc, port, log_path)
        yield TusServer(name, port, store, proc, log_path, level)
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


def ensure_node_deps() -> None:
    """Install the pinned @tus packages from the lock file if they are not there yet."""
    marker = NODE_DIR / "node_modules" / "@tus" / "server" / "package.json"
    if marker.exists():
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
def tus_node_server(root: Path, port: int | None = None) -> Iterator[TusServer]:
    """@tus/server + @tus/file-store with the Repr-Digest hook: level `verified`.

    Started again with the same root and port, it serves the uploads of its earlier runs:
    the file store keeps each upload's data and `<id>.json` on disk (scripts/soak restarts it).
    """
    ensure_node_deps()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is missing: install Node.js >= 20.19")
    cmd = [node, str(NODE_DIR / "server.js"), "--port", "{port}", "--dir", "{store}"]
    with _running(cmd, "@tus/server", root, "verified", NODE_DIR, port) as server:
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
