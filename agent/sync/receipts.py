"""Upload receipts beside the staged file, so a rebuilt database never uploads a file twice.

`<staged>.upload.json` (named by agent.custody.staging) says where the file's upload lives (the sink
and the tus upload URL, written as soon as the server created it and before the first byte is sent)
and, once the sink confirmed it, at which level and where. The database stays the truth while it is
whole; after `dockagent rebuild` a receipt lets the queue resume the upload with HEAD instead of a
new POST, and keeps a confirmed file confirmed (also one whose staged copy was purged). A receipt is
a hint bound to its file by id and hash, never evidence: it decides no confirmation on its own while
the database holds one, and this module talks to no sink.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.core import durable, log
from agent.custody.staging import receipt_path
from agent.store import FileRow

_log = log.get(__name__)


@dataclass
class Receipt:
    file_id: int
    sha256: str
    sink: str = ""
    upload_url: str | None = None
    upload_expires_at: str | None = None
    confirmed_at: str | None = None
    confirm_level: str | None = None
    sink_ref: str | None = None

    def as_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode() + b"\n"


def read(staging_root: Path, staged_rel: str) -> Receipt | None:
    """The receipt of a staged file, None if there is none; ValueError if it is unreadable."""
    path = receipt_path(staging_root, staged_rel)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return parse(raw, str(path))


def parse(raw: bytes, where: str) -> Receipt:
    """A receipt's bytes (beside its copy, or archived once the copy was purged: agent.custody
    .archive); ValueError naming `where` if they hold none."""
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"{where}: {exc}") from exc
    try:
        receipt = Receipt(**data)
    except TypeError as exc:
        raise ValueError(f"{where}: not an upload receipt") from exc
    if not isinstance(receipt.file_id, int) or not isinstance(receipt.sha256, str):
        raise ValueError(f"{where}: not an upload receipt")
    return receipt


class ReceiptWriter:
    """The receipt of one file's upload, rewritten whole (durably, never torn) at each step."""

    def __init__(self, staging_root: Path, row: FileRow) -> None:
        self.staging_root = staging_root
        self.staged_rel = str(row.staged_path)
        # An upload resumed from the row (no new URL) keeps its URL in the receipt.
        self.receipt = Receipt(
            row.id,
            str(row.sha256),
            sink=row.upload_sink or "",
            upload_url=row.upload_url,
            upload_expires_at=row.upload_expires_at,
        )

    def _write(self) -> None:
        path = receipt_path(self.staging_root, self.staged_rel)
        durable.replace_file(path.parent, path.name, self.receipt.as_bytes())

    def url(self, sink: str, url: str, expires_at: str | None) -> None:
        """Before any byte is sent: an upload that is lost with the database can be found again."""
        self.receipt.sink, self.receipt.upload_url = sink, url
        self.receipt.upload_expires_at = expires_at
        self._write()

    def confirmed(self, sink: str, level: str, ref: str, at: str) -> None:
        """After the row is confirmed. Failing to write is logged, not raised: the row is the
        truth, and without the receipt a rebuild asks the sink again (HEAD) instead."""
        self.receipt.sink, self.receipt.confirm_level = sink, level
        self.receipt.sink_ref, self.receipt.confirmed_at = ref, at
        try:
            self._write()
        except OSError as exc:
            _log.warning("upload.receipt_failed", file_id=self.receipt.file_id, reason=str(exc))
