"""Hostile file names are shown escaped: no control byte, bidi mark or bad UTF-8 gets through."""

from __future__ import annotations

import unicodedata

from agent.core.model import display_name


def test_control_bidi_and_undecodable_bytes_are_escaped() -> None:
    raw = "evil\x1b[31m\u202egnp.exe\u200b\n".encode() + b"\xff\xfe.MP4"
    shown = display_name(raw)
    assert shown == "evil\\u001b[31m\\u202egnp.exe\\u200b\\u000a\\xff\\xfe.MP4"
    assert all(unicodedata.category(c)[0] != "C" for c in shown)


def test_plain_names_and_chinese_are_kept() -> None:
    assert display_name(b"RECORD/20261127/A_1.MP4") == "RECORD/20261127/A_1.MP4"
    assert display_name("执法记录仪.MP4".encode()) == "执法记录仪.MP4"


def test_backslash_is_doubled_so_escapes_are_unambiguous() -> None:
    assert display_name(b"a\\x41") == "a\\\\x41"
