"""What a sink is: the contract between the upload pool and a destination.

A sink (agent.sync.tus_sink, agent.sync.directory) is handed one job (agent.sync.jobs.UploadJob),
reports what must survive a restart through a Progress, and answers with a Confirmation whose
level is one of the ordered confirmation levels of specs/upload-protocol.md. It is also handed
the chain's time-stamp tokens (agent.sync.jobs.TokenJob), each a few KiB sent whole. A sink
never touches rows itself: it reports progress through the callbacks and the pool records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent.core.config import CONFIRM_LEVELS
from agent.sync.jobs import TokenJob, UploadJob


def level_rank(level: str) -> int:
    """complete < checksummed < verified (upload-protocol.md "Confirmation levels")."""
    return CONFIRM_LEVELS.index(level)


@dataclass(frozen=True)
class Confirmation:
    level: str  # one of CONFIRM_LEVELS: what the sink proved
    ref: str  # where it is: the upload URL or the archived path
    # What the sink itself computed of what it holds, where it did: the directory sink's SHA-256
    # (hex) of its re-read, a tus server's Repr-Digest as `sha-512=<hex>`.
    digest: str = ""


class Progress(Protocol):
    """How a sink reports what must survive a restart (the pool stores it)."""

    def url(self, url: str, expires_at: str | None) -> None: ...

    def offset(self, offset: int, checksummed: bool) -> None: ...

    def forget(self) -> None: ...


class Sink(Protocol):
    name: str  # identifies the destination; a stored upload URL is reused only with it
    # The longest a working send may go without drawing on its throttle (the pool's sign of
    # life for the watchdog): one request under its total deadline plus a short retry wait.
    longest_step_s: float

    def send(self, job: UploadJob, progress: Progress) -> Confirmation: ...

    # One kept RFC 3161 token, whole (agent.sync.token_delivery); where the sink holds it,
    # once it acknowledged every byte.
    def send_token(self, job: TokenJob) -> str: ...

    def close(self) -> None: ...
