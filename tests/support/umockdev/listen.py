"""The udev source inside a umockdev testbed, reporting its events as JSON lines on stdout.

Started by testbed.py (which owns the testbed) with the project's interpreter, so it imports
the agent as the daemon would. stdin takes `go` (after `monitor_started`: the driver has
plugged in what must race the start) and `stop`. The agent's JSON log goes to stderr.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import sys
import threading
import time
from typing import Any

from agent.core import log
from agent.devices.events import DeviceEvent, DeviceIdentity
from agent.devices.udev import UdevSource

_stdout_lock = threading.Lock()


def say(line: dict[str, Any]) -> None:
    with _stdout_lock:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


class RacedUdevSource(UdevSource):
    """Stops between opening the monitor and enumerating, so the driver can plug in there."""

    def __init__(self) -> None:
        super().__init__()
        self._raced = False

    def _enumerate(self) -> list[tuple[DeviceIdentity, dict[str, str]]]:
        if not self._raced:
            self._raced = True
            say({"kind": "monitor_started"})
            if sys.stdin.readline().strip() != "go":
                raise SystemExit("listen.py: expected `go` from the driver")
        return super()._enumerate()


def report(event: DeviceEvent) -> None:
    say(
        {
            "kind": "event",
            "action": str(event.action),
            "source": event.source,
            "identity": dataclasses.asdict(event.identity),
            "extra": event.extra,
        }
    )


def main() -> None:
    log.setup(level="debug", fmt="json", stream=sys.stderr)
    events: queue.Queue[DeviceEvent] = queue.Queue()
    finished = threading.Event()

    def forward() -> None:
        while not (finished.is_set() and events.empty()):
            try:
                report(events.get(timeout=0.05))
            except queue.Empty:
                continue

    forwarder = threading.Thread(target=forward, daemon=True)
    forwarder.start()
    source = RacedUdevSource()
    source.start(events)
    say({"kind": "ready"})
    if sys.stdin.readline().strip() != "stop":
        raise SystemExit("listen.py: expected `stop` from the driver")
    began = time.monotonic()
    source.stop()
    stop_seconds = time.monotonic() - began
    finished.set()
    forwarder.join()
    say({"kind": "stopped", "stop_seconds": stop_seconds})


if __name__ == "__main__":
    main()
