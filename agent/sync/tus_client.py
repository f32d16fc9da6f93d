"""The tus 1.0.0 client (specs/upload-protocol.md) on one kept-alive requests.Session.

The only module that imports requests: every HTTP answer and transport failure is turned into an
agent error here, once, and its class says whether to retry (agent.core.errors.classify). PATCH
bodies are streamed from the file in small pieces, so memory stays far below one chunk.

Every answer is hostile input: it is asked for and read as `identity` (never decompressed), its
body is read up to ANSWER_CAP bytes, its headers are parsed by agent.sync.tus_headers, every
request has a total deadline (a drip of one byte per read timeout cannot hold it), and the
bearer token goes to the configured endpoint's origin only, whatever URL a row or a receipt
holds. It never turns TLS verification off and decides nothing about rows, confirmation levels
or backoff.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.structures
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from agent import __version__
from agent.core import wallclock
from agent.core.errors import (
    TsaFailed,
    UploadConflict,
    UploadGarbled,
    UploadGone,
    UploadLost,
    UploadRefused,
    UploadRetryable,
    UploadTlsFailed,
)
from agent.core.model import display_name
from agent.sync import tus_headers
from agent.sync.throttle import Throttle
from agent.sync.tus_headers import BadHeader

TUS_VERSION = "1.0.0"
# RFC 9530 section 4: sha-512 is asked for first. The client never sends a file's sha-512 (its
# sha-256 is in the metadata and the custody record), so a sha-512 the server answers with is
# one it computed from the bytes it holds: the only digest that proves `verified`.
WANT_REPR_DIGEST = "sha-512=10, sha-256=5"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
# Pieces read from disk per send: small enough to keep memory flat, big enough to keep
# system calls few. The chunk (one PATCH) is a multiple of these.
READ_PIECE = 1 << 20
# tus 1.0.0 "checksum" extension: 460 Checksum Mismatch means the body was damaged on the way.
STATUS_CHECKSUM_MISMATCH = 460
# RFC 9110 section 15: answers that say "later", not "never".
_RETRY_STATUSES = frozenset({408, 423, 425, 429, STATUS_CHECKSUM_MISMATCH})
_GONE_STATUSES = frozenset({404, 410})
# A tus answer is headers and at most a short message: a body beyond this is not one.
ANSWER_CAP = 64 << 10
ANSWER_PIECE = 8 << 10
# The slowest a PATCH body may go before its request's deadline ends it (bytes/s); a throttle
# slower than this lowers it (TusClient's min_rate).
MIN_RATE = 32 << 10
# After its deadline a request's socket is shut down again this often (seconds), in case it was
# still connecting when the deadline passed.
_KILL_EVERY_S = 0.2


@dataclass(frozen=True)
class ServerCaps:
    """What OPTIONS advertised (tus 1.0.0 section "OPTIONS")."""

    extensions: frozenset[str]
    checksum_algorithms: frozenset[str]
    max_size: int | None

    @property
    def sha256_checksums(self) -> bool:
        return "sha256" in self.checksum_algorithms


@dataclass(frozen=True)
class UploadStatus:
    """The server's view of one upload after HEAD or PATCH."""

    offset: int
    length: int | None
    repr_digest: dict[str, bytes]
    expires_at: str | None


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (tus 1.0.0 "creation")."""
    pairs = []
    for key, value in metadata.items():
        if not key or any(ch in key for ch in " ,") or not key.isascii():
            raise ValueError(f"invalid tus metadata key {key!r}")
        encoded = base64.b64encode(value.encode("utf-8", "surrogateescape")).decode("ascii")
        pairs.append(f"{key} {encoded}" if value else key)
    return ",".join(pairs)


def parse_repr_digest(value: str) -> dict[str, bytes]:
    """RFC 9530 Repr-Digest (agent.sync.tus_headers.repr_digest)."""
    return tus_headers.repr_digest(value)


def _retry_after(value: str | None, server_date: str | None = None) -> float | None:
    """Retry-After, an HTTP-date read against the answer's own Date (tus_headers)."""
    return tus_headers.retry_after(value, server_date, wallclock.now())


class _DeadlinePassed(Exception):
    pass


