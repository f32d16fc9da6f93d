"""What the dock's health adds to each file before it is sealed: corrected times, retention.

The camera's own times stay on the row as read; beside them go the times minus the drift measured
at this dock, the basis of that correction, and the file's retention class from the configured
rules. Runs before sealing, so the signed record carries them. Reads no camera and no file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from agent.core.config import Config
from agent.health import clock
from agent.store import Store


def retention_class(config: Config, kind: str, important: bool) -> str:
    """The retention class of a file: the first configured rule that matches, else the default."""
    for rule in config.retention.rules:
        if rule.kinds and kind not in rule.kinds:
            continue
        if rule.important is not None and rule.important != important:
            continue
        return rule.retention_class
    return config.retention.default_class


def annotate(
    store: Store,
    config: Config,
    file_ids: Sequence[int],
    drift: int | None,
    zone: tzinfo | None,
    basis: str,
) -> None:
    """Put the corrected times and the retention class on these files, in one transaction."""
    with store.transaction():
        for row in store.file_times(file_ids):
            store.set_file_health(
                row.id,
                clock_drift_s=drift,
                recorded_start_corrected=clock.corrected_time(row.recorded_start, drift, zone),
                recorded_end_corrected=clock.corrected_time(row.recorded_end, drift, zone),
                time_basis=basis if row.recorded_start else "",
                retention_class=retention_class(config, row.kind, row.important),
            )
