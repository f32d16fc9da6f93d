"""What every command needs: configuration, logging, the store, the key, the writer lock.

Commands that change state take the writer lock and run start-up recovery first (DESIGN.md
rule 8); commands that only look open the store read-only and never need the daemon, and check
signatures with the public key alone. Every one of them refuses a damaged or stale database
(agent.custody.integrity) before it reads a row. A technician of the station's group, who may
read the database and the chain head but not write the data directory nor read the evidence,
runs only the commands that look (README "Who may run what"): the store opens for them without
writing anything (agent.store.readonly).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.cli import words
from agent.core import config as config_mod
from agent.core import durable, log
from agent.core.config import Config
from agent.core.config import station as station_config
from agent.core.wallclock import utc_now
from agent.custody import integrity, keys
from agent.store import Store, readonly

if TYPE_CHECKING:
    from agent.custody.keys import StationKey
    from agent.custody.seal import Sealer

# The commands that only look (status, queue, ledger, report, doctor) import this module too:
# what only a writer needs (the sealer, recovery, the writer lock and what they import) is
# imported where a writer or a technician action starts, not here.


@dataclass
class Context:
    config: Config
    store: Store
    key: StationKey
    sealer: Sealer


def load_config(path: str | None, log_level: str | None = None) -> Config:
    cfg = config_mod.load(path)
    log.setup(log_level or cfg.log.level, cfg.log.format)
    words.speak(cfg)  # the station's language and zone in what the command prints
    return cfg


def custody_config(args: argparse.Namespace) -> tuple[Config, str | None]:
    """The configuration of a command that moves custody (sync, retry, import, run, rebuild):
    the station's own (recorded at first use, agent.core.config.station), or another only for
    root with --foreign-config. Returns it with the station's configuration file where it is
    another (None where it is the station's own); ForeignConfig (exit 77) otherwise."""
    cfg = load_config(args.config, args.log_level)
    station = station_config.adopt_or_check(
        cfg, foreign_allowed=bool(getattr(args, "foreign_config", False))
    )
    if station is not None:
        log.get(__name__).warning(
            "config.foreign_used",
            config=station_config.source_of(cfg),
            station_config=station,
            command=getattr(args, "command", ""),
        )
    return cfg, station


def sign_custody_action(ctx: Context, action: str, details: dict[str, Any]) -> None:
    """Sign a technician action of a custody command into the chain, naming the configuration
    the command ran under beside `details` (agent.custody.audit adds the operator)."""
    from agent.custody import audit  # noqa: PLC0415 - a writer's module (see the imports)

    details = {**details, "config": station_config.source_of(ctx.config)}
    audit.record_action(ctx.store, ctx.key, ctx.config.station_id, action, details, utc_now())


def note_foreign(ctx: Context, station: str | None, command: str) -> None:
    """A custody command run under another configuration than the station's, signed into the
    chain before it moves anything (the operator, both configurations, the sink it names)."""
    if station is None:
        return
    sign_custody_action(
        ctx,
        "config.overridden",
        {
            "command": command,
            "station_config": station,
            "sink": station_config.described(ctx.config),
        },
    )


@contextmanager
def writer(cfg: Config) -> Iterator[Context]:
    """Writer lock, store (created on first use), station key, then recovery."""
    from agent.custody import recovery  # noqa: PLC0415 - a writer's module (see the imports)
    from agent.custody.seal import Sealer  # noqa: PLC0415 - likewise
    from agent.runtime.lock import WriterLock  # noqa: PLC0415 - likewise

    durable.make_dirs(cfg.data_path)  # its name made durable too (fsync(2) NOTES)
    with WriterLock(cfg.data_path):
        key = keys.load_or_create(cfg.key_path)
        store = integrity.open_store(cfg.data_path, cfg.staging_path, create=True, key=key)
        try:
            sealer = Sealer(store, key, cfg.station_id, cfg.staging_path)
            recovery.recover(store, sealer, cfg.staging_path, utc_now())
            yield Context(cfg, store, key, sealer)
        finally:
            store.close()


@contextmanager
def technician(cfg: Config) -> Iterator[Context]:
    """Store and key for a technician action (enrol, revoke, assign) while the daemon runs.

    No writer lock and no recovery: these actions claim no rows; SQLite serialises them with
    the daemon, and the chain append happens under BEGIN IMMEDIATE like every other.
    """
    from agent.custody.seal import Sealer  # noqa: PLC0415 - a writer's module (see the imports)

    durable.make_dirs(cfg.data_path)  # its name made durable too (fsync(2) NOTES)
    key = keys.load_or_create(cfg.key_path)
    store = integrity.open_store(cfg.data_path, cfg.staging_path, create=True, key=key)
    try:
        yield Context(cfg, store, key, Sealer(store, key, cfg.station_id, cfg.staging_path))
    finally:
        store.close()


def reads_evidence(cfg: Config) -> bool:
    """True for the service user and root: staged copies, sidecars and the private key can be
    read. False for a technician of the station's group."""
    return readonly.may_write(cfg.data_path)


@contextmanager
def reader(cfg: Config, *, check: bool = True, whole: bool = True) -> Iterator[Store]:
    """The store for looking. check=False only for `dockagent verify`, which checks everything
    itself and must name each problem rather than refuse at the first (`whole`: every page of
    the database read first, as a full verify does)."""
    if check:
        key = integrity.station_key(cfg.key_path)
        store = integrity.open_store(cfg.data_path, cfg.staging_path, create=False, key=key)
    else:
        store = integrity.open_unchecked(cfg.data_path, cfg.staging_path, whole=whole)
    try:
        yield store
    finally:
        store.close()
