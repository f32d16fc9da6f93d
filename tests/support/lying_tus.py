"""A tus 1.0 server on loopback that stores nothing and says it stored everything.

It advertises sha256 checksums, takes each PATCH body and throws it away, answers every PATCH
and HEAD with the full offset, and echoes as Repr-Digest the sha256 the client put in the upload's metadata (the one
a server can copy without holding a byte). What a client confirms against it, it confirms
without proof. It binds 127.0.0.1 only; nothing here imports the agent.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"


class _Uploads:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.length: dict[str, int] = {}
        self.sha256_b64: dict[str, str] = {}
        self.patch_bytes = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    uploads: _Uploads

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Tus-Resumable", "1.0.0")
        self.send_header("Content-Length", "0")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _drain(self) -> int:
        left = int(self.headers.get("Content-Length") or 0)
        total = left
        while left:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        return total

    def _status(self, upload: str) -> dict[str, str]:
        with self.uploads.lock:
            length = self.uploads.length[upload]
            digest = self.uploads.sha256_b64[upload]
        return {
            "Upload-Offset": str(length),
            "Upload-Length": str(length),
            "Repr-Digest": f"sha-256=:{digest}:",
        }

    def do_OPTIONS(self) -> None:
        # It even says it checks every chunk's sha256 (tus "checksum"), and never does.
        self._answer(
            204,
            {
                "Tus-Version": "1.0.0",
                "Tus-Extension": "creation,termination,checksum",
                "Tus-Checksum-Algorithm": "sha256",
            },
        )

    def do_POST(self) -> None:
        self._drain()
        meta = {}
        for pair in (self.headers.get("Upload-Metadata") or "").split(","):
            key, _, value = pair.strip().partition(" ")
            meta[key] = base64.b64decode(value).decode() if value else ""
        upload = f"u{len(self.uploads.length) + 1}"
        with self.uploads.lock:
            self.uploads.length[upload] = int(self.headers["Upload-Length"])
            self.uploads.sha256_b64[upload] = base64.b64encode(
                bytes.fromhex(meta["sha256"])
            ).decode()
        self._answer(201, {"Location": f"/files/{upload}"})

    def do_PATCH(self) -> None:
        taken = self._drain()
        with self.uploads.lock:
            self.uploads.patch_bytes += taken
        self._answer(204, self._status(self.path.rsplit("/", 1)[-1]))

    def do_HEAD(self) -> None:
        self._answer(200, self._status(self.path.rsplit("/", 1)[-1]))

    def do_DELETE(self) -> None:
        self._answer(204, {})


@contextmanager
def lying_tus_server() -> Iterator[tuple[str, _Uploads]]:
    """(endpoint, what it was sent) of a running lying server."""
    uploads = _Uploads()
    handler = type("Handler", (_Handler,), {"uploads": uploads})
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}/files", uploads
    finally:
        server.shutdown()
        server.server_close()
