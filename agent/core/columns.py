"""A read-only Sequence over one item builder, for the compact per-file views of a dock (the
scan's listing, a session's row ids and states kept in arrays): indexing, negative indexes,
bounds and slices behave as a list's, in one place. Pure data: no I/O.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

T = TypeVar("T")


class Indexed(Sequence[T]):
    """Subclasses say how many items there are and build the item at an index in range."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _at(self, index: int) -> T: ...

    @overload
    def __getitem__(self, at: int) -> T: ...

    @overload
    def __getitem__(self, at: slice) -> Sequence[T]: ...

    def __getitem__(self, at: int | slice) -> T | Sequence[T]:
        if isinstance(at, slice):
            return [self._at(i) for i in range(*at.indices(len(self)))]
        if at < 0:
            at += len(self)
        if not 0 <= at < len(self):
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._at(at)

    def __iter__(self) -> Iterator[T]:
        for index in range(len(self)):
            yield self._at(index)
