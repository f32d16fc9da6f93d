"""The Upload-Metadata a tus server is sent (agent.sync.tus_metadata): the reference clients'
`filename` and `filetype` added to the station's keys, none of which is changed; a hostile name
sent printable and bounded, cut only between whole escapes."""

from __future__ import annotations

import re
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.model import display_name
from agent.sync.tus_client import encode_metadata
from agent.sync.tus_metadata import (
    MAX_FILENAME_CHARS,
    OCTET_STREAM,
    TRUNCATED,
    bounded_filename,
    filetype,
    upload_metadata,
)

STATION = {
    "filename": "CAM01_0001.MP4",
    "sha256": "ab" * 32,
    "kind": "video",
    "station_id": "S1",
    "officer_id": "",
    "custody_record": "e30=",
}
# Whatever display_name writes: printable characters and whole escapes only.
_ESCAPED = re.compile(r"(?:\\(?:\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})|[^\\])*", re.DOTALL)


def test_the_reference_keys_are_added_and_the_stations_kept() -> None:
    sent = upload_metadata(STATION)
    assert {k: sent[k] for k in STATION} == STATION
    assert sent["filetype"] == "video/mp4"
    assert list(sent)[: len(STATION)] == list(STATION)  # added after, in the same order
    # A type the station already set is its own, and kept.
    assert upload_metadata({**STATION, "filetype": "video/x-own"})["filetype"] == "video/x-own"


def test_the_type_comes_from_the_extension_of_a_fixed_table() -> None:
    cases = {
        "A.MP4": "video/mp4",
        "a.mov": "video/quicktime",
        "REC.WAV": "audio/wav",
        "IMG_0001.JPG": "image/jpeg",
        "x.jpeg": "image/jpeg",
        "SYSTEM.LOG": "text/plain",
        "A.IMP": OCTET_STREAM,  # a marker the cameras write: bytes nobody vouched for
        "NOEXT": OCTET_STREAM,
        ".mp4": OCTET_STREAM,  # a hidden name, no extension
        "a.mp4.": OCTET_STREAM,
        "a.\\xff\\xfe": OCTET_STREAM,  # escaped bytes are no extension
        "a.m\u0131p4": OCTET_STREAM,
    }
    assert {name: filetype(name) for name in cases} == cases


def test_a_long_hostile_name_is_cut_between_whole_escapes() -> None:
    raw = b"\xff" * 300 + b".MP4"  # 1,200 characters once every byte is escaped
    name = display_name(raw)
    cut = bounded_filename(name)
    assert len(cut) <= MAX_FILENAME_CHARS and cut.endswith(TRUNCATED)
    assert cut[: -len(TRUNCATED)] == "\\xff" * ((MAX_FILENAME_CHARS - 1) // 4)
    assert bounded_filename("CAM01_0001.MP4") == "CAM01_0001.MP4"
    assert upload_metadata({"filename": name})["filename"] == cut


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200) | st.text(max_size=600).map(lambda t: t.encode("utf-8")))
def test_any_camera_name_is_sent_printable_bounded_and_whole(raw: bytes) -> None:
    name = display_name(raw)
    sent = upload_metadata({"filename": name})
    cut = sent["filename"]
    assert len(cut) <= MAX_FILENAME_CHARS
    kept = cut.removesuffix(TRUNCATED) if len(name) > MAX_FILENAME_CHARS else cut
    assert name.startswith(kept) and _ESCAPED.fullmatch(kept)
    assert sent["filetype"].count("/") == 1
    encode_metadata(sent)  # always encodable: the header can be built


def test_a_name_of_a_million_characters_is_bounded_in_time() -> None:
    name = "\\x00" * 250_000
    started = time.monotonic()
    assert len(bounded_filename(name)) <= MAX_FILENAME_CHARS
    assert time.monotonic() - started < 1.0
