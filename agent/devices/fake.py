"""The `fake` source: device events written as JSON files into a spool directory.

For tests and the demo: it stands in for the USB bus only. Each `*.json` file is one event
({"action": "inserted", "key": ..., "vendor_id": ..., "model_id": ..., "serial": ...,
"usb_interfaces": ..., "mountpoint": ...}); it is renamed to `*.done` once queued. Everything
after the event (allow-list, mounting, import) is the real program.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from pathlib import Path

from agent.core import log
from agent.devices.events import Action, DeviceEvent, DeviceIdentity

_log = log.get(__name__)
_FIELDS = (
    "key",
    "vendor_id",
    "model_id",
    "serial",
    "fs_type",
    "fs_label",
    "devnode",
    "usb_interfaces",
    "mountpoint",
    "port_path",
)


def write_event(spool: Path, name: str, **fields: str) -> Path:
    """Drop one event into a spool (the demo and the tests use this)."""
    spool.mkdir(parents=True, exist_ok=True)
    tmp = spool / f".{name}.tmp"
    tmp.write_text(json.dumps(fields))
    final = spool / f"{name}.json"
    os.replace(tmp, final)
    return final


class FakeSource:
    name = "fake"

    def __init__(self, spool: str, poll_s: float = 0.1) -> None:
        self.spool = Path(spool)
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, events: queue.Queue[DeviceEvent]) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(
            target=self._run, args=(events,), daemon=True, name="fake-source"
        )
        self._thread.start()

    def _run(self, events: queue.Queue[DeviceEvent]) -> None:
        while not self._stop.is_set():
            for path in sorted(self.spool.glob("*.json")):
                try:
                    raw = json.loads(path.read_text())
                    event = DeviceEvent(
                        Action(raw.get("action", "inserted")),
                        DeviceIdentity(**{k: str(raw.get(k, "")) for k in _FIELDS}),
                        self.name,
                    )
                except (OSError, ValueError, TypeError) as exc:
                    _log.error("fake.event_unreadable", file=path.name, error=str(exc))
                    path.rename(path.with_suffix(".bad"))
                    continue
                events.put(event)
                path.rename(path.with_suffix(".done"))
            self._stop.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
