"""The files one scan of a camera found, held in columns: a Sequence of Candidates whose memory is
about 110 bytes a file with a 40-byte name, instead of the ~560 a Candidate object takes.

A camera of 100,000 small files held 53 MiB of Candidates for the whole dock, on top of the
~50 MiB any import starts with (issue 17: at most 64 MiB at 100,000 files). Here each file is its
name in one shared buffer (a bytes object of its own costs 33 bytes more, and the names of a
directory the scan lists are released as the listing takes them), an index into the table of
directories, and fixed-width columns (array(3)); the few texts a camera repeats (channel, note,
marker) are interned, a partner's clip is kept only for partners, and what a column cannot
hold (a device other than its directory's, a time past 2106) beside it. `listing[i]` builds
the Candidate when asked, equal to the one appended (tests/unit/test_listing.py, Hypothesis).

Files are appended in the order of their paths (the scan walks so): `find` bisects. Holds no
file content and opens nothing.
"""

from __future__ import annotations

import calendar
import contextlib
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime

from agent.core.columns import Indexed
from agent.core.model import Candidate, FileKind

_BLOCK = 4096
_KINDS = tuple(FileKind)
_KIND_CODE = {kind: code for code, kind in enumerate(_KINDS)}
_KIND_BITS = 3
_IMPORTANT, _WIPEABLE, _HAS_END = 1, 2, 4  # above the kind's bits
_ODD_SIZE = 2**32 - 1
_NO_SEGMENT, _ODD_SEGMENT = -(2**31), -(2**31) + 1
# A camera wall time "YYYY-MM-DDThh:mm:ss" packs into its seconds from 1970 (as if UTC: it has
# no zone, and only reads back as the same text); any other text (none today: the profile
# writes this form) is kept as it is, beside the columns.
_WALL = re.compile(rb"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\Z")
_NO_START, _ODD_START = 0, 2**32 - 1
_ODD_MTIME = -(2**63)


