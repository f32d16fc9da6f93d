"""The files one scan of a camera found, held in columns: a Sequence of Candidates whose memory is
about 130 bytes a file instead of the ~560 a Candidate object takes.

A camera of 100,000 small files held 53 MiB of Candidates for the whole dock, on top of the
~50 MiB any import starts with (issue 17: at most 64 MiB at 100,000 files). Here each file is its
name (the bytes object the scan listed, shared, not copied), an index into the table of
directories, and fixed-width columns (array(3)); the few texts a camera repeats (channel, note,
marker) are interned, a partner's clip is kept only for partners. `listing[i]` builds the
Candidate when asked, equal to the one appended.

Files are appended in the order of their paths (the scan walks so): `find` bisects. Holds no
file content and opens nothing.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import overload

from agent.core.model import Candidate, FileKind

_KINDS = tuple(FileKind)
_KIND_CODE = {kind: code for code, kind in enumerate(_KINDS)}
_IMPORTANT, _WIPEABLE, _HAS_END = 1, 2, 4
_NO_SEGMENT, _ODD_SEGMENT = -(2**63), -(2**63) + 1
# A camera wall time "YYYY-MM-DDThh:mm:ss" packs into the integer YYYYMMDDhhmmss; any other text
# (none today: the profile writes this form) is kept as it is, beside the columns.
_WALL = re.compile(rb"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\Z")
_NO_START, _ODD_START = 0, -1
_ODD_MTIME = -(2**63)


class Listing(Sequence[Candidate]):
    """Candidates in path order, stored compactly; read-only once the scan has built it."""

    def __init__(self) -> None:
        self._dirs: list[bytes] = []  # directory paths below the root (b"" for the root)
        self._names: list[bytes] = []
        self._dir = array("I")
        self._size = array("q")
        self._mtime = array("q")
        self._dev = array("Q")
        self._ino = array("Q")
        self._kind = array("B")
        self._flags = array("B")
        self._segment = array("q")
        self._start = array("q")
        self._texts: list[tuple[str, str, str]] = []  # (channel, note, marked_by)
        self._text_code: dict[tuple[str, str, str], int] = {}
        self._text = array("I")
        self._odd_start: dict[int, str] = {}
        self._odd_segment: dict[int, int] = {}
        self._odd_mtime: dict[int, int] = {}
        self._partner: dict[int, bytes] = {}

    def append(self, cand: Candidate, dir_rel: bytes, name: bytes) -> None:
        """Add a candidate whose path is dir_rel/name (name: the scan's own bytes object,
        kept as it is); paths must come in increasing order."""
        if self._dirs and self._dirs[-1] == dir_rel:
            dir_index = len(self._dirs) - 1
        else:
            dir_index = len(self._dirs)
            self._dirs.append(dir_rel)
        index = len(self._names)
        self._names.append(name)
        self._dir.append(dir_index)
        self._size.append(cand.size)
        if -(2**63) < cand.mtime_ns < 2**63:
            self._mtime.append(cand.mtime_ns)
        else:  # a time past 2262 (a hostile file system's): kept whole beside the column
            self._mtime.append(_ODD_MTIME)
            self._odd_mtime[index] = cand.mtime_ns
        self._dev.append(cand.dev)
        self._ino.append(cand.ino)
        self._kind.append(_KIND_CODE[cand.kind])
        flags = _IMPORTANT * cand.important + _WIPEABLE * cand.wipeable
        self._flags.append(flags | (_HAS_END if cand.recorded_end else 0))
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
        if self[index] != cand:  # a field this form cannot hold as it is: say so, never alter
            raise ValueError(f"candidate {cand.rel_path!r} does not survive its compact form")

    def _packed_start(self, index: int, text: str) -> int:
        if not text:
            return _NO_START
        match = _WALL.match(text.encode())
        packed = int(b"".join(match.groups())) if match is not None else _NO_START
        if packed == _NO_START:  # not that form, or all zeros (which would read as no start)
            self._odd_start[index] = text
            return _ODD_START
        return packed

    def _packed_segment(self, index: int, segment: int | None) -> int:
        # A name's segment digits are the camera's (hostile): any number, kept whole.
        if segment is None:
            return _NO_SEGMENT
        if _NO_SEGMENT + 1 < segment < 2**63:
            return segment
        self._odd_segment[index] = segment
        return _ODD_SEGMENT

    def path(self, index: int) -> bytes:
        """The path below the volume root of the file at `index`."""
        dir_rel = self._dirs[self._dir[index]]
        name = self._names[index]
        return dir_rel + b"/" + name if dir_rel else name

    def size(self, index: int) -> int:
        return self._size[index]

    def identity(self, index: int) -> tuple[bytes, int, int]:
        """(path, size, mtime_ns) of the file at `index`: what a row in custody is matched by."""
        return self.path(index), self._size[index], self._mtime_ns(index)

    def _mtime_ns(self, index: int) -> int:
        mtime_ns = self._mtime[index]
        return self._odd_mtime[index] if mtime_ns == _ODD_MTIME else mtime_ns

    def find(self, rel_path: bytes) -> int | None:
        """The index of the file listed at this path, or None."""
        index = bisect_left(_Paths(self), rel_path)
        if index < len(self) and self.path(index) == rel_path:
            return index
        return None

    def __len__(self) -> int:
        return len(self._names)

    @overload
    def __getitem__(self, index: int) -> Candidate: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Candidate]: ...

    def __getitem__(self, index: int | slice) -> Candidate | Sequence[Candidate]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("listing index out of range")
        return self._candidate(index)

    def __iter__(self) -> Iterator[Candidate]:
        for index in range(len(self)):
            yield self._candidate(index)

    def _candidate(self, index: int) -> Candidate:
        flags = self._flags[index]
        mtime_ns = self._mtime_ns(index)
        segment = self._segment[index]
        channel, note, marked_by = self._texts[self._text[index]]
        start = self._start_text(index)
        return Candidate(
            rel_path=self.path(index),
            size=self._size[index],
            mtime_ns=mtime_ns,
            dev=self._dev[index],
            ino=self._ino[index],
            kind=_KINDS[self._kind[index]],
            recorded_start=start,
            recorded_end=camera_wall_time(mtime_ns) if flags & _HAS_END else "",
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

    def _start_text(self, index: int) -> str:
        packed = self._start[index]
        if packed == _NO_START:
            return ""
        if packed == _ODD_START:
            return self._odd_start[index]
        digits = f"{packed:014d}"
        return (
            f"{digits[0:4]}-{digits[4:6]}-{digits[6:8]}T"
            f"{digits[8:10]}:{digits[10:12]}:{digits[12:14]}"
        )


class _Paths(Sequence[bytes]):
    """The listing's paths as a sequence, for bisect (built one at a time as it compares)."""

    def __init__(self, listing: Listing) -> None:
        self.listing = listing

    def __len__(self) -> int:
        return len(self.listing)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            return [self.listing.path(i) for i in range(*index.indices(len(self)))]
        return self.listing.path(index)


def camera_wall_time(mtime_ns: int) -> str:
    """The camera's zone-less wall time for a file time as the FAT driver reported it.

    FAT stores local wall time without a zone; the FUSE drivers turn it into an epoch using the
    host's zone, so converting back with the host's zone gives the camera's wall clock reading.
    """
    return datetime.fromtimestamp(mtime_ns // 1_000_000_000).isoformat()
