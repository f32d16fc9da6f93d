"""The tus 1.0.0 client (specs/upload-protocol.md) on one kept-alive requests.Session.

The only module that imports requests: every HTTP answer and transport failure is turned into an
agent error here, once, and its class says whether to retry (agent.core.errors.classify). PATCH
bodies are streamed from the file in small pieces, so memory stays far below one chunk. It never
turns TLS verification off and decides nothing about rows, confirmation levels or backoff.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import requests

from agent import __version__
from agent.core import wallclock
from agent.core.errors import (
    UploadConflict,
    UploadGone,
    UploadLost,
    UploadRefused,
    UploadRetryable,
    UploadTlsFailed,
)
from agent.core.model import display_name
from agent.sync.throttle import Throttle

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
# Pieces read from disk per send: small enough to keep memory flat, big enough to keep
# system calls few. The chunk (one PATCH) is a multiple of these.
READ_PIECE = 1 << 20
# tus 1.0.0 "checksum" extension: 460 Checksum Mismatch means the body was damaged on the way.
STATUS_CHECKSUM_MISMATCH = 460
# RFC 9110 section 15: answers that say "later", not "never".
_RETRY_STATUSES = frozenset({408, 423, 425, 429, STATUS_CHECKSUM_MISMATCH})
_GONE_STATUSES = frozenset({404, 410})


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
    """RFC 9530 Repr-Digest: an RFC 8941 dictionary of `alg=:base64:` byte sequences."""
    out: dict[str, bytes] = {}
    for member in value.split(","):
        name, sep, item = member.strip().partition("=")
        item = item.split(";", 1)[0].strip()  # parameters are allowed and ignored
        if not sep or len(item) < 2 or item[0] != ":" or item[-1] != ":":
            continue
        try:
            out[name.strip().lower()] = base64.b64decode(item[1:-1], validate=True)
        except ValueError:
            continue
    return out


def _http_date_to_iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds")


def _retry_after(value: str | None, server_date: str | None = None) -> float | None:
    """Retry-After: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).

    An HTTP-date is measured from the answer's own Date (section 6.6.1), not from the station's
    clock, so neither a wrong nor a stepped station clock stretches or skips the wait.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = _http_date_to_iso(value)
    if when is None:
        return None
    sent = _http_date_to_iso(server_date)
    base = datetime.fromisoformat(sent) if sent else wallclock.now()
    return max(0.0, (datetime.fromisoformat(when) - base).total_seconds())


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
        digest: hashlib._Hash | None = None,
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
    ) -> None:
        self.endpoint = endpoint
        self.server = urlsplit(endpoint).netloc
        self.timeout = (connect_timeout, read_timeout)
        self.throttle = throttle
        self.session = requests.Session()
        # Never an unverified connection: the system trust store, or the configured bundle.
        self.session.verify = ca_bundle or True
        if client_cert:
            self.session.cert = (client_cert, client_key)
        # No proxies or credentials from the environment: evidence goes where configured only.
        self.session.trust_env = False
        self.session.headers.update(
            {"Tus-Resumable": TUS_VERSION, "User-Agent": f"dockagent/{__version__}"}
        )
        if bearer_token:
            self.session.headers["Authorization"] = f"Bearer {bearer_token}"
        self._caps: ServerCaps | None = None

    def close(self) -> None:
        self.session.close()

    # ---- requests --------------------------------------------------------------------------

    def _request(self, method: str, url: str, **kwargs: object) -> requests.Response:
        try:
            return self.session.request(
                method,
                url,
                timeout=self.timeout,
                allow_redirects=False,
                **kwargs,  # type: ignore[arg-type]
            )
        except requests.exceptions.SSLError as exc:
            raise UploadTlsFailed(server=self.server, problem=_short(exc)) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise UploadRetryable(server=self.server, problem="connect timed out") from exc
        except requests.exceptions.ReadTimeout as exc:
            raise UploadLost(server=self.server, problem=f"{method} timed out") from exc
        except requests.exceptions.ConnectionError as exc:
            if _is_connect_failure(exc):
                raise UploadRetryable(server=self.server, problem=_short(exc)) from exc
            raise UploadLost(server=self.server, problem=f"{method}: {_short(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            # Truncated or garbled answers (ChunkedEncodingError, InvalidHeader, ...).
            raise UploadLost(server=self.server, problem=f"{method}: {_short(exc)}") from exc

    def _fail(self, method: str, resp: requests.Response) -> UploadRetryable | UploadRefused:
        """The one mapping from an unexpected HTTP status to an error class."""
        status = resp.status_code
        answer = f"{method} answered {status} {resp.reason or ''}".strip()
        body = _body_excerpt(resp)
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

    def capabilities(self) -> ServerCaps:
        if self._caps is None:
            resp = self._request("OPTIONS", self.endpoint)
            if resp.status_code not in (200, 204):
                raise self._fail("OPTIONS", resp)
            versions = _tokens(resp.headers.get("Tus-Version", TUS_VERSION))
            if TUS_VERSION not in versions:
                raise UploadRefused(
                    server=self.server, problem=f"speaks tus {sorted(versions)}, not {TUS_VERSION}"
                )
            max_size = resp.headers.get("Tus-Max-Size", "")
            self._caps = ServerCaps(
                extensions=frozenset(_tokens(resp.headers.get("Tus-Extension", ""))),
                checksum_algorithms=frozenset(
                    _tokens(resp.headers.get("Tus-Checksum-Algorithm", ""))
                ),
                max_size=int(max_size) if max_size.isdigit() else None,
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
        if resp.status_code != 201:
            raise self._fail("POST", resp)
        location = resp.headers.get("Location", "")
        if not location:
            raise UploadLost(server=self.server, problem="POST answered 201 without Location")
        url = urljoin(self.endpoint, location)
        mine, theirs = urlsplit(self.endpoint), urlsplit(url)
        # The bearer token and the evidence go to the configured origin only.
        if (mine.scheme, mine.netloc) != (theirs.scheme, theirs.netloc):
            raise UploadRefused(
                server=self.server, problem=f"upload URL points to another origin ({theirs.netloc})"
            )
        return url, _http_date_to_iso(resp.headers.get("Upload-Expires"))

    def head(self, url: str) -> UploadStatus:
        resp = self._request("HEAD", url, headers={"Cache-Control": "no-store"})
        if resp.status_code not in (200, 204):
            raise self._fail("HEAD", resp)
        return self._status("HEAD", resp)

    def patch(
        self, url: str, fd: int, offset: int, length: int, digest: hashlib._Hash | None = None
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
        resp = self._request("PATCH", url, headers=headers, data=body)
        if resp.status_code not in (200, 204):
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
        return resp.status_code in (204, 404, 410)

    def _status(self, method: str, resp: requests.Response) -> UploadStatus:
        raw_offset = resp.headers.get("Upload-Offset", "")
        if not raw_offset.isdigit():
            # A success without a readable offset is as good as no answer: re-check with HEAD.
            raise UploadLost(
                server=self.server, problem=f"{method} answer has no valid Upload-Offset"
            )
        raw_length = resp.headers.get("Upload-Length", "")
        return UploadStatus(
            offset=int(raw_offset),
            length=int(raw_length) if raw_length.isdigit() else None,
            repr_digest=parse_repr_digest(resp.headers.get("Repr-Digest", "")),
            expires_at=_http_date_to_iso(resp.headers.get("Upload-Expires")),
        )


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


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


def _body_excerpt(resp: requests.Response) -> str:
    try:
        text = resp.text
    except (requests.exceptions.RequestException, UnicodeDecodeError):
        return ""
    text = " ".join(text.split())
    return display_name(text[:200])
