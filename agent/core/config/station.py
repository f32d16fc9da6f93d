"""The station's own configuration, and the sink it names: what custody may be moved under.

A configuration names where evidence goes and when staged copies and camera files are removed,
so the one the station runs under is recorded: `<data_dir>/station-config` holds the resolved
path of the configuration file (or `<embedded defaults>`) that first took the data directory
into use (`scripts/install` writes `/etc/dockagent/config.toml` there before the service ever
runs). A command that moves custody (sync, retry, import and its wipe, run, rebuild) under another
configuration is refused (ForeignConfig, exit 77) unless the operator is root (or the service
user root switches to) and says so with `--foreign-config`; the sink of every confirmation then
names it (agent.custody.seal.Sealer.confirm).

A sink's identity is its kind and where it is (the tus endpoint; the directory sink's resolved
root) and a fingerprint of both. This module reads the record and the station's configuration
file; it decides nothing about a file and writes only the record at first use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from agent.core import durable
from agent.core.config.load import ENV_CONFIG, load
from agent.core.config.sinks import destination
from agent.core.config.sync import SyncConfig
from agent.core.config.tables import Config
from agent.core.errors import AgentError, ForeignConfig

RECORD_NAME = "station-config"
EMBEDDED = "<embedded defaults>"
_MAX_RECORD_BYTES = 4096  # a path; anything longer is not a record this module wrote


@dataclass(frozen=True)
class SinkIdentity:
    kind: str  # "tus" or "directory"
    endpoint: str  # the tus endpoint, or the directory sink's resolved root

    @property
    def fingerprint(self) -> str:
        data = json.dumps({"kind": self.kind, "endpoint": self.endpoint}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()

    def described(self) -> str:
        return f"{self.kind} sink {self.endpoint}"


def sink_of(cfg: Config) -> SinkIdentity:
    if cfg.sync.kind == "tus":
        return SinkIdentity("tus", cfg.sync.endpoint)
    return SinkIdentity("directory", os.path.realpath(cfg.archive_path))


def source_of(cfg: Config) -> str:
    """The configuration's file, resolved (symbolic links and relative names), or EMBEDDED."""
    return EMBEDDED if cfg.source == EMBEDDED else os.path.realpath(cfg.source)


def record_path(data_dir: Path) -> Path:
    return data_dir / RECORD_NAME


