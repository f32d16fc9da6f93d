"""systemd's part of dockagent-scsi.socket, for tests: listen at a path and, for each
connection, start the relay unit's command with the connection as its standard input and
output (systemd.socket(5) Accept=yes; the unit's StandardInput=socket, StandardOutput=socket).

`relay_socket.py SOCKET RELAY_COMMAND_JSON -- COMMAND...` listens at SOCKET (0600, as
SocketMode= makes it), runs COMMAND (the daemon, or one unlock), passes SIGTERM on to it and
exits with its status. Started inside a umockdev testbed, every relay it starts inherits the
testbed (UMOCKDEV_DIR, LD_PRELOAD) as the command does: both see the same sysfs and the same
emulated /dev/sgN. Only the standard library here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading


def accept_forever(listener: socket.socket, relay: list[str]) -> None:
    while True:
        conn, _ = listener.accept()
        with conn:
            child = subprocess.Popen(relay, stdin=conn.fileno(), stdout=conn.fileno())
        threading.Thread(target=child.wait, daemon=True).start()


def main() -> None:
    path, relay_json, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        sys.exit("usage: relay_socket.py SOCKET RELAY_COMMAND_JSON -- COMMAND...")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(8)
    threading.Thread(
        target=accept_forever, args=(listener, json.loads(relay_json)), daemon=True
    ).start()
    child = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