class Listing(Indexed[Candidate]):
    """Candidates in path order, stored compactly; read-only once the scan has built it."""

    def __init__(self) -> None:
        # Runs of files of one directory: its path below the root (b"" for the root), and the
        # index of the run's first file (a directory's files are a run between its subdirs').
        self._dirs: list[bytes] = []
        self._dir_starts = array("Q")
        self._blob = bytearray()  # every file's name, one after the other
        # Where each name ends in the blob, from its block's base: a block of _BLOCK names
        # (at most 1,024 bytes each, FUSE_NAME_MAX) fits 32 bits.
        self._bases = array("Q")
        self._ends = array("I")
        self._size = array("I")  # a file of 4 GiB or more: _ODD_SIZE, its size beside
        self._mtime = array("q")
        self._dir_dev: list[int] = []  # the device of each directory's first file
        self._ino = array("Q")
        self._flags = array("B")  # the kind's code in the low bits, then the flags
        self._segment = array("i")
        self._start = array("I")  # seconds from 1970 of a naive wall time, 0: none
        self._texts: list[tuple[str, str, str]] = []  # (channel, note, marked_by)
        self._text_code: dict[tuple[str, str, str], int] = {}
        self._text = array("I")
        self._odd_start: dict[int, str] = {}
        self._odd_segment: dict[int, int] = {}
        self._odd_dev: dict[int, int] = {}
        self._odd_size: dict[int, int] = {}
        self._odd_end: dict[int, str] = {}
        self._odd_mtime: dict[int, int] = {}
        self._partner: dict[int, bytes] = {}

    def append(self, cand: Candidate, dir_rel: bytes, name: bytes) -> None:
        """Add a candidate whose path is dir_rel/name; paths must come in increasing order."""
        if self._dirs and self._dirs[-1] == dir_rel:
            dir_index = len(self._dirs) - 1
        else:
            dir_index = len(self._dirs)
            self._dirs.append(dir_rel)
            self._dir_starts.append(len(self._ends))
            self._dir_dev.append(cand.dev)
        index = len(self._ends)
        if index % _BLOCK == 0:
            self._bases.append(len(self._blob))
        self._blob += name
        self._ends.append(len(self._blob) - self._bases[-1])
        if 0 <= cand.size < _ODD_SIZE:
            self._size.append(cand.size)
        else:
            self._size.append(_ODD_SIZE)
            self._odd_size[index] = cand.size
        if -(2**63) < cand.mtime_ns < 2**63:
            self._mtime.append(cand.mtime_ns)
        else:  # a time past 2262 (a hostile file system's): kept whole beside the column
            self._mtime.append(_ODD_MTIME)
            self._odd_mtime[index] = cand.mtime_ns
        if cand.dev != self._dir_dev[dir_index]:  # a file on another device than its siblings
            self._odd_dev[index] = cand.dev
        self._ino.append(cand.ino)
        flags = _IMPORTANT * cand.important + _WIPEABLE * cand.wipeable
        if cand.recorded_end:
            flags |= _HAS_END
            if cand.recorded_end != _wall_time_or_none(cand.mtime_ns):  # not the scan's: kept
                self._odd_end[index] = cand.recorded_end
        self._flags.append(_KIND_CODE[cand.kind] | flags << _KIND_BITS)
        self._segment.append(self._packed_segment(index, cand.segment))
        self._start.append(self._packed_start(index, cand.recorded_start))
        texts = (cand.channel, cand.note, cand.marked_by)
        code = self._text_code.get(texts)
        if code is None:
            code = self._text_code[texts] = len(self._texts)
            self._texts.append(texts)
        self._text.append(code)
        if cand.partner_of:
            self._partner[index] = cand.partner_of

    def _packed_start(self, index: int, text: str) -> int:
        if not text:
            return _NO_START
        packed = _NO_START
        if _WALL.match(text.encode()) is not None:
            with contextlib.suppress(ValueError):
                packed = calendar.timegm(datetime.fromisoformat(text).timetuple())
        # Kept beside the columns: another form, a time outside 1970-2106, or one that would
        # not read back as the same text.
        if not _NO_START < packed < _ODD_START or _wall_text(packed) != text:
            self._odd_start[index] = text
            return _ODD_START
        return packed

    def _packed_segment(self, index: int, segment: int | None) -> int:
        # A name's segment digits are the camera's (hostile): any number, kept whole.
        if segment is None:
            return _NO_SEGMENT
        if _ODD_SEGMENT < segment < 2**31:
            return segment
        self._odd_segment[index] = segment
        return _ODD_SEGMENT

    def path(self, index: int) -> bytes:
        """The path below the volume root of the file at `index`."""
        dir_rel = self._dirs[self._dir_of(index)]
        base = self._bases[index // _BLOCK]
        start = base + (self._ends[index - 1] if index % _BLOCK else 0)
        name = bytes(self._blob[start : base + self._ends[index]])
        return dir_rel + b"/" + name if dir_rel else name

    def _dir_of(self, index: int) -> int:
        return bisect_right(self._dir_starts, index) - 1

    def size(self, index: int) -> int:
        size = self._size[index]
        return self._odd_size[index] if size == _ODD_SIZE else size

    def identity(self, index: int) -> tuple[bytes, int, int]:
        """(path, size, mtime_ns) of the file at `index`: what a row in custody is matched by."""
        return self.path(index), self.size(index), self._mtime_ns(index)

    def _mtime_ns(self, index: int) -> int:
        mtime_ns = self._mtime[index]
        return self._odd_mtime[index] if mtime_ns == _ODD_MTIME else mtime_ns

    def find(self, rel_path: bytes) -> int | None:
        """The index of the file listed at this path, or None."""
        index = bisect_left(range(len(self)), rel_path, key=self.path)
        if index < len(self) and self.path(index) == rel_path:
            return index
        return None

    def __len__(self) -> int:
        return len(self._ends)

    def _at(self, index: int) -> Candidate:
        flags = self._flags[index] >> _KIND_BITS
        mtime_ns = self._mtime_ns(index)
        segment = self._segment[index]
        channel, note, marked_by = self._texts[self._text[index]]
        start = self._start_text(index)
        return Candidate(
            rel_path=self.path(index),
            size=self.size(index),
            mtime_ns=mtime_ns,
            dev=self._odd_dev.get(index, self._dir_dev[self._dir_of(index)]),
            ino=self._ino[index],
            kind=_KINDS[self._flags[index] & (1 << _KIND_BITS) - 1],
            recorded_start=start,
            recorded_end=self._end_text(index, mtime_ns) if flags & _HAS_END else "",
            segment=self._odd_segment[index]
            if segment == _ODD_SEGMENT
            else (None if segment == _NO_SEGMENT else segment),
            important=bool(flags & _IMPORTANT),
            wipeable=bool(flags & _WIPEABLE),
            channel=channel,
            partner_of=self._partner.get(index, b""),
            note=note,
            marked_by=marked_by,
        )

    def _end_text(self, index: int, mtime_ns: int) -> str:
        odd = self._odd_end.get(index)
        return camera_wall_time(mtime_ns) if odd is None else odd

    def _start_text(self, index: int) -> str:
        packed = self._start[index]
        if packed == _NO_START:
            return ""
        if packed == _ODD_START:
            return self._odd_start[index]
        return _wall_text(packed)


def _wall_time_or_none(mtime_ns: int) -> str | None:
    try:
        return camera_wall_time(mtime_ns)
    except (ValueError, OverflowError, OSError):  # a time no calendar holds
        return None


def size_at(candidates: Sequence[Candidate], index: int) -> int:
    """The listed size of candidates[index], without building the Candidate of a Listing."""
    if isinstance(candidates, Listing):
        return candidates.size(index)
    return candidates[index].size


def _wall_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat()


def camera_wall_time(mtime_ns: int) -> str:
    """The camera's zone-less wall time for a file time as the FAT driver reported it.

    FAT stores local wall time without a zone; the FUSE drivers turn it into an epoch using the
    host's zone, so converting back with the host's zone gives the camera's wall clock reading.
    """
    return datetime.fromtimestamp(mtime_ns // 1_000_000_000).isoformat()
