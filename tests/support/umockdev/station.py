"""Run `dockagent run` inside a umockdev testbed and plug devices in and out on command.

Run by tests/support/umockdev_station.py as `umockdev-wrapper /usr/bin/python3 station.py SPEC`
(the system interpreter: python3-gi is a Debian package for it). SPEC (JSON) gives the daemon's
command line, its environment and the file its stderr (the JSON log) goes to. The daemon is a
child that inherits the testbed (UMOCKDEV_DIR) and the preload (LD_PRELOAD), so its udev source
sees only the testbed's devices and their uevents, and a stat(2) of a testbed /dev node answers
with the device number written in the description's `dev` attribute (umockdev's preload).

Commands on stdin, one JSON object a line, each answered by one line on stdout:
  {"plug": NAME, "description": PATH}  -> {"kind": "plugged", "devices": [sysfs paths]}
    with "sg": {"node": "/dev/sgN", "recorder": {...}, "state_file": PATH}: that node answers
    SG_IO as the simulated jl-dv16 camera (sg_bed.SgCamera), its state in the state file
  {"medium": NAME, "device": SYSFS_NAME, "props": {KEY: VALUE}}  -> {"kind": "changed"}
    the device's udev properties gain these values, announced by a `change` uevent (a camera
    opened by vendor commands shows a medium with a file system)
  {"unplug": NAME}                     -> {"kind": "unplugged"}
  {"stop": true}                       -> {"kind": "stopped", "status": EXIT STATUS}
End of input stops the daemon too. Only the standard library, gi and sg_bed here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings(
    "ignore", message=r"DynamicImporter\.exec_module\(\) not found", category=ImportWarning
)
import gi  # noqa: E402 - after the filter above

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402 - gi needs the version chosen first
from sg_bed import Recorder, SgCamera  # noqa: E402 - next to this file, imports gi too

STOP_TIMEOUT_S = 90


def say(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


class Bed:
    def __init__(self) -> None:
        if "umockdev-preload" not in os.environ.get("LD_PRELOAD", ""):
            sys.exit("station.py: not running under umockdev-wrapper")
        self.testbed = UMockdev.Testbed.new()
        self.root = self.testbed.get_root_dir()
        self.devices: dict[str, list[str]] = {}
        self.handlers: list[Any] = []  # the ioctl handlers must live as long as the testbed

    def answer_sg(self, sg: dict[str, Any]) -> None:
        camera = SgCamera(Recorder(**sg.get("recorder", {})), Path(sg["state_file"]))
        handler = UMockdev.IoctlBase()
        handler.connect("handle-ioctl", camera.handle)
        self.testbed.attach_ioctl(sg["node"], handler)
        self.handlers.append((camera, handler))

    def medium(self, name: str, device: str, props: dict[str, str]) -> None:
        (syspath,) = [p for p in self.devices[name] if p.rsplit("/", 1)[-1] == device]
        uevent = Path(self.root + syspath) / "uevent"
        lines = [ln for ln in uevent.read_text("utf-8").splitlines() if ln]
        for key, value in props.items():
            lines = [ln for ln in lines if not ln.startswith(key + "=")]
            lines.append(f"{key}={value}")
        uevent.write_text("\n".join(lines) + "\n", "utf-8")
        self.testbed.uevent(syspath, "change")

    def plug(self, name: str, description: str) -> list[str]:
        # add_from_string() announces every device it adds with an `add` uevent, parents first
        # (the order of the description), as the kernel does.
        text = Path(description).read_text("utf-8")
        if not self.testbed.add_from_string(text):
            sys.exit(f"station.py: umockdev could not load {description}")
        paths = ["/sys" + line[3:] for line in text.splitlines() if line.startswith("P: ")]
        self.devices[name] = sorted(paths, key=len)
        return self.devices[name]

    def unplug(self, name: str) -> None:
        paths = self.devices.pop(name)
        for syspath in reversed(paths):  # children first, as the kernel announces a removal
            self.testbed.uevent(syspath, "remove")
        for syspath in reversed(paths):
            self.testbed.remove_device(syspath)
            # umockdev 0.17 leaves the /sys/block link, which would make a re-plug abort.
            block_link = Path(self.root, "sys", "block", syspath.rsplit("/", 1)[-1])
            if block_link.is_symlink():
                block_link.unlink()


def stop(daemon: subprocess.Popen[bytes]) -> int:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        daemon.kill()
        return daemon.wait()


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text("utf-8"))
    bed = Bed()
    env = dict(spec["env"], UMOCKDEV_DIR=bed.root)
    for name in ("LD_PRELOAD", "PATH"):
        env.setdefault(name, os.environ.get(name, ""))
    with open(spec["log"], "ab") as log:
        daemon = subprocess.Popen(
            spec["command"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    say({"kind": "started", "pid": daemon.pid, "root": bed.root})
    for line in sys.stdin:
        command = json.loads(line)
        if "plug" in command:
            devices = bed.plug(command["plug"], command["description"])
            if "sg" in command:
                bed.answer_sg(command["sg"])
            say({"kind": "plugged", "devices": devices})
        elif "medium" in command:
            bed.medium(command["medium"], command["device"], command["props"])
            say({"kind": "changed"})
        elif "unplug" in command:
            bed.unplug(command["unplug"])
            say({"kind": "unplugged"})
        elif "stop" in command:
            break
        else:
            sys.exit(f"station.py: unknown command {command!r}")
    say({"kind": "stopped", "status": stop(daemon)})


if __name__ == "__main__":
    main()
