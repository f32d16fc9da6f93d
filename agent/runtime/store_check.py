"""The daemon's whole-database check: PRAGMA quick_check once it is ready, then once a day.

Reading every page costs about a second per 300 MB of database, and a year of a busy station
is several GB: done before READY it made the service's start grow with its history, and done
at every open it made every command do so. So the daemon reads it here, on a connection and a
thread of its own while it serves, records when the database last passed (`dockagent doctor`
shows it), and on damage stops with the store's own error (StoreCorrupt: its message and exit
status name `dockagent rebuild`), as it did when the check came before READY. It repairs
nothing and writes nothing but the time of a check passed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.core import log, wallclock
from agent.core.errors import StoreCorrupt, describe
from agent.store import Store

_log = log.get(__name__)

EVERY_S = 24 * 3600.0
# A check that could not run (the database busy beyond its timeout, say) is tried again
# sooner than a day.
RETRY_S = 3600.0


class WholeCheck(threading.Thread):
    """Reads the whole database now and every EVERY_S until `stopping`; calls `damaged` with
    the StoreCorrupt it found, once, and stops."""

    def __init__(
        self,
        data_dir: Path,
        stopping: threading.Event,
        damaged: Callable[[StoreCorrupt], None],
        every_s: float = EVERY_S,
    ) -> None:
        super().__init__(name="store-check", daemon=True)
        self.data_dir = data_dir
        self.stopping = stopping
        self.damaged = damaged
        self.every_s = every_s

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.check_once()
            except StoreCorrupt as exc:
                _log.error("store.damaged", reason=exc.message)
                self.damaged(exc)
                return
            except Exception as exc:  # any other failure: said, and tried again later
                _log.warning("store.check_failed", reason=describe(exc), retry_in_s=RETRY_S)
                self.stopping.wait(RETRY_S)
                continue
            _log.info("store.checked", seconds=round(time.monotonic() - started, 3))
            self.stopping.wait(self.every_s)

    def check_once(self) -> None:
        store = Store.open(self.data_dir, create=False)
        try:
            store.check_whole()
            store.note_whole_check(wallclock.utc_now())
        finally:
            store.close()
