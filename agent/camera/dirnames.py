"""The names of one directory's files in sorted order, held as bytes in one buffer.

A directory of 100,000 files listed as a sorted list of bytes objects held 8.8 MiB of them at
once (a 40-byte name is an 80-byte object and its pointer), and objects freed in any order but
their own leave the allocator's arenas in use. Here names are gathered in runs of RUN, each run
sorted (only its objects exist at once) and appended to a buffer; reading merges the runs
(heapq.merge), so the names come back sorted, one object at a time, as often as asked: its
length and two bytes a name. Pure data: lists nothing itself.
"""

from __future__ import annotations

import heapq
import itertools
from array import array
from collections.abc import Iterator

RUN = 1024


class SortedNames:
    """Add names (each once), then read them back in sorted order with `iter()`."""

    def __init__(self) -> None:
        self._blob = bytearray()
        self._lengths = array("H")  # each name's length (NAME_MAX is 255 bytes)
        self._runs: list[int] = []  # the index of each run's first name
        self._pending: list[bytes] = []

    def add(self, name: bytes) -> None:
        self._pending.append(name)
        if len(self._pending) >= RUN:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        self._runs.append(len(self._lengths))
        for name in sorted(self._pending):
            self._blob += name
            self._lengths.append(len(name))
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._lengths) + len(self._pending)

    def __iter__(self) -> Iterator[bytes]:
        self._flush()
        bounds = [*self._runs, len(self._lengths)]
        runs: list[Iterator[bytes]] = []
        offset = 0
        for first, end in itertools.pairwise(bounds):
            runs.append(self._run(offset, first, end))
            offset += sum(self._lengths[first:end])
        return runs[0] if len(runs) == 1 else heapq.merge(*runs)

    def _run(self, offset: int, first: int, end: int) -> Iterator[bytes]:
        blob, lengths = self._blob, self._lengths
        for index in range(first, end):
            stop = offset + lengths[index]
            yield bytes(blob[offset:stop])
            offset = stop
