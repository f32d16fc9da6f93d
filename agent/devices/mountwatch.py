"""The `mountwatch` source: cameras appear as mount points below a watched root.

For stations where udev + systemd-mount (or udisks2) mount the camera: each camera is mounted
at `<mount_root>/<USB serial>`. A mount point appearing below the root is an insert, its
disappearance (unmounted, or its directory removed) a remove. The kernel flags every change
of the mount table on /proc/self/mountinfo with POLLPRI (proc(5)); watchdog reports directories
appearing and going. This module reads no file on any volume.
"""

from __future__ import annotations

import os
import queue
import select
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from agent.core import log
from agent.devices.events import Action, DeviceEvent, DeviceIdentity

_log = log.get(__name__)
_RESCAN_S = 1.0  # also rescan periodically: a dead FUSE mount changes nothing in the table


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (proc(5)).
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def mounts_below(root: str) -> dict[str, str]:
    """Mount points strictly below `root` (one level) and their file-system types."""
    found: dict[str, str] = {}
    prefix = root.rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 10:
                continue
            point = _unescape(fields[4])
            sep = fields.index("-", 6)
            fstype = fields[sep + 1]
            if point.startswith(prefix) and "/" not in point[len(prefix) :]:
                found[point] = fstype
    return found


class _Wake(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.wake.set()


class MountWatchSource:
    name = "mountwatch"

    def __init__(self, mount_root: str) -> None:
        self.root = mount_root
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def start(self, events: queue.Queue[DeviceEvent]) -> None:
        Path(self.root).mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(_Wake(self._wake), self.root, recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer
        # Watch first, then list what is there, then follow changes (present vs inserted).
        known = mounts_below(self.root)
        for point, fstype in sorted(known.items()):
            events.put(self._event(Action.PRESENT, point, fstype))
        for target in (self._watch_mount_table, self._follow):
            thread = threading.Thread(
                target=target,
                args=(events, known),
                daemon=True,
                name=f"mountwatch-{target.__name__}",
            )
            thread.start()
            self._threads.append(thread)

    def _event(self, action: Action, point: str, fstype: str) -> DeviceEvent:
        name = os.path.basename(point)
        identity = DeviceIdentity(key=point, serial=name, fs_type=fstype, mountpoint=point)
        return DeviceEvent(action, identity, self.name)

    def _watch_mount_table(self, _events: object, _known: object) -> None:
        with open("/proc/self/mountinfo", "rb") as fh:
            poller = select.poll()
            poller.register(fh, select.POLLPRI | select.POLLERR)
            while not self._stop.is_set():
                if poller.poll(500):
                    fh.read()  # re-arm
                    self._wake.set()

    def _follow(self, events: queue.Queue[DeviceEvent], known: dict[str, str]) -> None:
        while not self._stop.is_set():
            self._wake.wait(_RESCAN_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                now = mounts_below(self.root)
            except OSError as exc:
                _log.error("mountwatch.scan_failed", error=str(exc))
                continue
            for point in sorted(set(known) - set(now)):
                events.put(self._event(Action.REMOVED, point, known.pop(point)))
            for point in sorted(set(now) - set(known)):
                known[point] = now[point]
                events.put(self._event(Action.INSERTED, point, now[point]))

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
