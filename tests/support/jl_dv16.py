"""The simulated jl-dv16 camera (scripts/simulator/jl_dv16.py) as a command channel in this
process: each answer goes through the same checks as a real SG_IO's outcome (agent.devices.scsi
check/read_answer), so the dialect meets statuses, sense data and short transfers as it would
on /dev/sgN. Only the ioctl itself is left out; tests/support/umockdev/sg_bed.py does that too.
"""

from __future__ import annotations

from agent.devices import scsi
from scripts.simulator.jl_dv16 import Answer, Recorder


def outcome(answer: Answer, length: int) -> scsi.Outcome:
    """What the sg driver reports for this answer to a transfer of `length` bytes."""
    return scsi.Outcome(
        status=answer.status,
        host_status=answer.host_status,
        sense=answer.sense,
        resid=max(length - len(answer.data), 0) if not answer.host_status else 0,
    )


class SimTransport:
    def __init__(self, recorder: Recorder, timeout_s: float = 5.0) -> None:
        self.recorder = recorder
        self.timeout_s = timeout_s
        self.device = "/dev/sg-sim"

    def read(self, command: str, cdb: bytes, length: int) -> bytes:
        answer = self.recorder.command(cdb, b"", length)
        data = answer.data[:length].ljust(length, b"\0")
        return scsi.read_answer(command, self.device, outcome(answer, length), data, self.timeout_s)

    def write(self, command: str, cdb: bytes, data: bytes = b"") -> None:
        answer = self.recorder.command(cdb, data, 0)
        scsi.check(command, self.device, outcome(answer, 0), 0, self.timeout_s)