class Deadline:
    """A request's total time: when it passes, the socket is shut down under the request.

    Socket timeouts count per read (RFC-less but true of every stack), so a server dripping a
    byte per read timeout would hold a request forever. shutdown(2) from another thread wakes
    a blocked recv/send at once, which close(2) does not.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._conn: urllib3.connection.HTTPConnection | None = None
        self._timer = threading.Thread(target=self._run, daemon=True, name="tus-deadline")

    def __enter__(self) -> Deadline:
        _active.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        _active.deadline = None
        with self._lock:
            self._done.set()
            self._conn = None

    def watch(self, conn: urllib3.connection.HTTPConnection) -> None:
        with self._lock:
            self._conn = conn

    def check(self) -> None:
        """Called between pieces of a body: stop even when the socket never blocks."""
        if self.expired:
            raise _DeadlinePassed

    def _run(self) -> None:
        if self._done.wait(self.seconds):
            return
        self.expired = True
        while True:
            with self._lock:
                if self._done.is_set():
                    return
                sock = self._conn.sock if self._conn is not None else None
                if sock is not None:
                    # The plain socket's shutdown, also under TLS: it leaves the SSL object
                    # alone for the thread blocked in it. Not connected (yet, or any more): fine.
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
            if self._done.wait(_KILL_EVERY_S):
                return


class _Active(threading.local):
    deadline: Deadline | None = None


_active = _Active()


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    """Tells the calling thread's Deadline which connection its request runs on."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        if _active.deadline is not None:
            _active.deadline.watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        if _active.deadline is not None:
            _active.deadline.watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter on connection pools whose connections report to the Deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


@dataclass(frozen=True)
class Answer:
    """A server's answer, read whole within the deadline and ANSWER_CAP."""

    status: int
    reason: str
    headers: requests.structures.CaseInsensitiveDict[str]
    body: bytes


class Digest(Protocol):
    """What is updated with the bytes of a PATCH body as they are read (a hashlib object)."""

    def update(self, data: bytes, /) -> None: ...


class ChunkBody:
    """A PATCH body: bytes [offset, offset+length) of fd, read 1 MiB at a time as it is sent.

    requests sends an iterable with __len__ as a Content-Length body without buffering it.
    It deliberately has no read(): http.client would pull file-likes in 16 KiB pieces (many
    more system calls), and no fileno()/tell(), so requests cannot measure the whole file.
    """

    def __init__(
        self,
        fd: int,
        offset: int,
        length: int,
        throttle: Throttle | None = None,
        digest: Digest | None = None,
    ) -> None:
        self.fd = fd
        self.offset = offset
        self.length = length
        self.throttle = throttle
        self.digest = digest

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        while sent < self.length:
            want = min(READ_PIECE, self.length - sent)
            if _active.deadline is not None:
                _active.deadline.check()
            if self.throttle is not None:
                self.throttle(want)
            data = os.pread(self.fd, want, self.offset + sent)
            if not data:
                raise OSError(f"staged file ended at {self.offset + sent}, expected more")
            if self.digest is not None:
                self.digest.update(data)
            sent += len(data)
            yield data


