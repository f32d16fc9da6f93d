"""agent.camera.listing: the scan's compact listing gives back every Candidate exactly as it
was appended, finds each by path, including what its columns cannot hold (kept beside them); and
agent.camera.dirnames, the sorted names of a directory the scan reads them from."""

from __future__ import annotations

from dataclasses import replace
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.camera import dirnames
from agent.camera.dirnames import SortedNames
from agent.camera.listing import Listing, camera_wall_time
from agent.core.model import Candidate, FileKind

_NAME = st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b)
_TEXT = st.text(max_size=12)
_WALL = st.one_of(
    st.datetimes().map(lambda d: d.replace(microsecond=0).isoformat()),
    st.just("0000-00-00T00:00:00"),
)


@st.composite
def _candidate(draw: st.DrawFn, rel_path: bytes) -> Candidate:
    in_root = draw(st.booleans())
    start = draw(st.one_of(st.just(""), _WALL, _TEXT)) if in_root else ""
    mtime_ns = draw(st.one_of(st.integers(0, 2**62), st.integers(-(2**70), 2**70)))
    ends = ["", "1999-01-01T00:00:00"]
    if 0 <= mtime_ns < 2**62:
        ends.append(camera_wall_time(mtime_ns))  # what the scan writes
    return Candidate(
        rel_path=rel_path,
        size=draw(st.integers(0, 2**63 - 1)),
        mtime_ns=mtime_ns,
        dev=draw(st.integers(0, 2**64 - 1)),
        ino=draw(st.integers(0, 2**64 - 1)),
        kind=draw(st.sampled_from(FileKind)),
        recorded_start=start,
        recorded_end=draw(st.sampled_from(ends)) if start else "",
        segment=draw(st.one_of(st.none(), st.integers(), st.integers(-(2**64), 2**64))),
        important=draw(st.booleans()),
        wipeable=in_root,
        channel=draw(_TEXT),
        partner_of=draw(st.one_of(st.just(b""), _NAME)),
        note=draw(_TEXT),
        marked_by=draw(st.sampled_from(["", "folder", "suffix", "sidecar"])),
    )


@st.composite
def _listed(draw: st.DrawFn) -> list[tuple[bytes, bytes, Candidate]]:
    dirs = draw(st.lists(st.lists(_NAME, max_size=3), min_size=1, max_size=4))
    paths: dict[bytes, tuple[bytes, bytes]] = {}
    for parts in dirs:
        dir_rel = b"/".join(parts)
        for name in draw(st.lists(_NAME, min_size=1, max_size=5)):
            rel = dir_rel + b"/" + name if dir_rel else name
            paths.setdefault(rel, (dir_rel, name))
    return [(d, n, draw(_candidate(rel))) for rel, (d, n) in sorted(paths.items())]


@settings(max_examples=150, deadline=None)
@given(_listed())
def test_every_candidate_comes_back_as_it_was_appended(
    listed: list[tuple[bytes, bytes, Candidate]],
) -> None:
    listing = Listing()
    for dir_rel, name, cand in listed:
        listing.append(cand, dir_rel, name)
    assert list(listing) == [cand for _, _, cand in listed]
    assert len(listing) == len(listed)
    for index, (_, _, cand) in enumerate(listed):
        assert listing[index] == cand
        assert listing.find(cand.rel_path) == index
        assert listing.identity(index) == (cand.rel_path, cand.size, cand.mtime_ns)
    assert listing[-1] == listed[-1][2]
    with pytest.raises(IndexError):
        listing[len(listed)]


def test_a_path_not_listed_is_not_found() -> None:
    listing = Listing()
    for name in (b"a", b"c", b"e"):
        listing.append(_plain(b"D/" + name), b"D", name)
    assert [listing.find(p) for p in (b"D/a", b"D/c", b"D/e")] == [0, 1, 2]
    assert [listing.find(p) for p in (b"D/b", b"D", b"", b"D/f", b"E")] == [None] * 5


def test_a_recorded_end_is_the_camera_wall_time_of_its_mtime() -> None:
    """Only recordings with a start have an end: the listing keeps the flag, not the text."""
    listing = Listing()
    cand = _plain(b"R/a.MP4", recorded_start="2026-11-27T08:00:00")
    ended = replace(cand, recorded_end=camera_wall_time(cand.mtime_ns))
    listing.append(ended, b"R", b"a.MP4")
    assert listing[0] == ended and listing[0].recorded_end


def test_a_recorded_end_that_is_not_its_mtime_is_kept_as_it_is() -> None:
    """The listing derives the end from the mtime; an end that is not that (none the scan
    makes) is kept beside the columns, never altered."""
    listing = Listing()
    odd = _plain(b"R/a.MP4", recorded_start="2026-11-27T08:00:00")
    odd = replace(odd, recorded_end="1999-01-01T00:00:00")
    listing.append(odd, b"R", b"a.MP4")
    assert listing[0] == odd


def _plain(rel: bytes, recorded_start: str = "") -> Candidate:
    return Candidate(
        rel_path=rel,
        size=10,
        mtime_ns=1_795_000_000_000_000_000,
        dev=1,
        ino=2,
        kind=FileKind.VIDEO,
        recorded_start=recorded_start,
        recorded_end="",
        segment=1,
        important=False,
        wipeable=True,
    )


def test_many_files_across_blocks_and_directories_are_found_again() -> None:
    """Names are kept in blocks of 4,096 and directories as runs: 10,000 files in three
    directories (one split around a subdirectory's files) read back and are found by path."""
    listing = Listing()
    expected: list[bytes] = []
    runs = [(b"A", range(0, 3000)), (b"A/03", range(0, 5000)), (b"A", range(5000, 7000))]
    for dir_rel, numbers in runs:
        for number in numbers:
            name = b"%05d.MP4" % number if dir_rel == b"A" else b"x%05d" % number
            cand = _plain(dir_rel + b"/" + name)
            listing.append(cand, dir_rel, name)
            expected.append(cand.rel_path)
    assert expected == sorted(expected)
    assert [c.rel_path for c in listing] == expected
    for index in (0, 4095, 4096, 4097, 8191, 8192, 9999):
        assert listing.find(expected[index]) == index
        assert listing.path(index) == expected[index]


@settings(max_examples=60, deadline=None)
@given(st.lists(_NAME, unique=True, max_size=300), st.integers(1, 7))
def test_a_directorys_names_come_back_sorted_from_runs(names: list[bytes], run: int) -> None:
    """agent.camera.dirnames: names added in any order, sorted run by run (here runs of a few
    names, to merge many), read back sorted, as often as asked."""
    sorted_names = SortedNames()
    with patch.object(dirnames, "RUN", run):
        for name in names:
            sorted_names.add(name)
        assert len(sorted_names) == len(names)
        assert list(sorted_names) == sorted(names)
        assert list(sorted_names) == sorted(names)
