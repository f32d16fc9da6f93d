"""Camera logs read line by line from their tail: the same lines as splitting the whole tail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.health import logs


def _whole(data: bytes, head_skipped: int) -> list[bytes]:
    lines = data.split(b"\n")
    if head_skipped and lines:
        lines = lines[1:]
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    return [line.removesuffix(b"\r") for line in lines]


CASES = [b"", b"\n", b"a", b"a\n", b"a\r\n\r\nb", b"a\n\n", b"x" * 300 + b"\nbb\r\nccc\n"]


@pytest.mark.parametrize("data", CASES)
@pytest.mark.parametrize("head_skipped", [0, 7])
def test_split_lines_as_before(data: bytes, head_skipped: int) -> None:
    assert list(logs.split_lines(data, head_skipped)) == _whole(data, head_skipped)


@pytest.mark.parametrize("limit", [1, 5, 64, 10_000])
def test_tail_read_in_small_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(logs, "_CHUNK", 3)
    data = b"".join(b"2024-03-10 08:00:%02d BOOT n=%d\r\n" % (i, i) for i in range(40)) + b"end"
    (tmp_path / "SYSTEM.LOG").write_bytes(data)
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        tail = logs.open_tail(root, b"SYSTEM.LOG", limit)
        assert tail is not None
        with tail:
            skipped = max(0, len(data) - limit)
            assert tail.skipped == skipped
            assert list(tail.lines()) == _whole(data[skipped:], skipped)
        assert logs.open_tail(root, b"ABSENT.LOG") is None
    finally:
        os.close(root)


def test_only_kept_events_held_all_counted() -> None:
    data = b"2024-03-10 08:00:00 BOOT\n2024-03-10 08:00:01 USB_CONNECT\nbad\n"
    parsed = logs.parse_system_log(data, keep=lambda e: e.event == "USB_CONNECT")
    assert [e.event for e in parsed.events] == ["USB_CONNECT"]
    assert parsed.events[0].index == 2
    assert parsed.summary()["events"] == 2 and parsed.lines == 3 and parsed.malformed == 1
