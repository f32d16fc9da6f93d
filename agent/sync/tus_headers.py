"""The header values of a tus server's answers, parsed totally and in bounded time.

Every value a server sends is hostile input: each parser here accepts only the shape its RFC
defines, with bounded lengths, and either returns a value or raises BadHeader (the only
exception it raises). Numbers are ASCII digits only (str.isdigit() also accepts superscripts,
and int() of a 4,300-digit string raises); dates are range-checked before any arithmetic.
Advisory values (Retry-After, Date, Upload-Expires) that do not parse count as absent. This
module only parses: it makes no request and decides nothing about retries or confirmation.
"""

from __future__ import annotations

import base64
import email.utils
import re
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

# RFC 9110 section 8.6: a non-negative integer; 19 digits reach past 2**63 - 1, which tus
# (and SQLite) cannot hold anyway.
_COUNT = re.compile(r"[0-9]{1,19}")
MAX_COUNT = (1 << 63) - 1
# Retry-After delay-seconds (RFC 9110 section 10.2.3): more than 9 digits is over 31 years.
_DELAY = re.compile(r"[0-9]{1,9}")
# An IMF-fixdate is 29 characters; the obsolete forms are shorter than this.
MAX_DATE_CHARS = 64
# Dates outside these years are wrong clocks or attacks, not plans (a year-9999 date
# overflows when moved to UTC).
_YEARS = range(1990, 2201)
MAX_DIGEST_CHARS = 4096
MAX_DIGEST_MEMBERS = 16
_ALGORITHM = re.compile(r"[a-z0-9][a-z0-9_.*-]{0,31}")
MAX_URL_CHARS = 2048
# RFC 3986 characters only: printable ASCII without space.
_URL_CHARS = re.compile(r"[\x21-\x7e]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_OWS = " \t"  # RFC 9110 section 5.6.3


class BadHeader(Exception):
    """A header value outside its RFC's grammar; str() says which and why, without the value."""


def count(name: str, value: str | None) -> int | None:
    """Upload-Offset, Upload-Length, Tus-Max-Size: None when absent, else 0 .. 2**63-1."""
    if value is None:
        return None
    text = value.strip(_OWS)
    if not _COUNT.fullmatch(text):
        raise BadHeader(f"{name} is not a number of at most 19 ASCII digits")
    number = int(text)
    if number > MAX_COUNT:
        raise BadHeader(f"{name} is larger than 2**63-1")
    return number


def http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110 section 5.6.7) in UTC, or None when absent or not a sane date."""
    if not value or len(value) > MAX_DATE_CHARS:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip(_OWS))
        if parsed.year not in _YEARS:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def http_date_iso(value: str | None) -> str | None:
    parsed = http_date(value)
    return parsed.isoformat(timespec="milliseconds") if parsed else None


def retry_after(value: str | None, server_date: str | None, now: datetime) -> float | None:
    """Retry-After: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3), None if neither.

    An HTTP-date is measured from the answer's own Date (section 6.6.1), not from the station's
    clock, so neither a wrong nor a stepped station clock stretches or skips the wait.
    """
    if not value:
        return None
    text = value.strip(_OWS)
    if _DELAY.fullmatch(text):
        return float(text)
    when = http_date(text)
    if when is None:
        return None
    base = http_date(server_date) or now
    return max(0.0, (when - base).total_seconds())


def repr_digest(value: str | None) -> dict[str, bytes]:
    """RFC 9530 Repr-Digest: an RFC 8941 dictionary of `alg=:base64:` byte sequences.

    Members that are not such pairs are skipped (parameters are allowed and ignored); a value
    too long or with too many members is refused."""
    if not value:
        return {}
    if len(value) > MAX_DIGEST_CHARS:
        raise BadHeader(f"Repr-Digest is longer than {MAX_DIGEST_CHARS} characters")
    members = value.split(",")
    if len(members) > MAX_DIGEST_MEMBERS:
        raise BadHeader(f"Repr-Digest has more than {MAX_DIGEST_MEMBERS} members")
    out: dict[str, bytes] = {}
    for member in members:
        name, sep, item = member.strip(_OWS).partition("=")
        name = name.strip(_OWS).lower()
        item = item.split(";", 1)[0].strip(_OWS)
        if not sep or not _ALGORITHM.fullmatch(name):
            continue
        if len(item) < 2 or item[0] != ":" or item[-1] != ":":
            continue
        try:
            out[name] = base64.b64decode(item[1:-1], validate=True)
        except ValueError:
            continue
    return out


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL, ports made explicit (RFC 6454 4)."""
    if len(url) > MAX_URL_CHARS or not _URL_CHARS.fullmatch(url):
        raise BadHeader("the URL is too long or has characters outside RFC 3986")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError as exc:
        raise BadHeader(f"the URL does not parse ({exc})") from None
    if scheme not in _DEFAULT_PORTS or not host:
        raise BadHeader("the URL is not an absolute http(s) URL")
    return scheme, host, port


def location(endpoint: str, value: str | None) -> str:
    """POST's Location (tus "creation"), resolved against the endpoint (RFC 9110 10.2.2)."""
    if not value:
        raise BadHeader("POST answered 201 without Location")
    text = value.strip(_OWS)
    if len(text) > MAX_URL_CHARS or not _URL_CHARS.fullmatch(text):
        raise BadHeader("Location is too long or has characters outside RFC 3986")
    try:
        url = urljoin(endpoint, text)
    except ValueError as exc:
        raise BadHeader(f"Location does not parse ({exc})") from None
    origin(url)
    return url


def tokens(value: str | None) -> list[str]:
    """A comma-separated list (Tus-Version, Tus-Extension, Tus-Checksum-Algorithm)."""
    return [t.strip(_OWS).lower() for t in (value or "").split(",") if t.strip(_OWS)]
