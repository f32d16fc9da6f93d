"""The installed station's device path for end-to-end tests: udev under umockdev, the shipped
mount helper, and a real FUSE mount of a loop device standing in for the camera's USB disk.

What is real: `dockagent run` with the shipped `udev` source and `external` mount strategy,
seeing the device through libudev (the umockdev testbed, driven by umockdev/station.py), the
shipped systemd/dockagent-mount helper deciding whether and how to mount, and an exFAT
file system on a block device mounted by exfat-fuse (fuseblk: mountinfo carries the block
device's number, as for a kernel mount).

What stands in, at the lowest layer that can be faked honestly:
- the USB disk is a loop device of the camera image. Its udev description is the shipped
  test camera's (umockdev/allowed-camera.umockdev) with the partition's `dev` attribute set to
  the loop device's major:minor: umockdev's preload answers a stat(2) of the testbed's
  /dev/sda1 with S_IFBLK and that number as st_rdev, exactly what the kernel's node of a real
  USB partition would say, so the daemon's find_mount() matches it against mountinfo as it
  would on a station;
- `udevadm info` (the helper's reader of the udev database) prints the partition's properties
  from that description, which is what udev would have recorded for it;
- `systemd-mount` (the helper asks PID 1 for a transient mount unit) mounts the loop device
  at the point and with the options the helper chose, with exfat-fuse; `--umount` unmounts it.
The udev rule that starts the helper is not run (no udevd); the test starts the helper as the
rule's unit would, with the device's kernel name.

A camera opened by vendor commands (jl-dv16) adds: its /dev/sg2 answers SG_IO as the simulated
camera (umockdev/sg_bed.py's handler, in the testbed's process); the SCSI relay's socket is
a listener that starts the relay unit's command line for each connection with the connection
as its standard input and output (umockdev/relay_socket.py: systemd's Accept=yes part); and
the disk it shows once opened is the same description's block device gaining a file system
(new udev properties and a `change` uevent, as the kernel and udev announce a new medium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.support.daemon import EventLog
from tests.support.umockdev_run import GI_PYTHON
from tests.support.umockdev_sg import behind_relay

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER = HERE / "umockdev" / "station.py"
RUN_IN = HERE / "umockdev" / "run_in.py"
TEMPLATE = HERE / "umockdev" / "allowed-camera.umockdev"
HELPER = REPO / "systemd" / "dockagent-mount"
KERNEL_NAME = "sda1"  # the partition of the template description that holds the volume
TEMPLATE_SERIAL = "CAM0001"


def description(serial: str, loop_device: str, fs_type: str = "exfat") -> str:
    """The template camera with `serial`, its partition on `loop_device`'s device number."""
    rdev = os.stat(loop_device).st_rdev
    major, minor = os.major(rdev), os.minor(rdev)
    text = TEMPLATE.read_text("utf-8").replace(TEMPLATE_SERIAL, serial)
    head, sep, partition = text.partition(f"/block/sda/{KERNEL_NAME}\n")
    assert sep, "the template has no partition sda1"
    partition = partition.replace("A: dev=8:1\n", f"A: dev={major}:{minor}\n")
    partition = partition.replace("E: MAJOR=8\n", f"E: MAJOR={major}\n")
    partition = partition.replace("E: MINOR=1\n", f"E: MINOR={minor}\n")
    partition = partition.replace("E: ID_FS_TYPE=vfat\n", f"E: ID_FS_TYPE={fs_type}\n")
    partition = re.sub(r"E: ID_FS_VERSION=.*\n", "", partition)
    return head + sep + partition


def partition_properties(text: str) -> str:
    """The udev properties (E: lines) of the description's partition, as `udevadm info` prints."""
    block = text.partition(f"/block/sda/{KERNEL_NAME}\n")[2].split("\n\n", 1)[0]
    return "".join(line[3:] + "\n" for line in block.splitlines() if line.startswith("E: "))


def in_testbed(text: str, work: Path) -> tuple[str, ...]:
    """The command prefix that runs a command inside a umockdev testbed holding the devices of
    the description `text` (umockdev/run_in.py), e.g. `dockagent import` as a technician runs
    it on a station where udev knows the camera."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "devices.umockdev"
    path.write_text(text, "utf-8")
    return ("umockdev-wrapper", GI_PYTHON, "-I", "-W", "error", str(RUN_IN), str(path), "--")


@contextmanager
def loop_device(image: Path, readonly: bool) -> Iterator[str]:
    args = ["losetup", "--find", "--show", *(["--read-only"] if readonly else []), str(image)]
    loop = subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    try:
        yield loop
    finally:
        subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)


def _stand_ins(where: Path, properties: str, loop: str) -> Path:
    stubs = where / "bin"
    stubs.mkdir(parents=True, exist_ok=True)
    scripts = {
        "udevadm": f"cat <<'EOF'\n{properties}EOF\n",
        # PID 1's part of `systemd-mount --collect --fsck=no --type=T --options=O DEV POINT`,
        # and of `systemd-mount --umount DEV`, for the one loop device behind DEV.
        "systemd-mount": f"""printf '%s\\n' "$@" >> {where}/systemd-mount-calls
