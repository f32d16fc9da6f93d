"""sd_notify(3) without libsystemd: state changes as datagrams to the service manager's socket.

READY=1, STATUS=..., WATCHDOG=1 and STOPPING=1 go to $NOTIFY_SOCKET (a path or an abstract
'@' name, AF_UNIX datagram). Outside systemd nothing is sent and nothing fails: a notification
that cannot be delivered is logged once and never stops the daemon. This module decides nothing
about health; it only speaks the protocol.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from agent.core import log

_log = log.get(__name__)

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"


def _address(raw: str) -> str | None:
    """sd_notify(3): an absolute path, or '@' for Linux's abstract namespace."""
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None  # vsock: and others are for VMs; this agent runs on the host


class Notifier:
    """Sends notifications to the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get(ENV_SOCKET, "")
        self.address = _address(raw) if raw else None
        self._warned = False
        if raw and self.address is None:
            _log.warning("notify.socket_ignored", socket=raw)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of newline-separated VARIABLE=value fields (sd_notify(3))."""
        if self.address is None:
            return False
        message = "\n".join(f.replace("\n", " ") for f in fields).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(message)
        except OSError as exc:
            if not self._warned:  # once: a gone manager must not flood the journal
                _log.warning("notify.send_failed", error=str(exc))
                self._warned = True
            return False
        return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd set for this process, in seconds, or None.

    sd_watchdog_enabled(3): WATCHDOG_USEC is the timeout; WATCHDOG_PID, when set, names the
    process it is meant for (a child that inherited the variables must not ping).
    """
    env = os.environ if environ is None else environ
    usec = env.get(ENV_WATCHDOG_USEC, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get(ENV_WATCHDOG_PID, "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6
