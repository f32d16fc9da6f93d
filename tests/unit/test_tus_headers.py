"""Every header parser of agent.sync.tus_headers is total and bounded: on any text it returns a
value or raises BadHeader, never ValueError/OverflowError/IndexError, and it takes about the
same short time on a 60 KiB value (the most http.client passes on) as on a short one."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.sync import tus_headers
from agent.sync.tus_client import _retry_after
from agent.sync.tus_headers import BadHeader

ENDPOINT = "https://tus.example.org:8443/files"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

PARSERS: dict[str, Callable[[str], object]] = {
    "count": lambda v: tus_headers.count("Upload-Offset", v),
    "http_date": tus_headers.http_date,
    "http_date_iso": tus_headers.http_date_iso,
    "retry_after": lambda v: tus_headers.retry_after(v, v, NOW),
    "retry_after_date": lambda v: tus_headers.retry_after(v, "Sun, 01 Mar 2026 12:00:00 GMT", NOW),
    "repr_digest": tus_headers.repr_digest,
    "origin": tus_headers.origin,
    "location": lambda v: tus_headers.location(ENDPOINT, v),
    "tokens": tus_headers.tokens,
}

# Header-ish text: digits of every script, date words, URL and dictionary punctuation.
_PIECES = st.sampled_from(
    [
        "0",
        "9",
        "\u00b2",
        "\u0663",
        "\uff11",
        "-",
        "+",
        ":",
        ",",
        ";",
        "=",
        " ",
        "\t",
        "GMT",
        "Fri, 31 Dec 9999 23:59:59 -0100",
        "Mon, 01 Jan 0001 00:00:00 GMT",
        "sha-256=:",
        "AAAA",
        "http://",
        "https://",
        "[",
        "]",
        "::1",
        "/",
        "?",
        "#",
        "%",
        "@",
        "\x00",
        "\x7f",
        "é",
    ]
)
HEADERISH = st.one_of(st.text(max_size=200), st.lists(_PIECES, max_size=40).map("".join))


def _total(parse: Callable[[str], object], value: str) -> None:
    with contextlib.suppress(BadHeader):
        parse(value)


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=300, database=None, deadline=None)
@given(value=HEADERISH)
def test_every_header_parser_is_total(name: str, value: str) -> None:
    _total(PARSERS[name], value)


@pytest.mark.parametrize("name", sorted(PARSERS))
@pytest.mark.parametrize(
    "value",
    [
        "9" * 4300,
        "9" * 60_000,
        "\u00b2" * 60_000,
        "sha-256=:" + "A" * 60_000 + ":",
        "," * 60_000,
        "a=:AA==:," * 7000,
        "Fri, 31 Dec 9999 23:59:59 -0100 " * 1800,
        "[" * 60_000,
    ],
)
def test_every_header_parser_is_fast_on_long_values(name: str, value: str) -> None:
    start = time.perf_counter()
    _total(PARSERS[name], value)
    assert time.perf_counter() - start < 0.25


@pytest.mark.parametrize(
    "value", ["\u00b2", "\u0663", "\uff11", "9" * 4300, "1" * 20, "-1", "+1", "1.0", "", " "]
)
def test_a_count_is_ascii_digits_within_63_bits(value: str) -> None:
    with pytest.raises(BadHeader):
        tus_headers.count("Upload-Offset", value)


def test_a_count_is_read_as_the_rfc_says() -> None:
    assert tus_headers.count("Upload-Offset", None) is None
    assert tus_headers.count("Upload-Offset", " 1024\t") == 1024
    assert tus_headers.count("Upload-Offset", str((1 << 63) - 1)) == (1 << 63) - 1
    with pytest.raises(BadHeader):
        tus_headers.count("Upload-Offset", str(1 << 63))


@pytest.mark.parametrize(
    "value",
    [
        "Fri, 31 Dec 9999 23:59:59 -0100",
        "Mon, 01 Jan 1066 00:00:00 +0100",
        "Sun, 06 Nov 1894 08:49:37 GMT",
        "\u00b2",
        "Sun, 06 Nov 1994 08:49:37 GMT" + "x" * 60,
    ],
)
def test_a_date_out_of_range_or_garbled_counts_as_absent(value: str) -> None:
    assert tus_headers.http_date(value) is None
    assert _retry_after(value, "Sun, 01 Mar 2026 12:00:00 GMT") is None


def test_retry_after_takes_ascii_seconds_or_a_sane_date() -> None:
    assert _retry_after("\u00b9") is None
    assert _retry_after("9" * 4300) is None
    assert _retry_after(" 120 ") == 120.0
    assert tus_headers.retry_after("Sun, 01 Mar 2026 12:01:00 GMT", None, NOW) == 60.0


def test_a_location_resolves_within_bounds_and_origin_is_explicit() -> None:
    assert tus_headers.location(ENDPOINT, "/files/abc") == "https://tus.example.org:8443/files/abc"
    assert tus_headers.origin("HTTPS://Tus.Example.org/files") == ("https", "tus.example.org", 443)
    for bad in ("http://[::1/x", "/files/\x01", "/" + "a" * 3000, "ftp://h/x", "http://h:99999/"):
        with pytest.raises(BadHeader):
            tus_headers.location(ENDPOINT, bad)


def test_repr_digest_is_bounded_in_length_and_members() -> None:
    assert tus_headers.repr_digest("sha-512=:AAAA:, sha-256=:AAAA:;p=1, x") == {
        "sha-512": b"\0\0\0",
        "sha-256": b"\0\0\0",
    }
    with pytest.raises(BadHeader):
        tus_headers.repr_digest("a=:AA==:," * 17)
    with pytest.raises(BadHeader):
        tus_headers.repr_digest("sha-256=:" + "A" * 5000 + ":")
