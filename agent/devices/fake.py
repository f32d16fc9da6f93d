"""The `fake` source: device events written as JSON files into a spool directory.

For tests and the demo: it stands in for the USB bus only. Each `*.json` file is one event
({"action": "inserted", "key": ..., "vendor_id": ..., "model_id": ..., "serial": ...,
"usb_interfaces": ..., "mountpoint": ...}); it is renamed to `*.done` once queued. Everything
after the event (allow-list, mounting, import) is the real program.

The spool is watched with inotify (watchdog), so an idle daemon does not wake to list it: a
file renamed into it wakes the source at once, and it is listed again every RESCAN_S besides.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

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


# The spool is listed this often even without a change seen (a watch that missed one), and
# every POLL_S where no watch could be set (inotify(7): max_user_instances reached).
RESCAN_S = 5.0
POLL_S = 0.1


class _Wake(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.wake.set()


class FakeSource:
    name = "fake"

    def __init__(self, spool: str, poll_s: float = RESCAN_S) -> None:
        self.spool = Path(spool)
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def start(self, events: queue.Queue[DeviceEvent]) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        # Watch first, then list: an event written in between is seen by the listing.
        observer = Observer()
        try:
            observer.schedule(_Wake(self._wake), str(self.spool), recursive=False)
            observer.daemon = True
            observer.start()
        except OSError as exc:
            _log.warning("fake.watch_failed", error=str(exc), poll_s=POLL_S)
            self.poll_s = min(self.poll_s, POLL_S)
        else:
            self._observer = observer
        self._thread = threading.Thread(
            target=self._run, args=(events,), daemon=True, name="fake-source"
        )
        self._thread.start()

    def _run(self, events: queue.Queue[DeviceEvent]) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the listing: a file renamed in during it wakes the next
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
            self._wake.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