class TusClient:
    """One endpoint, one session (kept alive across chunks and files), one worker thread."""

    def __init__(
        self,
        endpoint: str,
        *,
        ca_bundle: str = "",
        client_cert: str = "",
        client_key: str = "",
        bearer_token: str = "",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        throttle: Throttle | None = None,
        min_rate: float = MIN_RATE,
    ) -> None:
        self.endpoint = endpoint
        self.server = urlsplit(endpoint).netloc
        self.timeout = (connect_timeout, read_timeout)
        self.throttle = throttle
        self.min_rate = max(1.0, min_rate)
        self.session = requests.Session()
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, _DeadlineAdapter(max_retries=0))
        # Never an unverified connection: the system trust store, or the configured bundle.
        self.session.verify = ca_bundle or True
        if client_cert:
            self.session.cert = (client_cert, client_key)
        # No proxies or credentials from the environment: evidence goes where configured only.
        self.session.trust_env = False
        self.session.headers.update(
            {
                "Tus-Resumable": TUS_VERSION,
                "User-Agent": f"dockagent/{__version__}",
                # Nothing compressed: a small gzip answer can inflate to gigabytes (RFC 9110
                # section 12.5.3: identity only).
                "Accept-Encoding": "identity",
            }
        )
        if bearer_token:
            self.session.headers["Authorization"] = f"Bearer {bearer_token}"
        self._caps: ServerCaps | None = None

    def close(self) -> None:
        self.session.close()

    # ---- requests --------------------------------------------------------------------------

    def check_origin(self, url: str) -> None:
        """The bearer token and the evidence go to the configured endpoint's origin only
        (scheme, host, port: RFC 6454), whether the URL came from a Location answer, a row or
        a receipt. Anything else is refused before a connection is made."""
        try:
            mine = tus_headers.origin(self.endpoint)
            theirs = tus_headers.origin(url)
        except BadHeader as exc:
            raise UploadRefused(server=self.server, problem=f"upload URL refused: {exc}") from None
        if mine != theirs:
            raise UploadRefused(
                server=self.server,
                problem=f"upload URL points to another origin ({display_name(theirs[1])}:"
                f"{theirs[2]}); nothing was sent there",
            )

    def deadline_s(self, body_bytes: int = 0) -> float:
        """The total time one request may take: connecting, the body at the slowest rate we
        accept, and the read timeout for the answer."""
        return self.timeout[0] + self.timeout[1] + body_bytes / self.min_rate

    def _request(self, method: str, url: str, body_bytes: int = 0, **kwargs: object) -> Answer:
        self.check_origin(url)
        if self.throttle is not None:
            # A draw of nothing: the pool's throttle beats the watchdog's liveness for this
            # worker (agent.sync.pool), so a request that starts is a sign of life.
            self.throttle(0)
        budget = self.deadline_s(body_bytes)
        deadline = Deadline(budget)
        try:
            with deadline:
                resp = self.session.request(
                    method,
                    url,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                    **kwargs,  # type: ignore[arg-type]
                )
                try:
                    return self._read(method, resp, deadline)
                finally:
                    resp.close()
        except (UploadGarbled, UploadRefused):
            raise
        except Exception as exc:
            if deadline.expired:
                raise UploadLost(
                    server=self.server, problem=f"{method} took longer than {budget:.0f} s"
                ) from exc
            raise self._transport_error(method, exc) from exc

    def _transport_error(self, method: str, exc: Exception) -> UploadRetryable:
        if isinstance(exc, requests.exceptions.SSLError):
            return UploadTlsFailed(server=self.server, problem=_short(exc))
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return UploadRetryable(server=self.server, problem="connect timed out")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return UploadLost(server=self.server, problem=f"{method} timed out")
        if isinstance(exc, requests.exceptions.ConnectionError) and _is_connect_failure(exc):
            return UploadRetryable(server=self.server, problem=_short(exc))
        if isinstance(exc, (requests.exceptions.RequestException, urllib3.exceptions.HTTPError)):
            # Resets, truncated or garbled answers (ChunkedEncodingError, InvalidHeader, ...).
            return UploadLost(server=self.server, problem=f"{method}: {_short(exc)}")
        # Not the server's: reading the staged file (an OSError; classify decides), or a bug.
        raise exc

    def _read(self, method: str, resp: requests.Response, deadline: Deadline) -> Answer:
        """The answer's body, raw (never decompressed), at most ANSWER_CAP bytes."""
        encoding = resp.headers.get("Content-Encoding", "identity").strip(" \t").lower()
        if encoding not in ("", "identity"):
            raise UploadGarbled(
                server=self.server,
                problem=f"{method} answered with Content-Encoding "
                f"{display_name(encoding[:40])!r}, not identity",
            )
        body = bytearray()
        if method != "HEAD":
            for piece in resp.raw.stream(ANSWER_PIECE, decode_content=False):
                body += piece
                if len(body) > ANSWER_CAP:
                    raise UploadGarbled(
                        server=self.server,
                        problem=f"{method} answer is longer than {ANSWER_CAP} bytes",
                    )
                deadline.check()
        return Answer(resp.status_code, resp.reason or "", resp.headers, bytes(body))

    def _fail(self, method: str, resp: Answer) -> UploadRetryable | UploadRefused:
        """The one mapping from an unexpected HTTP status to an error class."""
        status = resp.status
        answer = f"{method} answered {status} {display_name(resp.reason[:80])}".strip()
        body = _body_excerpt(resp.body)
        if body:
            answer += f": {body}"
        if status == 409:
            return UploadConflict(server=self.server, problem=answer)
        if status in _GONE_STATUSES:
            return UploadGone(server=self.server, problem=answer)
        if status >= 500 or status in _RETRY_STATUSES:
            error = UploadRetryable(server=self.server, problem=answer)
            error.retry_after = _retry_after(
                resp.headers.get("Retry-After"), resp.headers.get("Date")
            )
            return error
        return UploadRefused(server=self.server, problem=answer)

    def _garbled(self, method: str, exc: BadHeader) -> UploadGarbled:
        return UploadGarbled(server=self.server, problem=f"{method} answer: {exc}")

    def capabilities(self) -> ServerCaps:
        if self._caps is None:
            resp = self._request("OPTIONS", self.endpoint)
            if resp.status not in (200, 204):
                raise self._fail("OPTIONS", resp)
            versions = tus_headers.tokens(resp.headers.get("Tus-Version", TUS_VERSION))
            if TUS_VERSION not in versions:
                raise UploadRefused(
                    server=self.server,
                    problem=f"speaks tus {display_name(str(sorted(versions))[:100])}, "
                    f"not {TUS_VERSION}",
                )
            try:
                max_size = tus_headers.count("Tus-Max-Size", resp.headers.get("Tus-Max-Size"))
            except BadHeader as exc:
                raise self._garbled("OPTIONS", exc) from None
            self._caps = ServerCaps(
                extensions=frozenset(tus_headers.tokens(resp.headers.get("Tus-Extension"))),
                checksum_algorithms=frozenset(
                    tus_headers.tokens(resp.headers.get("Tus-Checksum-Algorithm"))
                ),
                max_size=max_size,
            )
        return self._caps

    def create(self, length: int, metadata: Mapping[str, str]) -> tuple[str, str | None]:
        """POST a new upload (tus "creation"); returns (upload URL, expiry or None)."""
        caps = self.capabilities()
        if "creation" not in caps.extensions:
            raise UploadRefused(server=self.server, problem="does not offer tus creation")
        if caps.max_size is not None and length > caps.max_size:
            raise UploadRefused(
                server=self.server,
                problem=f"accepts at most {caps.max_size} bytes, file has {length}",
            )
        resp = self._request(
            "POST",
            self.endpoint,
            headers={
                "Upload-Length": str(length),
                "Upload-Metadata": encode_metadata(metadata),
                "Content-Length": "0",
            },
        )
        if resp.status != 201:
            raise self._fail("POST", resp)
        try:
            url = tus_headers.location(self.endpoint, resp.headers.get("Location"))
        except BadHeader as exc:
            raise self._garbled("POST", exc) from None
        # The bearer token and the evidence go to the configured origin only.
        self.check_origin(url)
        return url, tus_headers.http_date_iso(resp.headers.get("Upload-Expires"))

    def head(self, url: str) -> UploadStatus:
        resp = self._request(
            "HEAD",
            url,
            headers={"Cache-Control": "no-store", "Want-Repr-Digest": WANT_REPR_DIGEST},
        )
        if resp.status not in (200, 204):
            raise self._fail("HEAD", resp)
        return self._status("HEAD", resp)

    def patch(
        self, url: str, fd: int, offset: int, length: int, digest: Digest | None = None
    ) -> UploadStatus:
        """Send bytes [offset, offset+length) of fd; returns the server's new status.

        When the server advertised sha256 (tus "checksum"), the chunk is read once to hash it
        and once to send it: the header must precede the body, and holding the chunk in memory
        instead would cost its whole size. `digest`, when given, is updated with the bytes sent.
        """
        headers = {
            "Upload-Offset": str(offset),
            "Content-Type": OFFSET_CONTENT_TYPE,
            "Content-Length": str(length),
            "Want-Repr-Digest": WANT_REPR_DIGEST,
        }
        body_digest = digest
        if self.capabilities().sha256_checksums:
            chunk_hash = hashlib.sha256()
            done = 0
            while done < length:
                piece = os.pread(fd, min(READ_PIECE, length - done), offset + done)
                if not piece:
                    raise OSError(f"staged file ended at {offset + done}, expected more")
                chunk_hash.update(piece)
                if digest is not None:
                    digest.update(piece)
                done += len(piece)
            body_digest = None
            checksum = base64.b64encode(chunk_hash.digest()).decode("ascii")
            headers["Upload-Checksum"] = f"sha256 {checksum}"
        body = ChunkBody(fd, offset, length, self.throttle, body_digest)
        resp = self._request("PATCH", url, length, headers=headers, data=body)
        if resp.status not in (200, 204):
            raise self._fail("PATCH", resp)
        return self._status("PATCH", resp)

    def terminate(self, url: str) -> bool:
        """DELETE an upload we abandon (tus "termination"), best effort."""
        if "termination" not in self.capabilities().extensions:
            return False
        try:
            resp = self._request("DELETE", url)
        except (UploadRetryable, UploadRefused):
            return False
        return resp.status in (204, 404, 410)

    def _status(self, method: str, resp: Answer) -> UploadStatus:
        try:
            offset = tus_headers.count("Upload-Offset", resp.headers.get("Upload-Offset"))
            length = tus_headers.count("Upload-Length", resp.headers.get("Upload-Length"))
            digests = tus_headers.repr_digest(resp.headers.get("Repr-Digest"))
        except BadHeader as exc:
            # A success without a readable answer is as good as none: re-check with HEAD.
            raise self._garbled(method, exc) from None
        if offset is None:
            raise UploadGarbled(server=self.server, problem=f"{method} answer has no Upload-Offset")
        return UploadStatus(
            offset=offset,
            length=length,
            repr_digest=digests,
            expires_at=tus_headers.http_date_iso(resp.headers.get("Upload-Expires")),
        )


