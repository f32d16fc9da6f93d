"""Under systemd the journal files each log line at its level: `journalctl -p warning` shows
warnings and errors only. journald reads the level off the sd-daemon(3) prefix (`<4>`) of a line
written to the stream named by $JOURNAL_STREAM (systemd.exec(5)); anywhere else (a terminal, a
pipe to another program) the lines stay plain JSON.

The agent runs as a process whose stderr is a real pipe; where the test names that pipe in
$JOURNAL_STREAM (its st_dev:st_ino, as systemd does for the journal's socket), the process
cannot tell it from the journal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# One event at each level, through the agent's own logging set-up.
PROGRAM = """
from agent.core import log
log.setup("debug", "auto")
logger = log.get("dockagent")
logger.debug("probe.debugged")
logger.info("probe.informed")
logger.warning("probe.warned", device_serial="CAM-1")
logger.error("probe.failed")
"""


def _run(journal_stream: str | None, *, name_the_pipe: bool) -> list[str]:
    """The agent's stderr lines, written into a pipe; JOURNAL_STREAM names that pipe when
    name_the_pipe, else holds journal_stream as given."""
    read_end, write_end = os.pipe()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DOCKAGENT_") and k not in ("INVOCATION_ID", "JOURNAL_STREAM")
    }
    env["PYTHONPATH"] = str(REPO)
    if name_the_pipe:
        st = os.fstat(write_end)
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    elif journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", PROGRAM], env=env, stderr=write_end, stdout=subprocess.DEVNULL
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        out = fh.read().decode()
    assert proc.wait(timeout=60) == 0, out
    return out.splitlines()


def _event(line: str) -> dict[str, object]:
    return dict(json.loads(line[line.index("{") :]))


def test_lines_to_the_journal_start_with_their_syslog_priority() -> None:
    lines = _run(None, name_the_pipe=True)
    by_event = {str(_event(line)["event"]): line for line in lines}
    assert by_event["probe.warned"].startswith('<4>{"')
    assert _event(by_event["probe.warned"])["device_serial"] == "CAM-1"
    assert by_event["probe.failed"].startswith("<3>{")
    assert by_event["probe.informed"].startswith("<6>{")
    assert by_event["probe.debugged"].startswith("<7>{")


def test_a_plain_pipe_gets_plain_json_lines() -> None:
    for environ in (None, "0:0", "not-a-stream"):
        lines = _run(environ, name_the_pipe=False)
        assert len(lines) == 4
        for line in lines:
            assert line.startswith("{"), line
            json.loads(line)
