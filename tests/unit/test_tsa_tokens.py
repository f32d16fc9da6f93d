"""A TSA's answer is hostile input (README "Trusted time"): the check of a token never raises
anything but TokenInvalid, whatever the bytes, and the request to the TSA is bounded in size
and time by the station's one HTTP adapter."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.errors import TsaFailed
from agent.custody import tsa
from agent.sync.tus_client import ANSWER_CAP, post_timestamp_query
from tests.support.tsa_server import Authority, TsaServer

HASH = hashlib.sha256(b"record").hexdigest()


@pytest.fixture(scope="module")
def anchors(tmp_path_factory: pytest.TempPathFactory) -> list[object]:
    return list(tsa.load_anchor(Authority(tmp_path_factory.mktemp("tsa"), "Alpha").ca))


@settings(max_examples=200, database=None)
@given(data=st.binary(max_size=2048))
def test_any_bytes_are_a_token_invalid_never_a_crash(data: bytes, anchors: list) -> None:  # type: ignore[type-arg]
    with pytest.raises(tsa.TokenInvalid):
        tsa.check_token(data, HASH, anchors)


def test_a_huge_token_is_refused_by_its_size_before_it_is_parsed(anchors: list) -> None:  # type: ignore[type-arg]
    started = time.monotonic()
    with pytest.raises(tsa.TokenInvalid) as caught:
        tsa.check_token(b"\x30\x84" + b"\x00" * (16 << 20), HASH, anchors)
    assert caught.value.kind == "tsa_token_unreadable"
    assert "longer than" in caught.value.detail
    assert time.monotonic() - started < 1


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A loopback server that answers every connection with `answer(conn)`; its URL."""
    listeners: list[socket.socket] = []

    def serve(answer: Callable[[socket.socket], None]) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def loop() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    with contextlib.suppress(OSError):  # the client hung up: fine
                        answer(conn)

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}/tsa"

    yield serve
    for listener in listeners:
        listener.close()


_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\n"


def test_an_endless_answer_is_cut_at_the_cap(raw_server) -> None:  # type: ignore[no-untyped-def]
    def endless(conn: socket.socket) -> None:
        conn.sendall(_HEAD + b"Connection: close\r\n\r\n")
        for _ in range(64):
            conn.sendall(b"\x00" * 65536)

    with pytest.raises(TsaFailed, match=f"longer than {ANSWER_CAP} bytes"):
        post_timestamp_query(raw_server(endless), b"q", timeout_s=10)


def test_a_dripping_answer_ends_at_the_deadline(raw_server) -> None:  # type: ignore[no-untyped-def]
    def drip(conn: socket.socket) -> None:
        conn.sendall(_HEAD + b"Content-Length: 1000\r\n\r\n")
        for _ in range(100):
            conn.sendall(b"\x00")
            time.sleep(0.2)

    started = time.monotonic()
    with pytest.raises(TsaFailed, match="no answer within 1 s"):
        post_timestamp_query(raw_server(drip), b"q", timeout_s=1)
    assert time.monotonic() - started < 3


def test_an_answer_that_is_not_a_timestamp_reply_is_refused(raw_server) -> None:  # type: ignore[no-untyped-def]
    def html(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi")

    with pytest.raises(TsaFailed, match="not application/timestamp-reply"):
        post_timestamp_query(raw_server(html), b"q", timeout_s=5)


def test_a_tsa_that_is_away_is_a_retryable_failure(tmp_path: Path) -> None:
    server = TsaServer(Authority(tmp_path / "tsa", "Alpha")).start()
    url = server.url
    server.stop()
    with pytest.raises(TsaFailed) as caught:
        post_timestamp_query(url, b"q", timeout_s=5)
    assert caught.value.kind.value == "retryable"
