"""The SCSI relay's filter: whatever the connection sends, a camera receives only commands of
its profile's dialect, each answer is one JSON line, and the relay never fails on its input.

The device behind the relay records what it would have sent (the ioctl itself is tested under
umockdev in tests/integration/test_scsi_relay.py); which device is allowed is sysfs's business
(allowed_camera), replaced here by the profile's unlock.
"""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.camera.methods import UnlockSpec
from agent.devices import scsi_relay
from agent.devices.dialects import jl_dv16


class Recording:
    def __init__(self, node: str, timeout_s: float) -> None:
        self.node, self.timeout_s = node, timeout_s
        self.sent: list[tuple[bytes, bool, int]] = []

    def read(self, _name: str, cdb: bytes, length: int) -> bytes:
        self.sent.append((cdb, False, length))
        return bytes(length)

    def write(self, _name: str, cdb: bytes, data: bytes = b"") -> None:
        self.sent.append((cdb, True, len(data)))

    def close(self) -> None:
        pass


def _serve(lines: list[bytes]) -> tuple[int, list[Any], list[tuple[bytes, bool, int]]]:
    opened: list[Recording] = []

    def opener(node: str, timeout_s: float) -> Recording:
        opened.append(Recording(node, timeout_s))
        return opened[-1]

    out = io.BytesIO()
    status = scsi_relay.serve(
        io.BytesIO(b"".join(lines)), out, [], opener, lambda *_: UnlockSpec(dialect="jl-dv16")
    )
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    return status, answers, [s for device in opened for s in device.sent]


OPEN = json.dumps({"open": {"usb": "/sys/devices/x", "node": "/dev/sg2"}}).encode() + b"\n"


def _request(kind: str, cdb: bytes, length: int) -> bytes:
    body: dict[str, Any] = {kind: cdb.hex(), "name": "x"}
    body.update({"length": length} if kind == "read" else {"data": bytes(length).hex()})
    return json.dumps(body).encode() + b"\n"


def test_the_dialects_own_commands_pass_and_a_foreign_one_ends_the_connection() -> None:
    record = jl_dv16.cdb(jl_dv16.READ_RECORD, 89, write=False)
    init = jl_dv16.cdb(jl_dv16.INIT, 0, write=True)
    firmware = jl_dv16.cdb(0x07, 0, write=True)  # not in the table
    lines = [OPEN, _request("write", init, 0), _request("read", record, 89),
             _request("write", firmware, 0), _request("read", record, 89)]  # fmt: skip
    status, answers, sent = _serve(lines)
    assert status == 2
    assert sent == [(init, True, 0), (record, False, 89)]
    assert answers[:3] == [{"ok": True}, {"ok": True}, {"data": "00" * 89}]
    assert answers[3]["error"] == "permanent"
    assert "jl-dv16 has no such command" in answers[3]["problem"]
    assert len(answers) == 4  # nothing after the refusal


def test_a_long_line_is_refused_without_reading_it_whole() -> None:
    status, answers, sent = _serve([OPEN, b"{" + b" " * (1 << 20) + b"}\n"])
    assert status == 2 and sent == []
    assert "at most 4096 bytes" in answers[-1]["problem"]


def test_json_nested_past_the_decoders_depth_is_refused() -> None:
    status, answers, sent = _serve([OPEN, b"[" * 2040 + b"]" * 2040 + b"\n"])
    assert status == 2 and sent == []
    assert answers[-1]["problem"] == "refused by the SCSI relay: not JSON"


def test_no_more_than_the_limit_of_commands_per_connection() -> None:
    status_cdb = jl_dv16.cdb(jl_dv16.LAST_STATUS, 4, write=False)
    lines = [OPEN] + [_request("read", status_cdb, 4)] * (scsi_relay.MAX_COMMANDS + 5)
    status, answers, sent = _serve(lines)
    assert status == 2 and len(sent) == scsi_relay.MAX_COMMANDS - 1
    assert f"more than {scsi_relay.MAX_COMMANDS} requests" in answers[-1]["problem"]


_cdbs = st.one_of(
    st.binary(max_size=20),
    st.builds(
        lambda op, code, length: bytes([*op, 0, 0, 0, code, 0, length]) + bytes(8),
        st.sampled_from([jl_dv16.WRITE_OPCODE, jl_dv16.READ_OPCODE, (0x28, 0x00)]),
        st.integers(0, 255),
        st.integers(0, 255),
    ),
)
_requests = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    st.builds(_request, st.sampled_from(["read", "write"]), _cdbs, st.integers(0, 300)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_requests, max_size=12))
def test_whatever_arrives_only_dialect_commands_reach_the_camera(requests: list[bytes]) -> None:
    status, answers, sent = _serve([OPEN, *requests])
    assert status in (0, 2)
    assert all(isinstance(a, dict) for a in answers)
    for cdb, write, length in sent:
        assert jl_dv16.DIALECT.allows(cdb, write, length)
        assert cdb == jl_dv16.cdb(cdb[5], length, write=write)
