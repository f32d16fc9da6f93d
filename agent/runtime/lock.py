"""The single-writer lock of a data directory (flock(2) on <data_dir>/dockagent.lock).

Whoever changes the queue (the daemon, an import, recovery, a rebuild) holds it; readers never need
it. The lock dies with its process, so a kill -9 leaves nothing to clean up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agent.core.errors import AlreadyRunning


class WriterLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "dockagent.lock"
        self.fd = -1

    def acquire(self, wait: bool = False) -> WriterLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            self.fd = -1
            raise AlreadyRunning(path=str(self.path), pid=holder) from exc
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
