"""Run `dockagent run` as a real process for end-to-end tests, and wait on what it does."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.devices.fake import write_event
from tests.support.cli import start_cli
from tests.support.evidence import rows


class EventLog:
    """A process whose JSON log lines (one event each) land in log_path, and waits on them."""

    proc: subprocess.Popen[Any]
    log_path: Path

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_event(self, name: str, timeout: float = 30, **match: object) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == name and all(event.get(k) == v for k, v in match.items()):
                    return event
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} waiting for {name}")
            time.sleep(0.1)
        raise AssertionError(f"no {name} {match} within {timeout}s")


class DaemonProcess(EventLog):
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        # Its output (the JSON log on stderr) goes to log_path, which the leak check reads.
        self.proc = start_cli(["run"], env=env, log=log_path)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sealed_count(data_dir: Path, serial: str) -> int:
    """Files of the camera held at the station or beyond (the daemon also uploads them)."""
    if not (data_dir / "dockagent.db").exists():
        return 0
    sql = (
        "SELECT id FROM files WHERE device_serial=? "
        "AND state IN ('sealed', 'uploading', 'confirmed')"
    )
    return len(rows(data_dir, sql, (serial,)))


def dock_camera(
    spool: Path,
    serial: str,
    mountpoint: Path | str = "",
    *,
    name: str = "",
    vendor: str = "2b0e",
    interfaces: str = ":080650:",
    **extra: str,
) -> None:
    """Plug a generic-profile camera into the fake USB bus (the daemon's `fake` source)."""
    key = f"usb-{name or serial}"
    write_event(
        spool,
        name or f"dock-{serial}",
        action="inserted",
        key=key,
        vendor_id=vendor,
        model_id="0a01",
        serial=serial,
        fs_type=extra.pop("fs_type", "vfat"),
        usb_interfaces=interfaces,
        mountpoint=str(mountpoint),
        **extra,
    )
