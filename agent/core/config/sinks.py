"""[[sync.sinks]] and [sync] held_when read: several destinations for each file, and whose
confirmations unlock the purge and the wipe.

Without [[sync.sinks]] the one sink [sync] describes is the station's, as it always was. With
them, each names a destination; the rule names sinks that exist, no two sinks share a name or a
destination. Nothing here opens a connection or reads a file but the configuration.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from agent.core.config.reader import Reader
from agent.core.config.sync import HELD_WHEN, SinkConfig, SyncConfig

_SECTION = "sync.sinks"
_MAX_SINKS = 8  # a handful of destinations; every one is tried for every file


def read_sync(reader: Reader, raw: Any) -> SyncConfig:
    """[sync] with its [[sync.sinks]] and held_when (a string is a list of one)."""
    if not isinstance(raw, dict):
        raise reader.fail(None, "sync", "must be a table ([sync])")
    plain = {k: v for k, v in raw.items() if k != "sinks"}
    if isinstance(plain.get("held_when"), str):
        plain["held_when"] = [plain["held_when"]]
    sync: SyncConfig = reader.table("sync", plain, SyncConfig)
    if "sinks" not in raw:
        return sync
    tables = raw["sinks"]
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise reader.fail("sync", "sinks", "must be tables ([[sync.sinks]])")
    if not 1 <= len(tables) <= _MAX_SINKS:
        raise reader.fail("sync", "sinks", f"give 1 to {_MAX_SINKS} [[sync.sinks]] tables")
    listed = tuple(_sink(reader, table) for table in tables)
    _check_distinct(reader, listed)
    _check_rule(reader, sync.held_when, listed)
    return dataclasses.replace(sync, sinks=listed)


def _sink(reader: Reader, table: dict[str, Any]) -> SinkConfig:
    sink: SinkConfig = SinkConfig(**reader.keys(_SECTION, table, SinkConfig))
    if not sink.name or not sink.name.replace("-", "").replace("_", "").isalnum():
        raise reader.fail(_SECTION, "name", "required: letters, digits, - and _ only")
    if len(sink.name) > 64:
        raise reader.fail(_SECTION, "name", "at most 64 characters")
    if sink.kind == "directory" and not sink.directory_root:
        raise reader.fail(_SECTION, "directory_root", f"required for directory sink {sink.name!r}")
    return sink


def destination(sink: SinkConfig) -> str:
    """Where a sink puts evidence: its endpoint, or its directory resolved."""
    return (
        sink.endpoint.rstrip("/") if sink.kind == "tus" else os.path.realpath(sink.directory_root)
    )


def _check_distinct(reader: Reader, listed: tuple[SinkConfig, ...]) -> None:
    names: set[str] = set()
    places: dict[str, str] = {}
    for sink in listed:
        if sink.name in names:
            raise reader.fail(_SECTION, "name", f"{sink.name!r} names two sinks")
        names.add(sink.name)
        place = destination(sink)
        if place in places:
            raise reader.fail(
                _SECTION,
                "endpoint" if sink.kind == "tus" else "directory_root",
                f"sinks {places[place]!r} and {sink.name!r} both go to {place}: "
                "a second copy in the same place is no backup",
            )
        places[place] = sink.name


def _check_rule(reader: Reader, rule: tuple[str, ...], listed: tuple[SinkConfig, ...]) -> None:
    if not rule:
        raise reader.fail("sync", "held_when", '"all", "any" or a list of sink names')
    if len(rule) == 1 and rule[0] in HELD_WHEN:
        return
    names = {sink.name for sink in listed}
    for name in rule:
        if name not in names:
            known = ", ".join(sorted(names))
            raise reader.fail(
                "sync",
                "held_when",
                f'{name!r} is no sink (sinks: {known}; or "all" or "any" alone)',
            )
