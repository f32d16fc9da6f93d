"""The progress bars of `dockagent import` on a terminal: one for the camera, one for the file.

Drawn with rich (a well-kept library, already a dependency of our lint tooling): its bar, byte
counts, transfer rate and time left, redrawn on its own thread ten times a second, are what we
would otherwise write by hand, and it handles the terminal's width and control sequences. Drawn
on stderr, only when both stdout and stderr are terminals: piped or redirected, or with --json,
nothing is drawn. File names are hostile: shown as display_name() escaped them, never as rich
markup. It only draws; the counts are agent.ingest.progress's.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from agent.ingest.progress import Counts, Progress

_UPDATE_S = 0.05  # counts handed to rich at most this often (it redraws at 10 Hz)


def wanted(out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> bool:
    """Bars only for a person at a terminal: both streams are TTYs."""
    try:
        return os.isatty(out.fileno()) and os.isatty(err.fileno())
    except (AttributeError, OSError, ValueError):
        return False


@contextmanager
def bars(progress: Progress) -> Iterator[None]:
    """Draw the copy's progress on stderr while the block runs."""
    # rich only when drawn: it is not loaded for the daemon, a pipe or --json.
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress  # noqa: PLC0415

    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with RichProgress(*columns, console=Console(file=sys.stderr)) as shown:
        camera = shown.add_task("camera", total=None)
        current = shown.add_task("file", total=None, visible=False)
        last = [0.0]

        def watch(c: Counts) -> None:
            now = time.monotonic()
            if now - last[0] < _UPDATE_S and c.file_done < c.file_total:
                return
            last[0] = now
            shown.update(camera, completed=c.bytes_done, total=c.bytes_total or None)
            shown.update(
                current,
                description=c.file_name[:60],
                completed=c.file_done,
                total=c.file_total or None,
                visible=bool(c.file_name),
            )

        progress.watchers.append(watch)
        try:
            yield
        finally:
            progress.watchers.remove(watch)
            c = progress.counts
            shown.update(camera, completed=c.bytes_done, total=c.bytes_total or None)
            shown.update(current, visible=False)
