"""Sync: sealed evidence to a sink (tus server or directory), confirmed before anything is freed.

What the sinks and the queue share: the job handed to a sink, what a sink reports back, and the
ordered confirmation levels of specs/upload-protocol.md. A sink never touches rows itself: it
reports progress through the callbacks and the worker records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.core.config import CONFIRM_LEVELS


def level_rank(level: str) -> int:
    """complete < checksummed < verified (upload-protocol.md "Confirmation levels")."""
    return CONFIRM_LEVELS.index(level)


@dataclass(frozen=True)
class UploadJob:
    file_id: int
    sha256: str
    size: int
    path: Path  # the staged copy
    ext: str
    ingested_at: str  # RFC 3339, UTC
    metadata: dict[str, str]  # upload-protocol.md "Creating an upload"
    custody: dict[str, Any]  # the signed envelope (agent.custody.seal.envelope)
    resume_url: str | None = None
    resume_offset: int = 0
    resume_checksummed: bool = True
    resume_expires_at: str | None = None


@dataclass(frozen=True)
class Confirmation:
    level: str  # one of CONFIRM_LEVELS: what the sink proved
    ref: str  # where it is: the upload URL or the archived path


class Progress(Protocol):
    """How a sink reports what must survive a restart (the worker stores it)."""

    def url(self, url: str, expires_at: str | None) -> None: ...

    def offset(self, offset: int, checksummed: bool) -> None: ...

    def forget(self) -> None: ...


class Sink(Protocol):
    name: str  # identifies the destination; a stored upload URL is reused only with it

    def send(self, job: UploadJob, progress: Progress) -> Confirmation: ...

    def close(self) -> None: ...
