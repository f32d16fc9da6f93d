"""Drive a umockdev testbed around the udev source and print what the source reported.

Run by tests/support/umockdev_run.py as `umockdev-wrapper /usr/bin/python3 testbed.py PLAN`:
the system interpreter, because python3-gi (UMockdev's binding) is a Debian package for it.
Only the standard library and gi here; the agent runs in listen.py under the project's own
interpreter, as a child that inherits the testbed (UMOCKDEV_DIR) and the preload (LD_PRELOAD).

The plan (JSON) names device descriptions (NAME.umockdev next to this file): `present` ones
are loaded before the source starts, `during_start` ones are plugged in after its monitor
started and before it enumerates, then `steps` run: {"plug": ...}, {"unplug": NAME},
{"uevent": ACTION, "device": NAME}, {"raw": NAME, "device": SYSFS_NAME, "props": {KEY: HEX}}
(new property values, e.g. a medium that appeared, announced by a `change` uevent after it).
Adding a description announces each device with `add`
(umockdev does), in file order: the files list parents first, as the kernel announces them.
The source must report `expect_events` events. Output: JSON lines
{"kind": "event"|"log"|"devices"|"stopped", ...} on stdout.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

# Run with -W error; PyGObject 3.42's importer still uses the load_module() fallback.
warnings.filterwarnings(
    "ignore", message=r"DynamicImporter\.exec_module\(\) not found", category=ImportWarning
)
import gi  # noqa: E402 - after the filter above

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402 - gi needs the version chosen first

HERE = Path(__file__).resolve().parent
LISTENER = HERE / "listen.py"
# After the expected events, wait this long for unexpected extra ones before stopping.
GRACE_SECONDS = 0.3


def fail(message: str) -> None:
    sys.stderr.write(f"testbed.py: {message}\n")
    sys.exit(2)


class Bed:
    def __init__(self) -> None:
        if "umockdev-preload" not in os.environ.get("LD_PRELOAD", ""):
            fail("not running under umockdev-wrapper (LD_PRELOAD has no libumockdev-preload)")
        self.testbed = UMockdev.Testbed.new()
        self.root = self.testbed.get_root_dir()
        self.devices: dict[str, list[str]] = {}  # plugged description -> sysfs paths, parents first
        self.loaded: dict[str, list[str]] = {}  # every description ever loaded

    def load(self, entry: str | dict[str, Any]) -> str:
        name = entry if isinstance(entry, str) else entry["name"]
        path = HERE / f"{name}.umockdev"
        text = path.read_text("utf-8")
        if not self.testbed.add_from_string(text):
            fail(f"umockdev could not load {path}")
        syspaths = ["/sys" + line[3:] for line in text.splitlines() if line.startswith("P: ")]
        self.devices[name] = self.loaded[name] = sorted(syspaths, key=len)
        if isinstance(entry, dict):
            for device, props in entry.get("raw", {}).items():
                self.set_raw(name, device, props)
        return name

    def set_raw(self, name: str, device: str, props: dict[str, str]) -> None:
        """Write property values as raw bytes (hex in the plan) into a device's uevent file.

        Hostile values that a text .umockdev file cannot carry: invalid UTF-8, control bytes.
        """
        (syspath,) = [p for p in self.devices[name] if p.rsplit("/", 1)[-1] == device]
        uevent = Path(self.root + syspath) / "uevent"
        lines = [ln for ln in uevent.read_bytes().split(b"\n") if ln]
        for key, value_hex in props.items():
            prefix = key.encode() + b"="
            lines = [ln for ln in lines if not ln.startswith(prefix)]
            lines.append(prefix + bytes.fromhex(value_hex))
        uevent.write_bytes(b"\n".join(lines) + b"\n")

    def uevent(self, name: str, action: str) -> None:
        # The kernel announces parents before children on add, children first on remove.
        paths = self.devices[name]
        for syspath in reversed(paths) if action == "remove" else paths:
            self.testbed.uevent(syspath, action)

    def plug(self, entry: str | dict[str, Any]) -> None:
        # add_from_string() itself announces every device it adds with an `add` uevent (umockdev
        # >= 0.6), in the order of the description: the files list parents first, as the
        # kernel announces them. Sending `add` again here would be a second announcement.
        self.load(entry)

    def unplug(self, name: str) -> None:
        self.uevent(name, "remove")
        # Children first: remove_device() leaves the class links of the children of what it
        # removes, and (umockdev 0.17) every /sys/block link, which would make a re-plug abort.
        for syspath in reversed(self.devices.pop(name)):
            self.testbed.remove_device(syspath)
            block_link = Path(self.root, "sys", "block", syspath.rsplit("/", 1)[-1])
            if block_link.is_symlink():
                block_link.unlink()


class Listener:
    """listen.py as a child: its stdout lines are queued, its stderr (the log) collected."""

    def __init__(self, python: str, pythonpath: str, root: str) -> None:
        env = dict(os.environ, UMOCKDEV_DIR=root, PYTHONPATH=pythonpath)
        self.proc = subprocess.Popen(
            [python, "-W", "error", str(LISTENER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.log: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.log.extend(line.rstrip("\n") for line in self.proc.stderr)

    def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def until(self, done: Any, timeout: float, what: str) -> None:
        """Take lines until done() holds; fail with the log if it does not in time."""
        deadline = time.monotonic() + timeout
        while not done():
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.die(f"timed out after {timeout}s waiting for {what}")
            if line is None:
                self.die(f"listener exited while waiting for {what}")
            assert line is not None
            (self.events if line["kind"] == "event" else self.other).append(line)

    def saw(self, kind: str) -> bool:
        return any(line["kind"] == kind for line in self.other)

    def finish(self, timeout: float) -> int:
        """Wait for the listener to exit and close its pipes; its exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(timeout)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return self.proc.returncode

    def die(self, message: str) -> None:
        self.proc.kill()
        self.finish(5)
        log = "\n".join(self.log[-40:])
        fail(f"{message}; events so far: {json.dumps(self.events)}\nlistener stderr:\n{log}")


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text("utf-8"))
    timeout = float(plan.get("timeout", 10))
    bed = Bed()  # its directory goes when the Testbed is finalized, on any exit but a crash
    for entry in plan.get("present", []):
        bed.load(entry)
    listener = Listener(plan["listener_python"], plan["pythonpath"], bed.root)
    listener.until(lambda: listener.saw("monitor_started"), timeout, "the monitor to start")
    for entry in plan.get("during_start", []):
        bed.plug(entry)
    listener.send("go")
    listener.until(lambda: listener.saw("ready"), timeout, "enumeration")
    for step in plan.get("steps", []):
        if "plug" in step:
            bed.plug(step["plug"])
        elif "unplug" in step:
            bed.unplug(step["unplug"])
        elif "uevent" in step:
            bed.uevent(step["device"], step["uevent"])
        elif "raw" in step:  # new property values of one device (hex), before its uevent
            bed.set_raw(step["raw"], step["device"], step["props"])
        else:
            fail(f"unknown step {step!r}")
    expected = int(plan["expect_events"])
    listener.until(lambda: len(listener.events) >= expected, timeout, f"{expected} events")
    time.sleep(GRACE_SECONDS)
    listener.send("stop")
    listener.until(lambda: listener.saw("stopped"), timeout, "the source to stop")
    status = listener.finish(timeout)
    if status != 0:
        listener.die(f"listener exited with {status}")
    out = sys.stdout
    for line in listener.events + listener.other:
        out.write(json.dumps(line) + "\n")
    for text in listener.log:
        out.write(json.dumps({"kind": "log", "line": text}) + "\n")
    out.write(json.dumps({"kind": "devices", "devices": bed.loaded}) + "\n")


if __name__ == "__main__":
    main()