options= point=
for arg in "$@"; do
  case "$arg" in
    --umount) for p in $(findmnt -rn -S {loop} -o TARGET); do umount "$p"; done; exit 0 ;;
    --options=*) options=${{arg#--options=}} ;;
    --*) ;;
    *) point=$arg ;;
  esac
done
mkdir -p "$point"
exec mount.exfat-fuse -o "$options" {loop} "$point"
""",
    }
    for name, body in scripts.items():
        (stubs / name).write_text("#!/bin/sh\nset -eu\n" + body)
        (stubs / name).chmod(0o755)
    return stubs


def run_mount_helper(
    action: str,
    where: Path,
    text: str,
    loop: str,
    mount_root: Path,
    access: str,
    kernel_name: str = KERNEL_NAME,
    properties: str = "",
) -> subprocess.CompletedProcess[str]:
    """systemd/dockagent-mount ACTION sda1 (or `kernel_name`, whose udev `properties` are
    given), as dockagent-mount@sda1.service runs it."""
    stubs = _stand_ins(where, properties or partition_properties(text), loop)
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "DOCKAGENT_MOUNT_ROOT": str(mount_root),
        "DOCKAGENT_MOUNT_ACCESS": access,
        "DOCKAGENT_USER": "root",  # the test's daemon runs as root; the unit's default is dockagent
    }
    return subprocess.run(
        ["/bin/sh", str(HELPER), action, kernel_name],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@dataclass
class UmockdevStation(EventLog):
    """The daemon under umockdev; plug() and unplug() a description, wait on its log."""

    proc: subprocess.Popen[str]
    log_path: Path
    work: Path

    def _say(self, command: dict[str, Any]) -> dict[str, Any]:
        stdin: IO[str] | None = self.proc.stdin
        stdout: IO[str] | None = self.proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise AssertionError(f"the umockdev driver exited: {self.driver_errors()}")
        return dict(json.loads(line))

    def driver_errors(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()[-2000:]

    def plug(self, name: str, text: str) -> list[str]:
        path = self.work / f"{name}.umockdev"
        path.write_text(text, "utf-8")
        return list(self._say({"plug": name, "description": str(path)})["devices"])

    def plug_locked(self, name: str, text: str, recorder: dict[str, Any], state: Path) -> None:
        """Plug a camera whose sg node (/dev/sg2, umockdev/sg_bed.py) answers SG_IO as the
        simulated jl-dv16 camera with `recorder`'s settings; its state goes to `state`."""
        path = self.work / f"{name}.umockdev"
        path.write_text(text, "utf-8")
        sg = {"node": "/dev/sg2", "recorder": recorder, "state_file": str(state)}
        self._say({"plug": name, "description": str(path), "sg": sg})

    def medium(self, name: str, device: str, props: dict[str, str]) -> None:
        """The device shows a medium: new udev properties, then a `change` uevent."""
        self._say({"medium": name, "device": device, "props": props})

    def unplug(self, name: str) -> None:
        self._say({"unplug": name})

    def stop(self) -> int:
        if self.proc.poll() is not None:
            return -1
        answer = self._say({"stop": True})
        self.proc.wait(timeout=30)
        return int(answer["status"])


def umockdev_station_missing() -> list[str]:
    missing = [
        t for t in ("umockdev-wrapper", "mount.exfat-fuse", "losetup") if not shutil.which(t)
    ]
    if os.geteuid() != 0:
        missing.append("not running as root")
    return missing


@contextmanager
def umockdev_station(
    env: dict[str, str], work: Path, relay: tuple[Path, Path] | None = None
) -> Iterator[UmockdevStation]:
    """`dockagent run` (this interpreter, `env`) inside a fresh umockdev testbed; with `relay`
    (socket, configuration), the SCSI relay's socket listening beside it as systemd would
    (tests/support/umockdev_sg.py behind_relay)."""
    command = [sys.executable, "-m", "agent.cli.main", "run"]
    if relay is not None:
        command = behind_relay(command, *relay)
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "daemon.log"
    spec = work / "station.json"
    spec.write_text(
        json.dumps(
            {
                "command": command,
                "env": env,
                "log": str(log_path),
            }
        )
    )
    # The system interpreter must not see the virtual environment's settings.
    driver_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.Popen(
        ["umockdev-wrapper", GI_PYTHON, "-W", "error", str(DRIVER), str(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=driver_env,
    )
    station = UmockdevStation(proc, log_path, work)
    assert proc.stdout is not None
    started = proc.stdout.readline()
    try:
        if not started:
            raise AssertionError(f"the umockdev driver did not start: {station.driver_errors()}")
        yield station
    finally:
        if proc.poll() is None:
            try:
                station.stop()
            except (AssertionError, OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