def recorded(data_dir: Path) -> str | None:
    """The station's configuration as recorded; None where none is recorded yet."""
    try:
        with record_path(data_dir).open("rb") as fh:
            data = fh.read(_MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        # Whoever may not read it cannot be told the station's configuration from another.
        raise ForeignConfig(
            problem=f"{record_path(data_dir)} cannot be read ({exc.strerror})"
        ) from exc
    text = data.decode("utf-8", "replace").strip()
    if not text or len(data) > _MAX_RECORD_BYTES:
        raise ForeignConfig(problem=f"{record_path(data_dir)} does not name a configuration")
    return text


def adopt_or_check(cfg: Config, *, foreign_allowed: bool) -> str | None:
    """Before custody moves: record the configuration at first use, else check it is the
    station's. Returns the station's configuration file where `cfg` is not it (allowed only
    with foreign_allowed); None where it is."""
    mine = source_of(cfg)
    station = recorded(cfg.data_path)
    if station is None:
        durable.make_dirs(cfg.data_path)
        try:
            # The service user's alone (0600), like the key: only commands that move custody
            # read it, and the station's group only looks.
            durable.write_file(cfg.data_path, RECORD_NAME, mine.encode() + b"\n")
            return None
        except FileExistsError:
            station = recorded(cfg.data_path)  # another command's first use came first
    if station is None or station == mine:
        return None
    if not foreign_allowed:
        raise ForeignConfig(
            problem=f"{mine} is not this station's configuration ({station}, recorded in "
            f"{record_path(cfg.data_path)}); custody moves only under the station's own. Root "
            "may override with --foreign-config, and every confirmation then names the sink"
        )
    if not may_override(cfg.data_path):
        raise ForeignConfig(
            problem=f"{mine} is not this station's configuration ({station}); only root may "
            "move custody under another one (--foreign-config)"
        )
    return station


def may_override(data_dir: Path) -> bool:
    """Root, or the service user that owns the data directory (the installed command switches
    root to it, and no one else can become it)."""
    uid = os.getuid()
    if uid == 0:
        return True
    try:
        return os.stat(data_dir).st_uid == uid
    except OSError:
        return False


def station_sink(cfg: Config) -> SinkIdentity:
    """The sink the station's own configuration names: `cfg`'s own where it is the station's
    (or none is recorded), else the recorded file's. ForeignConfig where that file cannot be
    read (a person must look)."""
    return sink_of(_station_config(cfg))


def station_destination(cfg: Config, dest: Destination) -> SinkIdentity:
    """The sink the station's own configuration names in place of `dest`: `dest`'s own where
    `cfg` is the station's, else the station's sink of that name (its first one if none)."""
    own = _station_config(cfg)
    if own is cfg:
        return dest.identity
    theirs = destinations(own)
    named = [d for d in theirs if d.name == dest.name]
    return (named or list(theirs))[0].identity


def _station_config(cfg: Config) -> Config:
    station = recorded(cfg.data_path)
    if station is None or station == source_of(cfg):
        return cfg
    try:
        # Not $DOCKAGENT_CONFIG: it names the configuration this command was given.
        env = {k: v for k, v in os.environ.items() if k != ENV_CONFIG}
        own = load(None if station == EMBEDDED else station, env, check_key=False)
    except AgentError as exc:
        raise ForeignConfig(
            problem=f"the station's configuration {station} cannot be read ({exc.message})"
        ) from exc
    return own


@dataclass(frozen=True)
class Destination:
    """One sink a file goes to: its name ("" for the single sink of [sync]), the [sync] keys
    with its own, and its identity (what its confirmation records name)."""

    name: str
    sync: SyncConfig
    identity: SinkIdentity


def destinations(cfg: Config) -> tuple[Destination, ...]:
    """Every sink of the configuration: [[sync.sinks]] in order, else [sync]'s one."""
    if not cfg.sync.sinks:
        return (Destination("", cfg.sync, sink_of(cfg)),)
    return tuple(
        Destination(
            s.name,
            dataclasses.replace(
                cfg.sync,
                kind=s.kind,
                endpoint=s.endpoint,
                directory_root=s.directory_root,
                confirm_level=s.confirm_level,
                sinks=(),
            ),
            SinkIdentity(s.kind, destination(s) if s.kind == "directory" else s.endpoint),
        )
        for s in cfg.sync.sinks
    )


def held_sinks(cfg: Config) -> tuple[str, ...] | None:
    """The fingerprints of the sinks whose signed confirmations unlock purge and wipe (each
    one of them), or None where any sink's confirmation does (a single sink; "any")."""
    rule = cfg.sync.held_when
    if not cfg.sync.sinks or rule == ("any",):
        return None
    chosen = [d for d in destinations(cfg) if rule == ("all",) or d.name in rule]
    return tuple(sorted(d.identity.fingerprint for d in chosen))


def required_names(cfg: Config) -> tuple[str, ...] | None:
    """The names of the sinks held_when requires each of; None where any one will do."""
    rule = cfg.sync.held_when
    if not cfg.sync.sinks or rule == ("any",):
        return None
    return tuple(d.name for d in destinations(cfg) if rule == ("all",) or d.name in rule)


def described(cfg: Config) -> str:
    """The configuration's sinks in words (audit records): [sync]'s one as it always was, or
    each of [[sync.sinks]] by name."""
    if not cfg.sync.sinks:
        return sink_of(cfg).described()
    return "; ".join(f"{d.name}: {d.identity.described()}" for d in destinations(cfg))
