"""How far the copy of one camera is, told to the store and to whoever watches (a progress bar).

The copier tells each file it starts and every chunk it copies; this keeps the counts and
writes them to the store (one short row per session, agent.store.progress) at most once every
WRITE_INTERVAL_S, and once more when the copy ends: a progress write is a commit, and a commit
per buffer would cost the copy its speed. Watchers are called on every chunk with the counts
(their drawing is theirs to throttle). It never touches a camera file nor a file's row, and a
failure to write progress never stops a copy: it is only progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.core import log
from agent.store import CopyProgress, DatabaseError, Store

_log = log.get(__name__)

WRITE_INTERVAL_S = 0.5  # at most two progress commits a second per camera


@dataclass
class Counts:
    bytes_done: int = 0
    bytes_total: int = 0
    file_id: int | None = None
    file_name: str = ""
    file_done: int = 0
    file_total: int = 0


Watcher = Callable[[Counts], None]


class Progress:
    """The copy progress of one session; a no-op until begin() names the session."""

    def __init__(self, store: Store | None, now: Callable[[], str]) -> None:
        self.store = store
        self.now = now
        self.session_id: int | None = None
        self.counts = Counts()
        self.watchers: list[Watcher] = []
        self._written = 0.0
        self._failed = False

    def begin(self, session_id: int, more_bytes: int) -> None:
        """`more_bytes` are to be copied in this session (added to any counted before)."""
        self.session_id = session_id
        self.counts.bytes_total += more_bytes
        self._write()

    def file_started(self, file_id: int, name: str, size: int) -> None:
        c = self.counts
        c.file_id, c.file_name, c.file_done, c.file_total = file_id, name, 0, size
        self._tell()

    def advanced(self, nbytes: int) -> None:
        c = self.counts
        c.file_done += nbytes
        c.bytes_done += nbytes
        self._tell()
        if time.monotonic() - self._written >= WRITE_INTERVAL_S:
            self._write()

    def file_ended(self, copied: bool) -> None:
        """A file that was not copied whole (failed, changed, skipped) leaves the total."""
        c = self.counts
        if not copied:
            c.bytes_done -= c.file_done
            c.bytes_total -= c.file_total
            c.file_done = 0
        self._tell()

    def finish(self) -> None:
        self._write()

    def _tell(self) -> None:
        for watcher in self.watchers:
            watcher(self.counts)

    def _write(self) -> None:
        self._written = time.monotonic()
        if self.store is None or self.session_id is None or self._failed:
            return
        c = self.counts
        try:
            self.store.put_copy_progress(
                CopyProgress(
                    self.session_id,
                    c.bytes_done,
                    c.bytes_total,
                    c.file_id,
                    c.file_done,
                    c.file_total,
                    self.now(),
                )
            )
        except DatabaseError as exc:
            # Only progress: the copy goes on, and its rows say what it did.
            self._failed = True
            _log.warning("progress.write_failed", session_id=self.session_id, error=str(exc))
