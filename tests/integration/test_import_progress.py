"""`dockagent import` of a 200 MiB camera draws progress bars (bytes, rate, time left) for the
camera and its files on a terminal, and nothing of the sort when its output is piped; the
store keeps the copy's bytes done and total, which `queue` and `devices` read."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.cli import CLI, keep
from tests.support.evidence import rows

MIB = 1 << 20
SPEC = CameraSpec(
    serial="BAR0001",
    days=1,
    files_per_day=6,
    file_size=256 << 10,
    large_files=4,
    large_size=50 * MIB,
    split_every=0,
)
_PERCENT = re.compile(rb"(\d{1,3})%")


def _on_terminal(station: Station, *args: str, timeout: float = 300) -> tuple[int, bytes]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; (exit code, all it wrote)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = station.env()
    env["TERM"] = "xterm-256color"
    for name in ("NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [*CLI, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: every end of the terminal's other side is closed
                break
            if not chunk:
                break
            out += chunk
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        keep(station.cli_log, args, bytes(out))
    return code, bytes(out)


def test_import_on_a_terminal_shows_bars_that_advance_and_piped_shows_none(
    station: Station, tmp_path: Path
) -> None:
    cam = tmp_path / "cam"
    manifest = write_camera(SPEC, cam)
    assert sum(e.size for e in manifest.entries) >= 200 * MIB

    code, out = _on_terminal(station, "import", str(cam))
    assert code == 0, out.decode(errors="replace")[-2000:]
    shown = {int(p) for p in _PERCENT.findall(out)}
    # The camera's bar and the files' bars advance: more than one percentage was drawn, and
    # the camera's bar ended full, with its bytes in binary units.
    assert len(shown) >= 2, out.decode(errors="replace")[-2000:]
    assert 100 in shown
    assert b"MiB" in out and b"camera" in out
    assert f"{len(manifest.entries)} sealed now".encode() in out

    # The copy's progress is kept on the session: every byte done, of the bytes to copy.
    (progress,) = rows(station.data_dir, "SELECT * FROM copy_progress")
    total = sum(e.size for e in manifest.entries)
    assert (progress["bytes_done"], progress["bytes_total"]) == (total, total)

    # Piped (a script, a log): the same import of a second camera draws nothing.
    other = tmp_path / "other"
    write_camera(CameraSpec(serial="BAR0002", days=1, files_per_day=4, large_files=1,
                            large_size=16 * MIB, split_every=0), other)  # fmt: skip
    piped = station.run("import", str(other))
    assert piped.returncode == 0, piped.stderr
    for stream in (piped.stdout, piped.stderr):
        assert not _PERCENT.search(stream.encode()), stream
        assert "\x1b[" not in stream and "━" not in stream
    assert "sealed now" in piped.stdout
