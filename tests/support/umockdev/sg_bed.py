"""Run one command inside a umockdev testbed where /dev/sgN answers SG_IO like a jl-dv16 camera.

`umockdev-wrapper /usr/bin/python3 -I sg_bed.py PLAN` (the system interpreter: python3-gi is a
Debian package for it). The plan (JSON) names the device description (NAME.umockdev next to this
file, or a file of its own: description_file), the sg node, the simulated camera's settings (scripts/simulator/jl_dv16.py's Recorder
fields), the command and a state file. The command inherits the testbed (UMOCKDEV_DIR) and the
preload (LD_PRELOAD): its open(2) of the node and its ioctl(2) SG_IO reach the handler below,
which reads `struct sg_io_hdr` out of the command's memory (umockdev's IoctlData.resolve of the
cmdp, dxferp and sbp pointers), lets the camera answer, and writes data, sense, status, residue
back as the sg driver would (sg(4)). A camera that does not answer is what the kernel reports
after the command's timeout: host status DID_TIME_OUT, once that time has passed. After every
command the camera's state is written to the state file (JSON). SIGTERM is passed to the command.
Only the standard library, gi and the simulator here; the exit status is the command's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings(
    "ignore", message=r"DynamicImporter\.exec_module\(\) not found", category=ImportWarning
)
import gi  # noqa: E402 - after the filter above

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402 - gi needs the version chosen first

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the checkout, for scripts.simulator
from scripts.simulator.jl_dv16 import Recorder  # noqa: E402 - after the path is set

SG_IO = 0x2285
SG_DXFER_TO_DEV = -2
SG_DXFER_FROM_DEV = -3
DRIVER_SENSE = 0x08
SG_INFO_CHECK = 0x1
# struct sg_io_hdr (<scsi/sg.h>) with the native layout of this machine, up to `info`.
HDR = struct.Struct("@iiBBHIPPPIIiPBBBBHHiII")
HDR_SIZE = 88  # with the tail padding to the pointer alignment (x86-64)
OFF_DXFERP, OFF_CMDP, OFF_SBP, OFF_STATUS = 16, 24, 32, 64
LONGEST_WAIT_S = 5.0  # a silent camera's emulated timeout, at most


class SgCamera:
    def __init__(self, recorder: Recorder, state_file: Path) -> None:
        self.recorder = recorder
        self.state_file = state_file
        self.lock = threading.Lock()
        self.save()

    def save(self) -> None:
        state = dataclasses.asdict(self.recorder)
        state["id_code"] = self.recorder.id_code.hex()
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False), "utf-8")
        os.replace(tmp, self.state_file)

    def handle(self, _handler: Any, client: Any) -> bool:
        if client.get_request() != SG_IO:
            return False
        with self.lock:
            self._answer(client)
            self.save()
        client.complete(0, 0)
        return True

    def _answer(self, client: Any) -> None:
        hdr = client.get_arg().resolve(0, HDR_SIZE)
        fields = HDR.unpack(bytes(hdr.retrieve())[: HDR.size])
        direction, cmd_len, mx_sb_len, dxfer_len = fields[1], fields[2], fields[3], fields[5]
        timeout_ms = fields[9]
        cdb = bytes(hdr.resolve(OFF_CMDP, cmd_len).retrieve())
        data = hdr.resolve(OFF_DXFERP, dxfer_len) if dxfer_len else None
        data_out = (
            bytes(data.retrieve()) if data is not None and direction == SG_DXFER_TO_DEV else b""
        )
        length = dxfer_len if direction == SG_DXFER_FROM_DEV else 0
        answer = self.recorder.command(cdb, data_out, length)
        if answer.host_status:
            time.sleep(min(timeout_ms / 1000, LONGEST_WAIT_S))
        sent = answer.data[:length]
        if data is not None and sent:
            data.update(0, sent)
        sense = answer.sense[:mx_sb_len]
        if sense:
            hdr.resolve(OFF_SBP, mx_sb_len).update(0, sense)
        driver = DRIVER_SENSE if sense else 0
        failed = bool(answer.status or answer.host_status or sense)
        tail = struct.pack(
            "@BBBBHHiII",
            answer.status,
            (answer.status >> 1) & 0x7F,
            0,
            len(sense),
            answer.host_status,
            driver,
            0 if answer.host_status else length - len(sent),
            1,
            SG_INFO_CHECK if failed else 0,
        )
        hdr.update(OFF_STATUS, tail)


def main() -> None:
    if "umockdev-preload" not in os.environ.get("LD_PRELOAD", ""):
        sys.exit("sg_bed.py: not running under umockdev-wrapper")
    plan = json.loads(Path(sys.argv[1]).read_text("utf-8"))
    testbed = UMockdev.Testbed.new()
    description = Path(plan.get("description_file") or HERE / f"{plan['description']}.umockdev")
    if not testbed.add_from_string(description.read_text("utf-8")):
        sys.exit(f"sg_bed.py: umockdev could not load {description}")
    camera = SgCamera(Recorder(**plan.get("recorder", {})), Path(plan["state_file"]))
    handler = UMockdev.IoctlBase()
    handler.connect("handle-ioctl", camera.handle)
    testbed.attach_ioctl(plan["sg"], handler)
    env = dict(os.environ, UMOCKDEV_DIR=testbed.get_root_dir(), **plan.get("env", {}))
    child = subprocess.Popen(plan["command"], env=env)
    signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
