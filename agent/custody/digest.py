"""SHA-256 of a file the station holds (staged copies, sink copies), in one place.

Reads only, never follows a link, reuses the caller's buffer. Camera files are not hashed here:
offload hashes what it reads from the camera while copying it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def hash_file(path: Path, buffer: bytearray, drop_cache: bool = False) -> tuple[str, int]:
    """(hex sha256, bytes read). drop_cache: read what the disk holds, not the pages just
    written (posix_fadvise(2) POSIX_FADV_DONTNEED)."""
    digest = hashlib.sha256()
    view = memoryview(buffer)
    total = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if drop_cache:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while n := os.readv(fd, [view]):
            digest.update(view[:n])
            total += n
    finally:
        os.close(fd)
    return digest.hexdigest(), total
