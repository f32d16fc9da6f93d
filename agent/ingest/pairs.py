"""What a dock keeps of each of its files, compactly: (file id, listing index) pairs in two
arrays, and file states one byte each.

A session names the files it copies, and those it proves held, as pairs of a row's id and the
file's index in the scan's listing. As a list of tuples that is ~120 bytes a file (12 MiB for a
camera of 100,000 files); here it is 16. Pure data: no I/O.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

from agent.core.columns import Indexed
from agent.core.model import FileState

_STATES = tuple(FileState)
_STATE_CODE = {state: code for code, state in enumerate(_STATES)}


class Pairs(Indexed[tuple[int, int]]):
    """(file id, index) pairs in the order appended."""

    def __init__(self) -> None:
        self.ids = array("q")
        self.indexes = array("q")

    def append(self, file_id: int, index: int) -> None:
        self.ids.append(file_id)
        self.indexes.append(index)

    def __len__(self) -> int:
        return len(self.ids)

    def _at(self, index: int) -> tuple[int, int]:
        return self.ids[index], self.indexes[index]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self.ids, self.indexes, strict=True)


class States(Indexed[FileState]):
    """File states in the order appended, a byte each (a list took 8 and its copies more)."""

    def __init__(self) -> None:
        self.codes = bytearray()

    def append(self, state: FileState) -> None:
        self.codes.append(_STATE_CODE[state])

    def __len__(self) -> int:
        return len(self.codes)

    def _at(self, index: int) -> FileState:
        return _STATES[self.codes[index]]

    def __iter__(self) -> Iterator[FileState]:
        return (_STATES[code] for code in self.codes)
