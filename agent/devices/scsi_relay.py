"""The SCSI relay: vendor commands to docked cameras, sent by a small privileged unit on the
daemon's behalf, so that the daemon itself keeps no capability and sees no device node.

Why: Linux lets SG_IO carry a command only when `scsi_cmd_allowed()` (drivers/scsi/
scsi_ioctl.c, called by sg.c for every SG_IO) says so, and without CAP_SYS_RAWIO that is a
fixed table of read-safe opcodes (INQUIRY, READ(10), ...), plus write-safe ones on a read-write
open. The vendor opcodes of the jl-dv16 set (FBh, FDh) are in neither table, so they need
CAP_SYS_RAWIO, a capability that also opens every other raw command on every reachable node.
The daemon parses hostile camera file systems and server answers: it is the last process that
should hold it. So the capability lives in `dockagent-scsi@.service` (systemd/), one instance
per connection to `dockagent-scsi.socket` (Accept=yes), which runs `serve()` below with the
connection as its standard input and output. It relays only
- to the sg node of the USB device the daemon names, and only when that device's
  vendor:product is one a `ums-unlock` profile of the station's configuration names (sysfs,
  not the daemon, says what the device is);
- commands that profile's dialect declares (Dialect.allows: for jl-dv16 the 16-byte FBh 82h /
  FDh 81h CDBs of its command table, data length in byte 7 equal to the transfer);
- for a bounded number of commands, lines and bytes per connection;
and only to the service user (SO_PEERCRED: the socket is 0600 dockagent's, root aside).
Everything the daemon decides stays in the daemon: which camera is docked, whose record it is,
whether it is enrolled, whether to set its clock and open it. The relay decides nothing but
"is this command to this device allowed". `RelayDevice` is the daemon's side: a Transport
whose commands go over the socket instead of into an ioctl.

Protocol, one JSON object per line each way (at most MAX_LINE bytes):
  {"open": {"usb": SYSFS_PATH, "node": "/dev/sgN"}}        -> {"ok": true}
  {"read": CDB_HEX, "name": NAME, "length": N}             -> {"data": HEX}
  {"write": CDB_HEX, "name": NAME, "data": HEX}            -> {"ok": true}
  any failure                    -> {"error": "retryable"|"permanent", "problem": TEXT}
This module never logs command data.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import struct
import sys
from collections.abc import Sequence
from typing import IO, Any

from agent.camera import profile as profiles
from agent.camera.methods import UnlockSpec
from agent.camera.profile import Profile
from agent.core import config, log
from agent.core.errors import (
    AgentError,
    DeviceCommandFailed,
    DeviceCommandRetryable,
    ErrorKind,
    classify,
)
from agent.devices import dialects, scsi

_log = log.get(__name__)

DEFAULT_SOCKET = "/run/dockagent-scsi.socket"
SERVICE_USER = "dockagent"
MAX_LINE = 4096  # the longest request: a 16-byte CDB and 255 bytes of data, in hex
MAX_COMMANDS = 64  # one unlock is about 20 commands
_NAME = re.compile(r"[A-Za-z0-9 ]{1,40}")
_NODE = re.compile(r"/dev/sg[0-9]{1,6}")
_HEX = re.compile(r"(?:[0-9a-f]{2}){0,512}")


# ---- the daemon's side ------------------------------------------------------------------


class RelayDevice:
    """A docked camera's command channel through the relay (agent.devices.scsi.Transport).
    Every answer waits at most a little longer than the relay's own command timeout."""

    def __init__(self, socket_path: str, usb: str, node: str, timeout_s: float) -> None:
        self.node = node
        self.timeout_s = timeout_s
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        # A read may be repeated once by the relay (scsi.SgDevice.read): twice the timeout,
        # and some slack for starting the relay's unit.
        self.sock.settimeout(2 * timeout_s + 10)
        try:
            self.sock.connect(socket_path)
        except OSError as exc:
            self.sock.close()
            raise DeviceCommandFailed(
                command="open",
                device=node,
                problem=f"no SCSI relay answers at {socket_path} ({exc.strerror or exc}): "
                "is dockagent-scsi.socket enabled?",
            ) from exc
        self._file = self.sock.makefile("rwb")
        self._ask("open", {"open": {"usb": usb, "node": node}})

    def read(self, command: str, cdb: bytes, length: int) -> bytes:
        answer = self._ask(command, {"read": cdb.hex(), "name": command, "length": length})
        data = bytes.fromhex(str(answer.get("data", "")))
        if len(data) != length:
            raise DeviceCommandFailed(
                command=command, device=self.node, problem="the relay answered a wrong length"
            )
        return data

    def write(self, command: str, cdb: bytes, data: bytes = b"") -> None:
        self._ask(command, {"write": cdb.hex(), "name": command, "data": data.hex()})

    def _ask(self, command: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            self._file.write(json.dumps(request).encode() + b"\n")
            self._file.flush()
            line = self._file.readline(MAX_LINE + 1)
        except TimeoutError as exc:
            raise DeviceCommandRetryable(
                command=command, device=self.node, problem="the SCSI relay did not answer in time"
            ) from exc
        except OSError as exc:
            raise DeviceCommandFailed(
                command=command, device=self.node, problem=f"SCSI relay: {exc.strerror or exc}"
            ) from exc
        try:
            answer = json.loads(line) if line.endswith(b"\n") else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise DeviceCommandFailed(
                command=command, device=self.node, problem="the SCSI relay closed or garbled"
            )
        if "error" in answer:
            error = (
                DeviceCommandRetryable if answer["error"] == "retryable" else DeviceCommandFailed
            )
            problem = str(answer.get("problem", "?"))[:300]
            raise error(command=command, device=self.node, problem=f"{problem} (via the relay)")
        return answer

    def close(self) -> None:
        self._file.close()
        self.sock.close()

    def __enter__(self) -> RelayDevice:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# ---- the privileged side ----------------------------------------------------------------


class Refused(Exception):
    """A request the relay does not carry out (permanent, with the reason for the daemon)."""


def allowed_camera(usb: object, node: object, chosen: Sequence[Profile]) -> UnlockSpec:
    """The unlock of the ums-unlock profile whose camera `usb` (a sysfs path) is, when `node`
    is that USB device's sg node; Refused otherwise. What the device is comes from sysfs alone."""
    if not isinstance(usb, str) or not isinstance(node, str) or not _NODE.fullmatch(node):
        raise Refused("no sg node of the form /dev/sgN")
    real = os.path.realpath(usb)
    if not real.startswith("/sys/devices/") or scsi.usb_device_of(real) != real:
        raise Refused("not a USB device")
    found = scsi.sg_node_of(real)
    if found is None or found.devnode != node:
        raise Refused(f"{node} is not the SCSI generic node of that USB device")
    vendor = _attribute(f"{real}/idVendor")
    product = _attribute(f"{real}/idProduct")
    usb_id = f"{vendor}:{product}".lower()
    for candidate in chosen:
        if candidate.unlock is not None and usb_id in candidate.usb_ids:
            return candidate.unlock
    raise Refused(f"USB device {usb_id} is not a camera any ums-unlock profile allows")


def _attribute(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(16).decode("ascii", "replace").strip()
    except OSError:
        return ""


class _Session:
    """One connection: an open request, then commands, each checked before it is sent."""

    def __init__(
        self, chosen: Sequence[Profile], opener: Any = scsi.SgDevice, allow: Any = None
    ) -> None:
        self.chosen = chosen
        self.opener = opener
        self.allow = allow or allowed_camera
        self.device: Any = None
        self.dialect: dialects.Dialect | None = None
        self.count = 0

    def handle(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            raise Refused("a request is a JSON object")
        self.count += 1
        if self.count > MAX_COMMANDS:
            raise Refused(f"more than {MAX_COMMANDS} requests on one connection")
        if "open" in request:
            return self._open(request["open"])
        if self.device is None or self.dialect is None:
            raise Refused("no device opened")
        name = request.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise Refused("bad command name")
        write = "write" in request
        cdb = _hex(request.get("write" if write else "read"))
        data = _hex(request.get("data", "")) if write else b""
        length = len(data) if write else request.get("length")
        if not isinstance(length, int) or not self.dialect.allows(cdb, write, length):
            raise Refused(f"{self.dialect.name} has no such command ({name})")
        if write:
            self.device.write(name, cdb, data)
            return {"ok": True}
        return {"data": self.device.read(name, cdb, length).hex()}

    def _open(self, what: Any) -> dict[str, Any]:
        if self.device is not None or not isinstance(what, dict):
            raise Refused("one device per connection")
        node = what.get("node")
        spec = self.allow(what.get("usb"), node, self.chosen)
        self.dialect = dialects.get(spec.dialect)
        # The profile's timeout, not the daemon's: the relay bounds its own time.
        self.device = self.opener(node, spec.command_timeout_s)
        _log.info("relay.opened", sg=node, dialect=self.dialect.name)
        return {"ok": True}

    def close(self) -> None:
        if self.device is not None:
            self.device.close()


def _hex(value: Any) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise Refused("bad hex")
    return bytes.fromhex(value)


def serve(
    reader: IO[bytes],
    writer: IO[bytes],
    chosen: Sequence[Profile],
    opener: Any = scsi.SgDevice,
    allow: Any = None,
) -> int:
    """Answer requests until the daemon closes the connection or a request is refused.
    `opener` and `allow` (allowed_camera) are the device and sysfs sides."""
    session = _Session(chosen, opener, allow)
    try:
        while True:
            line = reader.readline(MAX_LINE + 1)
            if not line:
                return 0
            answer, stop = _answer(session, line)
            writer.write(json.dumps(answer).encode() + b"\n")
            writer.flush()
            if stop:
                return 2
    finally:
        session.close()


def _answer(session: _Session, line: bytes) -> tuple[dict[str, Any], bool]:
    """The answer to one request line, and whether the connection ends with it."""
    try:
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise Refused(f"a request line is at most {MAX_LINE} bytes")
        return session.handle(json.loads(line)), False
    except Refused as exc:
        _log.warning("relay.refused", reason=str(exc))
        return {"error": "permanent", "problem": f"refused by the SCSI relay: {exc}"}, True
    except (ValueError, RecursionError):  # not JSON, or nested past the decoder's depth
        return {"error": "permanent", "problem": "refused by the SCSI relay: not JSON"}, True
    except AgentError as exc:
        kind = "retryable" if classify(exc) is ErrorKind.RETRYABLE else "permanent"
        problem = exc.fields.get("problem") or exc.message
        return {"error": kind, "problem": str(problem)}, False


def peer_allowed(conn: socket.socket, user: str = SERVICE_USER) -> bool:
    """Whether the process at the other end is root or the service user (SO_PEERCRED,
    unix(7)): the socket's mode says the same, this holds even if someone loosens it."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    if uid == 0:
        return True
    try:
        return bool(uid == pwd.getpwnam(user).pw_uid)
    except KeyError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m agent.devices.scsi_relay [--config FILE]`: serve the connection on stdin
    (systemd's Accept=yes socket, StandardInput=socket) and answer on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = args[1] if args[:1] == ["--config"] and len(args) == 2 else None
    log.setup(level="info", fmt="json", stream=sys.stderr)
    try:
        conn = socket.socket(fileno=os.dup(0))
    except OSError:
        sys.stderr.write("scsi_relay: standard input is not a socket\n")
        return 2
    with conn:
        if not peer_allowed(conn):
            _log.warning("relay.refused", reason="peer is neither root nor the service user")
            return 2
        try:
            cfg = config.load(path, check_key=False)
            chosen = profiles.load_all(cfg.devices.profiles, cfg.devices.profile_dir)
        except AgentError as exc:
            sys.stderr.write(f"scsi_relay: {exc.message}\n")
            return exc.exit_code
        unlocking = [p for p in chosen if p.unlock is not None]
        return serve(sys.stdin.buffer, sys.stdout.buffer, unlocking)


if __name__ == "__main__":
    sys.exit(main())
