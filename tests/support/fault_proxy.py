"""A loopback HTTP(S) proxy in front of a real tus server that breaks things on purpose.

Forwards HTTP/1.1 on kept-alive connections, streaming bodies (a 1 GiB upload passes in small
pieces), counts the PATCH body bytes that reach the server, and injects one-shot faults: error
statuses, a stall, a reset mid-body, a truncated answer, an offset beyond the length, a wrong
Repr-Digest; and hostile answers in the server's place: raw bytes (a gzip bomb), an endless
body, an answer dripped a byte at a time, or the server's answer with hostile header values.
With an ssl.SSLContext it terminates TLS. It binds 127.0.0.1 only."""

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
    # status | stall | reset_mid_body | truncate_response | offset_beyond | bad_digest
    # | raw (send `raw` as the answer) | endless (headers, then a body that never ends)
    # | drip (`raw` a byte every stall_s, then never more) | headers (set on the server's answer)
    kind: str
    method: str  # the request method it applies to
    # Fires on the nth matching request after it was armed; bad_digest counts only answers
    # that carry a Repr-Digest (the one completing an upload, or a HEAD of a finished one).
    nth: int = 1
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    stall_s: float = 0.0
    raw: bytes = b""
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


def _read_sized(src: socket.socket, buffer: bytearray, length: int) -> bytes:
    body = bytes(buffer[:length])
    del buffer[:length]
    while len(body) < length:
        more = src.recv(length - len(body))
        if not more:
            raise _Closed("backend body cut short")
        body += more
    return body


