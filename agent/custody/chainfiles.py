"""The custody chain kept beside staging, outside the database: audit sidecars and the head.

File records have their signed sidecar next to the staged file (agent.custody.seal); technician
actions have no file, so each audit record's envelope is kept as
`<staging>/_chain/<seq>.audit.json`, and `head.json` names the newest record committed (both names
are agent.custody.staging's). With the file sidecars they let `dockagent rebuild` restore the whole
chain, and the head lets every command notice a database that lost committed records (an old copy, a
copy without its -wal). Each file is written only after its record committed, so none describes a
record that does not exist. This module signs nothing and opens no database.

Modes: `_chain` is 0710 and the head 0640, so that a technician of the station's group can check
the database against the head; audit sidecars stay 0600, like everything else in staging.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agent.core import durable
from agent.core.errors import StoreBehind
from agent.custody import staging


@dataclass(frozen=True)
class Head:
    seq: int
    record_hash: str


def write_audit_sidecar(staging_root: Path, seq: int, data: bytes) -> None:
    """Write an audit record's sidecar once; an equal one already there is fine."""
    path = staging.audit_sidecar_path(staging_root, seq)
    durable.ensure_dir(path.parent, durable.PASS_DIR_MODE)
    try:
        durable.write_file(path.parent, path.name, data)
    except FileExistsError:
        if path.read_bytes() != data:
            # Another chain wrote this seq: the database is an older copy than staging.
            raise StoreBehind(
                path=str(staging_root.parent / "dockagent.db"),
                detail=f"{path} holds a different signed record {seq}",
            ) from None


def write_head(staging_root: Path, head: Head) -> None:
    """Replace head.json: durable, and never torn (a power cut leaves the old or the new one).

    Two processes may race (the daemon sealing, a technician enrolling); the loser leaves a head
    that is behind, which is harmless: only a head ahead of the database means lost state.
    """
    path = staging.head_path(staging_root)
    durable.ensure_dir(path.parent, durable.PASS_DIR_MODE)
    data = json.dumps({"seq": head.seq, "record_hash": head.record_hash}, sort_keys=True)
    durable.replace_file(path.parent, path.name, data.encode() + b"\n", durable.GROUP_READ_MODE)


def read_head(staging_root: Path) -> Head | None:
    """The head recorded beside staging; None if there is none. ValueError if unreadable."""
    path = staging.head_path(staging_root)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    seq, digest = (data.get("seq"), data.get("record_hash")) if isinstance(data, dict) else (0, 0)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(digest, str):
        raise ValueError(f"{path}: not a chain head")
    return Head(seq, digest)
