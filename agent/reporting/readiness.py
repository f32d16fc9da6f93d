"""Each camera's readiness at its last dock, as `dockagent status` and the metrics report it.

The verdict itself is decided at the dock (agent.health.readiness) and stored with the health
record; this only reads it back, keeping the reasons that are more than information. A reason
reads "area: text", which the metrics parse for their reason label.
"""

from __future__ import annotations

from typing import Any

from agent.store import Store


def readiness_by_camera(store: Store) -> list[dict[str, Any]]:
    """Each camera's verdict at its last dock, with the reasons that are not information."""
    out = []
    for h in store.latest_health():
        out.append(
            {
                "camera": h.device_serial,
                "session_id": h.session_id,
                "docked_at_utc": h.docked_at,
                "readiness": h.readiness or "not assessed",
                "reasons": [
                    f"{r['area']}: {r['text']}" for r in h.reasons() if r["severity"] != "info"
                ],
            }
        )
    return out
