"""A loopback HTTP(S) proxy in front of a real tus server that breaks things on purpose.

Forwards HTTP/1.1 on kept-alive connections, streaming bodies (a 1 GiB upload passes in small
pieces), counts the PATCH body bytes that reach the server, and injects one-shot faults: error
statuses, a stall, a reset mid-body, a truncated answer, an offset beyond the length, a wrong
Repr-Digest. With an ssl.SSLContext it terminates TLS. It binds 127.0.0.1 only."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
PIECE = 1 << 20
MAX_HEAD = 64 << 10


@dataclass
class Fault:
    kind: str  # status | stall | reset_mid_body | truncate_response | offset_beyond | bad_digest
    method: str  # the request method it applies to
    # Fires on the nth matching request after it was armed; bad_digest counts only answers
    # that carry a Repr-Digest (the one completing an upload, or a HEAD of a finished one).
    nth: int = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    stall_s: float = 0.0
    seen: int = 0
    fired: bool = False


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    offset: str
    body_bytes: int
    fault: str


class _Closed(Exception):
    pass


def _recv_head(sock: socket.socket, buffer: bytearray) -> bytes:
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD:
            raise _Closed("head too large")
        data = sock.recv(65536)
        if not data:
            raise _Closed("peer closed")
        buffer.extend(data)
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    del buffer[:end]
    return head


def _parse(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def _set(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in headers if k.lower() != name.lower()]
    out.append((name, value))
    return out


def _build(first: str, headers: list[tuple[str, str]]) -> bytes:
    return (first + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode(
        "latin-1"
    )


def _pump(
    src: socket.socket,
    buffer: bytearray,
    length: int,
    sink: socket.socket | None,
    count: Callable[[int], None] | None = None,
) -> int:
    """Move `length` body bytes from src (buffer first) to sink (or drop them), counting as
    they go, so a body cut short by a kill is counted as far as it reached the server."""
    moved = 0
    while moved < length:
        if buffer:
            piece = bytes(buffer[: length - moved])
            del buffer[: len(piece)]
        else:
            piece = src.recv(min(PIECE, length - moved))
            if not piece:
                raise _Closed("body cut short")
        if sink is not None:
            sink.sendall(piece)
            if count is not None:
                count(len(piece))
        moved += len(piece)
    return moved


def _read_chunked(src: socket.socket, buffer: bytearray) -> bytes:
    raw = bytearray()
    while True:
        while b"\r\n" not in buffer:
            data = src.recv(65536)
            if not data:
                raise _Closed("chunked body cut short")
            buffer.extend(data)
        end = buffer.index(b"\r\n") + 2
        size = int(bytes(buffer[: end - 2]).split(b";")[0], 16)
        raw += buffer[:end]
        del buffer[:end]
        need = size + 2
        while len(buffer) < need:
            data = src.recv(65536)
            if not data:
                raise _Closed("chunked body cut short")
            buffer.extend(data)
        raw += buffer[:need]
        del buffer[:need]
        if size == 0:
            return bytes(raw)


def _reset(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN (socket(7)).
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    def __init__(
        self,
        backend_port: int,
        *,
        tls: ssl.SSLContext | None = None,
        require_token: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.backend_port = backend_port
        self.tls = tls
        self.require_token = require_token
        self.timeout_s = timeout_s
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.exchanges: list[Exchange] = []
        self.patch_bytes = 0  # PATCH body bytes that reached the server
        self.tls_failures = 0
        self.tokens_seen: list[str] = []
        self.connections = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)  # accept() wakes up to notice stop()
        self.port = int(self.listener.getsockname()[1])
        self.open: set[socket.socket] = set()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}/files"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        with self.lock:
            for sock in list(self.open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self.thread.join(timeout=5)

    def arm(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    def unfired(self) -> list[Fault]:
        with self.lock:
            return [f for f in self.faults if not f.fired]

    def _match(self, method: str, *, digest_answer: bool = False) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.fired or fault.method != method:
                    continue
                if (fault.kind == "bad_digest") != digest_answer:
                    continue
                fault.seen += 1
                if fault.seen >= fault.nth:
                    fault.fired = True
                    return fault
        return None

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self.lock:
            if add:
                self.open.add(sock)
            else:
                self.open.discard(sock)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.timeout_s)
        client: socket.socket = conn
        backend: socket.socket | None = None
        self._track(conn, True)
        try:
            if self.tls is not None:
                try:
                    client = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    with self.lock:
                        self.tls_failures += 1
                    return
                self._track(client, True)
            cbuf = bytearray()
            while not self.stopping.is_set():
                backend = self._one(client, cbuf, backend)
        except (_Closed, OSError, ssl.SSLError):
            pass
        finally:
            for sock in (client, conn, backend):
                if sock is not None:
                    self._track(sock, False)
                    with contextlib.suppress(OSError):
                        sock.close()

    def _answer(self, client: socket.socket, status: int, headers: dict[str, str]) -> None:
        reason = {
            401: "Unauthorized",
            404: "Not Found",
            409: "Conflict",
            410: "Gone",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }.get(status, "Error")
        body = f"injected {status}\n".encode()
        lines = [("Tus-Resumable", "1.0.0"), ("Content-Length", str(len(body)))]
        lines += list(headers.items())
        client.sendall(_build(f"HTTP/1.1 {status} {reason}", lines) + body)

    def _one(
        self, client: socket.socket, cbuf: bytearray, backend: socket.socket | None
    ) -> socket.socket | None:
        head = _recv_head(client, cbuf)
        first, headers = _parse(head)
        method, path = first.split(" ")[0], first.split(" ")[1]
        length = int(_get(headers, "Content-Length") or 0)
        offset = _get(headers, "Upload-Offset") or ""
        auth = _get(headers, "Authorization")
        if auth is not None:
            with self.lock:
                self.tokens_seen.append(auth)
        if self.require_token is not None and auth != f"Bearer {self.require_token}":
            _pump(client, cbuf, length, None)
            self._answer(client, 401, {})
            self._log(method, path, 401, offset, 0, "no token")
            return backend
        fault = self._match(method)
        kind = fault.kind if fault else ""
        if fault is not None and fault.kind == "status":
            _pump(client, cbuf, length, None)
            self._answer(client, fault.status, fault.headers)
            self._log(method, path, fault.status, offset, 0, f"status {fault.status}")
            return backend
        if fault is not None and fault.kind == "stall":
            _pump(client, cbuf, length, None)
            self._log(method, path, 0, offset, 0, "stall")
            self.stopping.wait(fault.stall_s)
            raise _Closed("stalled")
        if backend is None:
            backend = socket.create_connection((LOOPBACK, self.backend_port), timeout=60)
            self._track(backend, True)
        if self.tls is not None:
            # As a TLS-terminating reverse proxy does, so the server's URLs say https.
            headers = _set(headers, "X-Forwarded-Proto", "https")
        backend.sendall(_build(first, headers))
        counter = self._count if method == "PATCH" else None
        if fault is not None and fault.kind == "reset_mid_body":
            half = length // 2
            sent = _pump(client, cbuf, half, backend, counter)
            self._log(method, path, 0, offset, sent, "reset mid-body")
            time.sleep(0.2)  # let the server take what it got before both ends go
            _reset(backend)
            _reset(client)
            raise _Closed("reset")
        sent = _pump(client, cbuf, length, backend, counter)
        bbuf = bytearray()
        rhead = _recv_head(backend, bbuf)
        rfirst, rheaders = _parse(rhead)
        status = int(rfirst.split(" ")[1])
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif (_get(rheaders, "Transfer-Encoding") or "").lower() == "chunked":
            body = _read_chunked(backend, bbuf)
        else:
            blen = int(_get(rheaders, "Content-Length") or 0)
            body = bytes(bbuf[:blen])
            del bbuf[:blen]
            while len(body) < blen:
                more = backend.recv(blen - len(body))
                if not more:
                    raise _Closed("backend body cut short")
                body += more
        if (_get(rheaders, "Connection") or "").lower() == "close":
            self._track(backend, False)
            backend.close()
            backend = None
        if fault is not None and fault.kind == "offset_beyond":
            total = int(_get(rheaders, "Upload-Length") or 0)
            rheaders = _set(rheaders, "Upload-Offset", str(total + 4096))
        if fault is None and _get(rheaders, "Repr-Digest"):
            fault = self._match(method, digest_answer=True)
            kind = fault.kind if fault else ""
        if fault is not None and fault.kind == "bad_digest":
            wrong = base64.b64encode(hashlib.sha256(b"not the evidence").digest()).decode()
            rheaders = _set(rheaders, "Repr-Digest", f"sha-256=:{wrong}:")
        answer = _build(rfirst, rheaders) + body
        self._log(method, path, status, offset, sent, kind)
        if fault is not None and fault.kind == "truncate_response":
            client.sendall(answer[: min(len(answer) - 1, 25)])
            _reset(client)
            raise _Closed("truncated")
        client.sendall(answer)
        return backend

    def _count(self, sent: int) -> None:
        with self.lock:
            self.patch_bytes += sent

    def _log(self, method: str, path: str, status: int, offset: str, sent: int, kind: str) -> None:
        with self.lock:
            self.exchanges.append(Exchange(method, path, status, offset, sent, kind))