def _read_response(backend: socket.socket, method: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """The backend's answer to one request: status line, headers, whole body."""
    bbuf = bytearray()
    rfirst, rheaders = _parse(_recv_head(backend, bbuf))
    status = int(rfirst.split(" ")[1])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif (_get(rheaders, "Transfer-Encoding") or "").lower() == "chunked":
        body = _read_chunked(backend, bbuf)
    else:
        body = _read_sized(backend, bbuf, int(_get(rheaders, "Content-Length") or 0))
    return rfirst, rheaders, body


@dataclass(frozen=True)
class _Request:
    """The head of one client request."""

    first: str
    headers: list[tuple[str, str]]

    @property
    def method(self) -> str:
        return self.first.split(" ")[0]

    @property
    def path(self) -> str:
        return self.first.split(" ")[1]

    @property
    def length(self) -> int:
        return int(_get(self.headers, "Content-Length") or 0)

    @property
    def offset(self) -> str:
        return _get(self.headers, "Upload-Offset") or ""


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
        """Serve one request of a kept-alive connection; returns the backend connection to
        reuse (None once the backend closed it). An injected fault that cuts the connection
        raises _Closed."""
        req = _Request(*_parse(_recv_head(client, cbuf)))
        if self._refused(client, cbuf, req):
            return backend
        fault = self._match(req.method)
        if fault is not None and fault.kind in ("status", "stall", "raw", "endless", "drip"):
            self._answer_instead(client, cbuf, req, fault)
            return backend
        if backend is None:
            backend = socket.create_connection((LOOPBACK, self.backend_port), timeout=60)
            self._track(backend, True)
        sent = self._send_request(client, cbuf, backend, req, fault)
        rfirst, rheaders, body = _read_response(backend, req.method)
        if (_get(rheaders, "Connection") or "").lower() == "close":
            self._track(backend, False)
            backend.close()
            backend = None
        rheaders, fault = self._doctor_answer(req.method, rheaders, fault)
        status = int(rfirst.split(" ")[1])
        self._log(req.method, req.path, status, req.offset, sent, fault.kind if fault else "")
        answer = _build(rfirst, rheaders) + body
        if fault is not None and fault.kind == "truncate_response":
            client.sendall(answer[: min(len(answer) - 1, 25)])
            _reset(client)
            raise _Closed("truncated")
        client.sendall(answer)
        return backend

    def _refused(self, client: socket.socket, cbuf: bytearray, req: _Request) -> bool:
        """Note the request's token; answer 401 (True) when the proxy requires another."""
        auth = _get(req.headers, "Authorization")
        if auth is not None:
            with self.lock:
                self.tokens_seen.append(auth)
        if self.require_token is None or auth == f"Bearer {self.require_token}":
            return False
        _pump(client, cbuf, req.length, None)
        self._answer(client, 401, {})
        self._log(req.method, req.path, 401, req.offset, 0, "no token")
        return True

    def _answer_instead(
        self, client: socket.socket, cbuf: bytearray, req: _Request, fault: Fault
    ) -> None:
        """A status fault answers in the server's place; a stall never answers (raises)."""
        _pump(client, cbuf, req.length, None)
        if fault.kind == "status":
            self._answer(client, fault.status, fault.headers)
            self._log(req.method, req.path, fault.status, req.offset, 0, f"status {fault.status}")
            return
        self._log(req.method, req.path, 0, req.offset, 0, fault.kind)
        if fault.kind == "raw":
            client.sendall(fault.raw)
            return
        if fault.kind == "endless":
            client.sendall(fault.raw)
            zeros = bytes(PIECE)
            while not self.stopping.is_set():
                client.sendall(zeros)  # until the client hangs up (OSError) or stop()
        if fault.kind == "drip":
            for byte in fault.raw:
                if self.stopping.wait(fault.stall_s):
                    break
                client.sendall(bytes([byte]))
        self.stopping.wait(fault.stall_s)
        raise _Closed("stalled")

    def _send_request(
        self,
        client: socket.socket,
        cbuf: bytearray,
        backend: socket.socket,
        req: _Request,
        fault: Fault | None,
    ) -> int:
        """Forward the request head and body (PATCH bytes counted); returns the body bytes
        sent. A reset_mid_body fault sends half, then resets both ends (raises)."""
        headers = req.headers
        if self.tls is not None:
            # As a TLS-terminating reverse proxy does, so the server's URLs say https.
            headers = _set(headers, "X-Forwarded-Proto", "https")
        backend.sendall(_build(req.first, headers))
        counter = self._count if req.method == "PATCH" else None
        if fault is None or fault.kind != "reset_mid_body":
            return _pump(client, cbuf, req.length, backend, counter)
        sent = _pump(client, cbuf, req.length // 2, backend, counter)
        self._log(req.method, req.path, 0, req.offset, sent, "reset mid-body")
        time.sleep(0.2)  # let the server take what it got before both ends go
        _reset(backend)
        _reset(client)
        raise _Closed("reset")

    def _doctor_answer(
        self, method: str, rheaders: list[tuple[str, str]], fault: Fault | None
    ) -> tuple[list[tuple[str, str]], Fault | None]:
        """The server's answer headers as the fault has them: an offset beyond the length, or
        a wrong Repr-Digest (armed for answers that carry one). Returns the fault in force."""
        if fault is not None and fault.kind == "headers":
            for name, value in fault.headers.items():
                rheaders = _set(rheaders, name, value)
        if fault is not None and fault.kind == "offset_beyond":
            total = int(_get(rheaders, "Upload-Length") or 0)
            rheaders = _set(rheaders, "Upload-Offset", str(total + 4096))
        if fault is None and _get(rheaders, "Repr-Digest"):
            fault = self._match(method, digest_answer=True)
        if fault is not None and fault.kind == "bad_digest":
            wrong = base64.b64encode(hashlib.sha256(b"not the evidence").digest()).decode()
            rheaders = _set(rheaders, "Repr-Digest", f"sha-256=:{wrong}:")
        return rheaders, fault

    def _count(self, sent: int) -> None:
        with self.lock:
            self.patch_bytes += sent

    def _log(self, method: str, path: str, status: int, offset: str, sent: int, kind: str) -> None:
        with self.lock:
            self.exchanges.append(Exchange(method, path, status, offset, sent, kind))
