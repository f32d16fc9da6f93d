"""Unlock one docked jl-dv16 camera inside a umockdev testbed, as the daemon's worker does.

Started by sg_bed.py (which owns the testbed and answers SG_IO) with the project's interpreter,
so it runs agent.runtime.unlock exactly as the daemon would: sysfs to the sg node, SG_IO
through the preload, the dialect, the identity check. Prints one JSON line with the outcome
(the unlock record, or the error's class, message and classification); the agent's JSON log
goes to stderr. The plan (JSON file, argv[1]) gives the profile, the USB identity, the station
clock's state and time, the enrolment, and the SCSI relay's socket when commands go through it
("raw": CDBs, in hex, sent through it before the unlock).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path

from agent.camera import profile
from agent.core import log
from agent.core.errors import AgentError, classify
from agent.devices import scsi
from agent.devices.events import DeviceIdentity
from agent.health.clock import FixedClock
from agent.runtime import unlock
from agent.store.devices import DeviceRow


def main() -> None:
    log.setup(level="debug", fmt="json", stream=sys.stderr)
    plan = json.loads(Path(sys.argv[1]).read_text("utf-8"))
    prof = profile.load(plan["profile"], plan["profile_dir"])
    identity = DeviceIdentity(key=plan["key"], serial=plan["usb_serial"], devnode=plan["devnode"])
    enrolled = {
        serial: DeviceRow(serial, officer, prof.name, "", "", None, None)
        for serial, officer in plan.get("enrolled", {}).items()
    }
    plan_ = unlock.clock_plan(
        prof, "", FixedClock(plan["synchronised"]), datetime.fromisoformat(plan["now"])
    )
    accept = unlock.identity_check(
        identity.serial, prof, enrolled, bool(plan.get("require_enrollment")), identity.devnode
    )
    opener = unlock.opener_for(plan.get("relay", ""))
    try:
        if "raw" in plan:  # commands sent as they are, to see what the relay lets through
            usb = scsi.usb_device_of(identity.key)
            with opener(usb, "/dev/sg2", 5.0) as device:
                for block in plan["raw"]:
                    device.read("raw", bytes.fromhex(block), 4)
        record = unlock.unlock_camera(identity, "", prof, plan_, accept, opener)
    except AgentError as exc:
        out = {
            "outcome": "error",
            "error": type(exc).__name__,
            "message": exc.message,
            "kind": classify(exc).value,
        }
    else:
        out = {
            "outcome": "unlocked",
            "record": record.as_dict(),
            "info": dataclasses.asdict(record.device_info()),
        }
    sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
