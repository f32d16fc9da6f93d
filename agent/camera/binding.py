"""A camera's binding: a small file at its volume root that this station signed when it bound it.

DOCKAGENT.BND holds, one `key=value` a line after a header: the station id, the camera serial,
when it was bound, and an HMAC-SHA256 (RFC 2104) over those lines under the station's binding
key (agent.custody.keys.StationKey.binding_key). It proves only that a station holding that key
wrote it for that serial; it is a file like any other on the volume, so a copy of the whole
volume carries it along. Read bounded (MAX_BYTES, O_NOFOLLOW through agent.camera.volume) and
parsed strictly: every byte comes from the camera. This module formats, parses, reads and writes
that one file; whether a camera must show one is decided in agent.ingest.binding.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from agent.camera import volume

NAME = "DOCKAGENT.BND"
PARTIAL_NAME = "DOCKAGENT.BN~"  # being written; left behind only by a crash (then evidence)
MAX_BYTES = 1024
_HEADER = "dockagent-binding 1"
_FIELDS = ("station", "serial", "bound_at", "hmac")
# Printable ASCII without spaces or "=": what the station id, a serial and a UTC time are made of.
_VALUE = re.compile(r"[!-<>-~]{1,128}")
_MAC = re.compile(r"[0-9a-f]{64}")


class BindingMalformed(ValueError):
    """The file is there but is not a binding this station could have written."""


@dataclass(frozen=True)
class Binding:
    station: str
    serial: str
    bound_at: str
    mac: str  # hex HMAC-SHA256 of signed_part()

    def signed_part(self) -> bytes:
        return (
            f"{_HEADER}\nstation={self.station}\nserial={self.serial}\nbound_at={self.bound_at}\n"
        ).encode("ascii")

    def render(self) -> bytes:
        return self.signed_part() + f"hmac={self.mac}\n".encode("ascii")

    def signed_by(self, key: bytes) -> bool:
        """Whether the HMAC is the one `key` gives (compared in constant time)."""
        expected = hmac.new(key, self.signed_part(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.mac)


def sign(key: bytes, station: str, serial: str, bound_at: str) -> Binding:
    for value in (station, serial, bound_at):
        if not _VALUE.fullmatch(value):
            raise BindingMalformed(f"{value!r} cannot be written into a binding")
    unsigned = Binding(station, serial, bound_at, "")
    mac = hmac.new(key, unsigned.signed_part(), hashlib.sha256).hexdigest()
    return Binding(station, serial, bound_at, mac)


def parse(raw: bytes) -> Binding:
    """The binding in `raw` (at most MAX_BYTES, as read()), or BindingMalformed."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BindingMalformed("it is not ASCII") from exc
    lines = text.split("\n")
    if lines[-1:] == [""]:
        lines.pop()
    if len(lines) != 1 + len(_FIELDS) or lines[0] != _HEADER:
        raise BindingMalformed(f"it is not a {_HEADER!r} file of {1 + len(_FIELDS)} lines")
    values: list[str] = []
    for name, line in zip(_FIELDS, lines[1:], strict=True):
        key, sep, value = line.partition("=")
        if key != name or not sep or not _VALUE.fullmatch(value):
            raise BindingMalformed(f"line {name!r} is missing or malformed")
        values.append(value)
    if not _MAC.fullmatch(values[3]):
        raise BindingMalformed("its hmac is not 64 lower-case hex digits")
    return Binding(*values)


def read(root_fd: int) -> bytes | None:
    """The binding file's bytes, None when there is none; OSError when it is not a regular
    file, is larger than MAX_BYTES or cannot be read."""
    return volume.read_small(root_fd, NAME.encode(), limit=MAX_BYTES)


def write(root_fd: int, binding: Binding) -> None:
    """Write the binding at the volume root: into PARTIAL_NAME first (O_NOFOLLOW: a link
    planted there is refused), fsync'ed, then renamed over NAME and the root fsync'ed, so a
    power cut leaves no binding or a whole one, never a torn one that would refuse the camera
    at its next dock. OSError as the volume gives it (EROFS when mounted read-only)."""
    volume.write_synced(root_fd, PARTIAL_NAME, binding.render())
    os.rename(PARTIAL_NAME, NAME, src_dir_fd=root_fd, dst_dir_fd=root_fd)
    os.fsync(root_fd)