def _short(exc: BaseException) -> str:
    # The innermost reason reads best ("Connection refused", "certificate has expired").
    inner: BaseException = exc
    seen = 0
    while (inner.__cause__ or inner.__context__) is not None and seen < 8:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
        seen += 1
    text = str(inner) or type(inner).__name__
    return display_name(text[:300])


def _is_connect_failure(exc: requests.exceptions.ConnectionError) -> bool:
    """Nothing was sent: the connection was never made (refused, unreachable, no name)."""
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", inner)  # urllib3's MaxRetryError carries the cause
    return isinstance(reason, ConnectionRefusedError) or type(reason).__name__ in (
        "NewConnectionError",
        "NameResolutionError",
    )


def _body_excerpt(body: bytes) -> str:
    text = " ".join(body[:400].decode("utf-8", "replace").split())
    return display_name(text[:200])


# ---- RFC 3161 time-stamp queries ------------------------------------------------------------
# The TSA is reached through this module too: it is the station's one HTTP adapter, with its
# deadline and answer cap. RFC 3161 section 3.4: a TimeStampReq POSTed as
# application/timestamp-query, the TimeStampResp answered as application/timestamp-reply.
TIMESTAMP_QUERY = "application/timestamp-query"
TIMESTAMP_REPLY = "application/timestamp-reply"


