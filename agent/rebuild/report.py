"""What one `dockagent rebuild` found and did: the record every step of it adds to.

Counts and names only, for the technician (printed or --json) and the signed `store.rebuilt`
record. Each problem is one line naming a gap, a sidecar or a record; none is ever dropped.
This module decides nothing and touches no file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RebuildReport:
    damage: str
    moved_aside: list[str] = field(default_factory=list)
    records: int = 0
    salvaged: int = 0  # records taken from the damaged database (their sidecar was missing)
    files: int = 0
    confirmed: int = 0
    purged: int = 0
    resumable: int = 0  # sealed, with the upload the server already holds part of
    reconfirm: int = 0  # confirmed by a receipt, copy still here: sealed until the sink says so
    sessions: int = 0
    devices: int = 0
    assignments: int = 0
    set_aside: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        return not self.problems

    def audit_details(self) -> dict[str, Any]:
        """The details signed into the chain as `store.rebuilt` (scalars only)."""
        return {
            "damage": self.damage[:300],
            "moved_aside": ", ".join(self.moved_aside),
            "records": self.records,
            "files": self.files,
            "confirmed": self.confirmed,
            "reconfirm": self.reconfirm,
            "sessions": self.sessions,
            "set_aside": len(self.set_aside),
            "problems": len(self.problems),
        }
