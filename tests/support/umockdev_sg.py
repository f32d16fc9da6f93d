"""Unlock a simulated jl-dv16 camera through real SG_IO ioctls inside a umockdev testbed.

The driver (tests/support/umockdev/sg_bed.py) runs on the system interpreter under
umockdev-wrapper (umockdev's binding, python3-gi, is a Debian package for it) and answers
SG_IO on the camera's /dev/sgN with scripts/simulator/jl_dv16.py; the agent's side
(tests/support/umockdev/unlock_probe.py) runs with this interpreter. The test profile is the
`generic` one with the camera's USB ids, transport "ums-unlock" and an [unlock] table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.camera import profile
from tests.support.umockdev_run import GI_PYTHON

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "umockdev"
DESCRIPTION = "locked-jl-dv16"  # 1f3a:5016, USB serial JL00001, /dev/sg2, disk sdc, no medium
SG = "/dev/sg2"
USB_IDS = "1f3a:5016"
BLOCK_KEY = (
    "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/host6/target6:0:0/6:0:0:0/block/sdc"
)


def write_profile(profile_dir: Path, name: str, unlock: dict[str, Any]) -> str:
    """A profile NAME.toml in profile_dir: the generic layout, opened by a vendor unlock."""
    generic = Path(profile.__file__).parent.joinpath("profiles", "generic.toml").read_text("utf-8")
    text = generic.replace('name = "generic"', f'name = "{name}"')
    text = text.replace('usb_ids = ["2b0e:0a01"]', f'usb_ids = ["{USB_IDS}"]')
    text = text.replace("[kinds]", 'transport = "ums-unlock"\n\n[kinds]')
    lines = [f"{key} = {json.dumps(value)}" for key, value in unlock.items()]
    text += "\n[unlock]\n" + "\n".join(lines) + "\n"
    profile_dir.mkdir(parents=True, exist_ok=True)
    (profile_dir / f"{name}.toml").write_text(text, "utf-8")
    return name


@dataclass
class SgRun:
    returncode: int
    outcome: dict[str, Any]
    camera: dict[str, Any]  # the simulated camera's state at the end
    log: list[dict[str, Any]] = field(default_factory=list)
    stderr: str = ""

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.log if line.get("event") == event]


def locked_description(loop: str) -> str:
    """The locked camera (DESCRIPTION) with its disk sdc on the loop device's number: a stat(2)
    of the testbed's /dev/sdc, or a mount of the loop device, then names that disk."""
    rdev = os.stat(loop).st_rdev
    major, minor = os.major(rdev), os.minor(rdev)
    text = (HERE / f"{DESCRIPTION}.umockdev").read_text("utf-8")
    head, sep, disk = text.partition("/block/sdc\n")
    disk = disk.replace("A: dev=8:32\n", f"A: dev={major}:{minor}\n")
    disk = disk.replace("E: MAJOR=8\n", f"E: MAJOR={major}\n")
    return head + sep + disk.replace("E: MINOR=32\n", f"E: MINOR={minor}\n")


def in_sg_bed(
    command: list[str],
    recorder: dict[str, Any],
    workdir: Path,
    env: dict[str, str] | None = None,
    description: str = "",
) -> tuple[list[str], Path]:
    """The command line that runs `command` in a testbed whose camera answers SG_IO, and the
    file the camera's state is written to after every command. `description`: the devices'
    text, when not the locked camera's as it is."""
    state = workdir / "camera-state.json"
    plan_file = workdir / "sg-plan.json"
    description_file = ""
    workdir.mkdir(parents=True, exist_ok=True)
    if description:
        description_file = str(workdir / "devices.umockdev")
        Path(description_file).write_text(description, "utf-8")
    plan = {
        "description_file": description_file,
        "description": DESCRIPTION,
        "sg": SG,
        "recorder": recorder,
        "command": command,
        "state_file": str(state),
        "env": {"PYTHONPATH": str(REPO), **(env or {})},
    }
    plan_file.write_text(json.dumps(plan, ensure_ascii=False), "utf-8")
    return ["umockdev-wrapper", GI_PYTHON, "-I", str(HERE / "sg_bed.py"), str(plan_file)], state


def bed_env() -> dict[str, str]:
    # The system interpreter must not see the virtual environment's settings.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


RELAY_SOCKET_NAME = "dockagent-scsi.socket"


def relay_command(config: Path) -> list[str]:
    """systemd/dockagent-scsi@.service's ExecStart=, with this interpreter for the installed
    /opt/dockagent/bin/python and `config` for /etc/dockagent/config.toml."""
    return [sys.executable, "-I", "-m", "agent.devices.scsi_relay", "--config", str(config)]


def behind_relay(command: list[str], socket_path: Path, config: Path) -> list[str]:
    """`command` with the relay's socket listening at socket_path, systemd's way (Accept=yes:
    one relay per connection, on its standard input and output): umockdev/relay_socket.py."""
    return [
        sys.executable,
        str(HERE / "relay_socket.py"),
        str(socket_path),
        json.dumps(relay_command(config)),
        "--",
        *command,
    ]


def run_unlock(
    workdir: Path,
    recorder: dict[str, Any],
    probe: dict[str, Any],
    timeout: float = 60,
    relay_config: Path | None = None,
) -> SgRun:
    """Unlock the camera once, as the daemon's worker does; what came of it. With
    `relay_config`, through the SCSI relay run as its unit runs it, with that configuration."""
    workdir.mkdir(parents=True, exist_ok=True)
    probe_file = workdir / "probe.json"
    probe = {"key": BLOCK_KEY, "devnode": "/dev/sdc", "usb_serial": "JL00001", **probe}
    socket_path = workdir / RELAY_SOCKET_NAME
    if relay_config is not None:
        probe["relay"] = str(socket_path)
    probe_file.write_text(json.dumps(probe), "utf-8")
    command = [sys.executable, "-W", "error", str(HERE / "unlock_probe.py"), str(probe_file)]
    if relay_config is not None:
        command = behind_relay(command, socket_path, relay_config)
    argv, state = in_sg_bed(command, recorder, workdir)
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=bed_env(), check=False
    )
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, (
        f"the SG_IO testbed failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    log = []
    for text in proc.stderr.splitlines():
        try:
            log.append(json.loads(text))
        except ValueError:
            continue
    camera = json.loads(state.read_text("utf-8"))
    return SgRun(proc.returncode, json.loads(lines[-1]), camera, log, proc.stderr)