def post_timestamp_query(url: str, query: bytes, *, timeout_s: float) -> bytes:
    """POST one DER TimeStampReq to the TSA at `url`; the DER TimeStampResp it answered.

    The whole request, connect to the last byte, is bounded by `timeout_s` (the socket is shut
    down when it passes), and the answer by ANSWER_CAP bytes, read as identity. TLS is verified
    against the system's CAs; no proxy or credential from the environment, no redirect. Nothing
    in the answer is trusted here: agent.custody.tsa verifies it. TsaFailed on any failure.
    """
    server = display_name(urlsplit(url).netloc[:100])
    session = requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, _DeadlineAdapter(max_retries=0))
    session.verify = True
    session.trust_env = False
    deadline = Deadline(timeout_s)
    try:
        with deadline:
            resp = session.post(
                url,
                data=query,
                headers={
                    "Content-Type": TIMESTAMP_QUERY,
                    "Accept": TIMESTAMP_REPLY,
                    "Accept-Encoding": "identity",
                    "User-Agent": f"dockagent/{__version__}",
                },
                timeout=(min(timeout_s, 10.0), timeout_s),
                allow_redirects=False,
                stream=True,
            )
            try:
                return _timestamp_reply(server, resp, deadline)
            finally:
                resp.close()
    except TsaFailed:
        raise
    except Exception as exc:
        if deadline.expired:
            raise TsaFailed(server=server, problem=f"no answer within {timeout_s:g} s") from exc
        if isinstance(exc, (requests.exceptions.RequestException, urllib3.exceptions.HTTPError)):
            raise TsaFailed(server=server, problem=_short(exc)) from exc
        raise
    finally:
        session.close()


def _timestamp_reply(server: str, resp: requests.Response, deadline: Deadline) -> bytes:
    if resp.status_code != 200:
        reason = display_name((resp.reason or "")[:80])
        raise TsaFailed(server=server, problem=f"answered {resp.status_code} {reason}".strip())
    kind = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind != TIMESTAMP_REPLY:
        raise TsaFailed(
            server=server, problem=f"answered {display_name(kind[:60])!r}, not {TIMESTAMP_REPLY}"
        )
    encoding = resp.headers.get("Content-Encoding", "identity").strip(" \t").lower()
    if encoding not in ("", "identity"):
        raise TsaFailed(server=server, problem="answered with a Content-Encoding, not identity")
    body = bytearray()
    for piece in resp.raw.stream(ANSWER_PIECE, decode_content=False):
        body += piece
        if len(body) > ANSWER_CAP:
            raise TsaFailed(server=server, problem=f"answer is longer than {ANSWER_CAP} bytes")
        deadline.check()
    return bytes(body)
