"""Configuration: TOML in, frozen dataclasses out, every mistake one clear line (exit 78).

Unknown keys, wrong types, relative or unusable paths and a signing key readable by others are
refused here, naming the key and its line, so the daemon never starts half-configured and systemd
does not restart into the same mistake. No other module reads the environment for settings.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import stat
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.core.errors import ConfigError
from agent.core.model import WipePolicy

ENV_CONFIG = "DOCKAGENT_CONFIG"
ENV_DATA_DIR = "DOCKAGENT_DATA_DIR"
ENV_STATE_DIRECTORY = "STATE_DIRECTORY"  # set by systemd for StateDirectory= (systemd.exec(5))

_STATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class KeysConfig:
    # Ed25519 station signing key; empty means <data_dir>/station.key.
    signing_key: str = ""


@dataclass(frozen=True)
class StorageConfig:
    # Free bytes that staging always keeps; an import that would cut into it copies nothing.
    reserve_bytes: int = 1 << 30
    # Size of each read/write piece when copying off a camera. 256 KiB-1 MiB measured fastest.
    copy_chunk_bytes: int = 1 << 20


@dataclass(frozen=True)
class IngestConfig:
    # never | after_seal | after_confirm: when a recording may be wiped from the camera.
    wipe_policy: WipePolicy = WipePolicy.AFTER_CONFIRM
    # The camera's time zone for its zone-less FAT times; empty means the station's.
    camera_timezone: str = ""


@dataclass(frozen=True)
class DevicesConfig:
    # Device sources the daemon listens to: any of "udev", "mountwatch", "fake".
    sources: tuple[str, ...] = ("udev",)
    # Only enrolled serials are taken (dockagent devices enroll SERIAL); false admits any
    # serial of a known camera profile.
    require_enrollment: bool = True
    # Camera profiles in use, by name: shipped ones, or TOML files in profile_dir.
    profiles: tuple[str, ...] = ("generic",)
    profile_dir: str = "/etc/dockagent/profiles"
    # external: udev + systemd-mount (or udisks2) mount the camera; mount: the agent mounts it
    # read-only (nosuid,nodev,noexec) under mount_dir itself.
    mount_strategy: str = "external"
    mount_dir: str = "/run/dockagent/mnt"
    # mountwatch: the directory under which cameras are mounted, one directory per camera,
    # named by the camera's USB serial (the udev rule's systemd-mount unit does this).
    mount_root: str = "/media/dockagent"
    # fake: a directory of JSON event files (tests and the demo).
    fake_spool: str = ""
    # Cameras taken in at once; more wait their turn.
    max_parallel_devices: int = 8
    # On SIGTERM, in-flight copies may finish for this long; the rest are copied at next start.
    drain_deadline_s: int = 20
    # How long to wait for an external mount of an admitted device to appear.
    mount_wait_s: int = 30


SYNC_KINDS = ("directory", "tus")
CONFIRM_LEVELS = ("complete", "checksummed", "verified")  # specs/upload-protocol.md, in order
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


@dataclass(frozen=True)
class SyncConfig:
    # Where sealed evidence goes: "directory" (NAS / local evidence disk) or "tus" (central server).
    kind: str = "directory"
    # tus creation URL; https, or http only to a loopback address.
    endpoint: str = ""
    # Root of the directory sink; empty means <data_dir>/archive.
    directory_root: str = ""
    # complete | checksummed | verified: what counts as confirmed (wipe and purge wait for it).
    confirm_level: str = "verified"
    # Bytes per PATCH; memory stays bounded by this.
    chunk_bytes: int = 16 << 20
    max_parallel_uploads: int = 2
    # Total upload rate of all workers, bytes per second; 0 means unlimited.
    bandwidth_bytes_per_s: int = 0
    # Station-local times when uploads may run, e.g. ["22:00-06:00"]; empty means always.
    windows: tuple[str, ...] = ()
    # TLS: extra CA bundle (PEM) to trust, client certificate and key for mutual TLS.
    ca_bundle: str = ""
    client_cert: str = ""
    client_key: str = ""
    # File holding a bearer token sent as Authorization (never logged); 0600 required.
    bearer_token_file: str = ""
    connect_timeout_s: int = 10
    read_timeout_s: int = 60
    # Short retries of one upload before it waits (with backoff) for a later attempt.
    retry_attempts: int = 4
    retry_max_delay_s: int = 3600
    # Seconds a confirmed file's staged copy is kept before it is purged.
    purge_grace_s: int = 86400


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    # auto: human-readable on a terminal, JSON otherwise (journald).
    format: str = "auto"


@dataclass(frozen=True)
class HealthConfig:
    # Clock: a camera whose |drift| exceeds this (seconds) and was not corrected is not ready.
    # (The threshold above which TIME.TXT is written is the camera profile's clock_threshold_s.)
    clock_not_ready_s: int = 300
    # A camera whose drift changes faster than this (seconds per day) is flagged.
    drift_rate_flag_s_per_day: float = 3.0
    # A drift trend needs sessions spanning at least this many hours.
    drift_trend_min_span_h: int = 24
    # Battery capacity (full charge / design, %): below warn a warning, below bad not ready.
    battery_capacity_warn_pct: int = 80
    battery_capacity_bad_pct: int = 60
    # Peak battery temperature (deg C): from warn a warning, from bad not ready.
    battery_temp_warn_c: int = 45
    battery_temp_bad_c: int = 60
    battery_cycles_warn: int = 1000
    # A deep discharge is a fall to this charge (%) or below; from ..._warn of them a warning.
    battery_deep_discharge_pct: int = 5
    battery_deep_discharges_warn: int = 3
    # A sudden drop: this many percentage points lost between samples this close (seconds).
    battery_sudden_drop_pct: int = 10
    battery_sudden_drop_window_s: int = 900
    # More than this share (%) of BATTERY.CSV rows unreadable is a warning.
    battery_skipped_warn_pct: int = 5
    # Charge at dock below this (%) is a warning: charge before the camera is issued.
    charge_warn_pct: int = 20
    # Free camera storage after offload (%): below warn a warning, below not_ready not ready.
    storage_warn_free_pct: int = 30
    storage_not_ready_free_pct: int = 10


@dataclass(frozen=True)
class ComplianceConfig:
    # A recording ingested more than this many hours after it ended (drift-corrected) is late.
    late_after_h: int = 24
    # Consecutive segments (NNNN, NNNN+1) of one recording further apart than segment_gap_s
    # but at most segment_window_s seconds are listed as a gap to be explained.
    segment_gap_s: int = 3
    segment_window_s: int = 300


# ---- issue 6: running as a service ------------------------------------------------------------
@dataclass(frozen=True)
class ServiceConfig:
    # Prometheus text file (node_exporter's textfile collector), rewritten atomically by the
    # daemon every metrics_interval_s; "" writes none.
    metrics_path: str = ""
    metrics_interval_s: int = 30
    # A camera worker that copies nothing and finishes no file for this long is stalled: the
    # daemon stops its systemd watchdog pings, and systemd restarts it (WatchdogSec=).
    stall_limit_s: int = 600
    # dockagent doctor: the oldest file not yet confirmed is a warning from this age (hours)
    # and a fault from unconfirmed_bad_h; refusals of this many past hours are reported.
    unconfirmed_warn_h: int = 24
    unconfirmed_bad_h: int = 72
    refusals_recent_h: int = 24


# ---- end issue 6 ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionClass:
    name: str
    min_days: int  # kept at least this long at the central store; 0: no fixed minimum
    description: str = ""


@dataclass(frozen=True)
class RetentionRule:
    retention_class: str
    kinds: tuple[str, ...] = ()  # file kinds the rule applies to; empty: any
    important: bool | None = None  # the camera's important mark; None: either


@dataclass(frozen=True)
class RetentionConfig:
    # Classes are configuration, not code: the unit's regulation names them. A file gets the
    # class of the first rule that matches it, else default_class.
    default_class: str = "standard"
    classes: tuple[RetentionClass, ...] = (
        RetentionClass("standard", 90, "simple incident: kept at least 3 months"),
        RetentionClass(
            "important",
            180,
            "marked important on the camera: kept at least 6 months, and until a case "
            "decision sets its class",
        ),
    )
    rules: tuple[RetentionRule, ...] = (RetentionRule("important", important=True),)


@dataclass(frozen=True)
class Config:
    station_id: str = "STATION-01"
    data_dir: str = ""
    keys: KeysConfig = field(default_factory=KeysConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    log: LogConfig = field(default_factory=LogConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    compliance: ComplianceConfig = field(default_factory=ComplianceConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)  # issue 6
    source: str = "<embedded defaults>"  # where this configuration came from

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def db_path(self) -> Path:
        return self.data_path / "dockagent.db"

    @property
    def staging_path(self) -> Path:
        return self.data_path / "staging"

    @property
    def archive_path(self) -> Path:
        return (
            Path(self.sync.directory_root)
            if self.sync.directory_root
            else self.data_path / "archive"
        )

    @property
    def key_path(self) -> Path:
        return (
            Path(self.keys.signing_key) if self.keys.signing_key else self.data_path / "station.key"
        )


_SECTIONS: dict[str, type[Any]] = {
    "keys": KeysConfig,
    "storage": StorageConfig,
    "ingest": IngestConfig,
    "devices": DevicesConfig,
    "log": LogConfig,
    "sync": SyncConfig,
    "health": HealthConfig,
    "compliance": ComplianceConfig,
    "service": ServiceConfig,  # issue 6
}
_TOP_LEVEL = {"station_id": str, "data_dir": str}
_LOG_LEVELS = {"debug", "info", "warning", "error"}
_LOG_FORMATS = {"auto", "json", "console"}


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """Best-effort line number of `key` (inside `[section]`): tomllib reports no positions."""
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", stripped)
        if header:
            current = header.group(1)
            if section is not None and key == "" and current == section:
                return number
            continue
        if current == section and re.match(rf"^{re.escape(key)}\s*=", stripped):
            return number
    return None


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source

    def fail(self, section: str | None, key: str, problem: str) -> ConfigError:
        name = f"{section}.{key}" if section else key
        line = _line_of(self.text, section, key)
        where = f"{self.source}:{line}" if line else self.source
        return ConfigError(where=f"{where}: {name}", problem=problem)

    def coerce(self, section: str | None, key: str, value: Any, wanted: Any) -> Any:
        if isinstance(wanted, type) and issubclass(wanted, WipePolicy):
            choices = [p.value for p in WipePolicy]
            if not isinstance(value, str) or value not in choices:
                raise self.fail(section, key, f"must be one of {', '.join(choices)}, not {value!r}")
            return WipePolicy(value)
        if wanted is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(section, key, f"must be an integer, not {type(value).__name__}")
            if value < 0:
                raise self.fail(section, key, "must not be negative")
            return value
        if wanted is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(section, key, f"must be a number, not {type(value).__name__}")
            if value < 0:
                raise self.fail(section, key, "must not be negative")
            return float(value)
        if wanted is str:
            if not isinstance(value, str):
                raise self.fail(section, key, f"must be a string, not {type(value).__name__}")
            return value
        if wanted == tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(section, key, "must be a list of strings")
            return tuple(value)
        if wanted is bool:
            if not isinstance(value, bool):
                raise self.fail(section, key, f"must be true or false, not {value!r}")
            return value
        raise self.fail(section, key, f"has an unsupported type {wanted!r}")  # pragma: no cover

    def section(self, name: str, raw: Any, cls: type[Any]) -> Any:
        if not isinstance(raw, dict):
            raise self.fail(None, name, "must be a table ([" + name + "])")
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise self.fail(name, key, f"unknown key (known: {', '.join(sorted(known))})")
            values[key] = self.coerce(name, key, value, hints[key])
        return cls(**values)


def load(
    path: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
    *,
    check_key: bool = True,
) -> Config:
    """Read the configuration from `path`, else $DOCKAGENT_CONFIG, else the embedded defaults.

    check_key=False leaves the signing key's file alone (`dockagent doctor` judges it apart).
    """
    env = dict(os.environ) if environ is None else environ
    chosen = str(path) if path else env.get(ENV_CONFIG, "")
    raw: dict[str, Any] = {}
    text = ""
    source = "<embedded defaults>"
    if chosen:
        source = chosen
        try:
            with open(chosen, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ConfigError(where=chosen, problem=f"cannot read: {exc.strerror}") from exc
        text = data.decode("utf-8", "replace")
        try:
            raw = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(where=chosen, problem=f"not valid TOML: {exc}") from exc
    reader = _Reader(text, source)
    top: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _SECTIONS:
            sections[key] = reader.section(key, value, _SECTIONS[key])
        elif key == "retention":
            sections[key] = _read_retention(reader, value)
        elif key in _TOP_LEVEL:
            top[key] = reader.coerce(None, key, value, _TOP_LEVEL[key])
        else:
            known = sorted([*_TOP_LEVEL, *(f"[{s}]" for s in [*_SECTIONS, "retention"])])
            raise reader.fail(None, key, f"unknown key (known: {', '.join(known)})")

    # data_dir: DOCKAGENT_DATA_DIR overrides everything; then the file; then systemd's
    # StateDirectory= (which may list several directories separated by ':').
    data_dir = env.get(ENV_DATA_DIR) or top.get("data_dir") or ""
    if not data_dir and env.get(ENV_STATE_DIRECTORY):
        data_dir = env[ENV_STATE_DIRECTORY].split(":")[0]
    top["data_dir"] = data_dir
    config = Config(**top, **sections, source=source)
    _validate(config, reader, check_key=check_key)
    return config


def _read_retention(reader: _Reader, raw: Any) -> RetentionConfig:
    """[retention]: default_class, [retention.classes.NAME] tables, [[retention.rules]]."""
    if not isinstance(raw, dict):
        raise reader.fail(None, "retention", "must be a table ([retention])")
    known = {"default_class", "classes", "rules"}
    for key in raw:
        if key not in known:
            raise reader.fail("retention", key, f"unknown key (known: {', '.join(sorted(known))})")
    defaults = RetentionConfig()
    classes = defaults.classes
    if "classes" in raw:
        if not isinstance(raw["classes"], dict) or not raw["classes"]:
            raise reader.fail("retention", "classes", "must be tables [retention.classes.NAME]")
        parsed: list[RetentionClass] = []
        for name, table in raw["classes"].items():
            where = f"retention.classes.{name}"
            if not re.fullmatch(r"[a-z0-9_-]{1,32}", name):
                raise reader.fail(
                    "retention", "classes", f"class name {name!r}: 1-32 of a-z 0-9 _ -"
                )
            if not isinstance(table, dict):
                raise reader.fail("retention", "classes", f"{name} must be a table [{where}]")
            for key in table:
                if key not in ("min_days", "description"):
                    raise reader.fail(where, key, "unknown key (known: description, min_days)")
            if "min_days" not in table:
                raise reader.fail(where, "min_days", "missing (days kept at least; 0: no minimum)")
            parsed.append(
                RetentionClass(
                    name,
                    reader.coerce(where, "min_days", table["min_days"], int),
                    reader.coerce(where, "description", table.get("description", ""), str),
                )
            )
        classes = tuple(parsed)
    rules = defaults.rules
    if "rules" in raw:
        if not isinstance(raw["rules"], list):
            raise reader.fail("retention", "rules", "must be [[retention.rules]] tables")
        parsed_rules: list[RetentionRule] = []
        kinds = {"video", "audio", "photo", "other"}
        for index, table in enumerate(raw["rules"], start=1):
            where = f"retention.rules #{index}"
            if not isinstance(table, dict):
                raise reader.fail("retention", "rules", f"{where} must be a table")
            for key in table:
                if key not in ("class", "kinds", "important"):
                    raise reader.fail(
                        "retention", key, f"{where}: unknown key (known: class, important, kinds)"
                    )
            if "class" not in table:
                raise reader.fail("retention", "rules", f"{where}: class missing")
            rule_kinds = reader.coerce(
                "retention", "kinds", table.get("kinds", []), tuple[str, ...]
            )
            bad = [k for k in rule_kinds if k not in kinds]
            if bad:
                raise reader.fail(
                    "retention",
                    "kinds",
                    f"{where}: unknown kind {bad[0]!r} (known: {', '.join(sorted(kinds))})",
                )
            important = table.get("important")
            if important is not None:
                important = reader.coerce("retention", "important", important, bool)
            parsed_rules.append(
                RetentionRule(
                    reader.coerce("retention", "class", table["class"], str), rule_kinds, important
                )
            )
        rules = tuple(parsed_rules)
    default_class = reader.coerce(
        "retention", "default_class", raw.get("default_class", defaults.default_class), str
    )
    names = {c.name for c in classes}
    if default_class not in names:
        raise reader.fail(
            "retention",
            "default_class",
            f"{default_class!r} is not a class (classes: {', '.join(sorted(names))})",
        )
    for rule in rules:
        if rule.retention_class not in names:
            raise reader.fail(
                "retention",
                "class",
                f"rule class {rule.retention_class!r} is not a class "
                f"(classes: {', '.join(sorted(names))})",
            )
    return RetentionConfig(default_class, classes, rules)


def _validate_health(config: Config, reader: _Reader) -> None:
    health = config.health
    pairs = (
        ("battery_capacity_bad_pct", "battery_capacity_warn_pct"),
        ("storage_not_ready_free_pct", "storage_warn_free_pct"),
        ("battery_temp_warn_c", "battery_temp_bad_c"),
    )
    for low, high in pairs:
        if getattr(health, low) > getattr(health, high):
            raise reader.fail("health", low, f"must not be above {high}")
    for key in ("battery_capacity_warn_pct", "storage_warn_free_pct", "charge_warn_pct"):
        if getattr(health, key) > 100:
            raise reader.fail("health", key, "is a percentage: at most 100")
    if config.compliance.late_after_h < 1:
        raise reader.fail("compliance", "late_after_h", "must be at least 1")
    if config.compliance.segment_gap_s > config.compliance.segment_window_s:
        raise reader.fail("compliance", "segment_gap_s", "must not be above segment_window_s")


def _validate(config: Config, reader: _Reader, *, check_key: bool = True) -> None:
    if not _STATION_ID.match(config.station_id):
        raise reader.fail(None, "station_id", "must be 1-64 of A-Z a-z 0-9 . _ - (starting alnum)")
    if not config.data_dir:
        raise reader.fail(
            None,
            "data_dir",
            f"not set: give data_dir, or set ${ENV_DATA_DIR} "
            "(or run under systemd's StateDirectory=)",
        )
    if not os.path.isabs(config.data_dir):
        raise reader.fail(None, "data_dir", f"must be an absolute path, not {config.data_dir!r}")
    if os.path.exists(config.data_dir) and not os.path.isdir(config.data_dir):
        raise reader.fail(None, "data_dir", f"{config.data_dir} exists and is not a directory")
    parent = config.data_dir
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK):
        raise reader.fail(None, "data_dir", f"{parent} is not writable by this user")
    if config.keys.signing_key and not os.path.isabs(config.keys.signing_key):
        raise reader.fail("keys", "signing_key", "must be an absolute path")
    if check_key:
        _check_key_file(config, reader)
    if config.storage.copy_chunk_bytes < 4096 or config.storage.copy_chunk_bytes > 64 << 20:
        raise reader.fail("storage", "copy_chunk_bytes", "must be between 4096 and 67108864")
    _validate_devices(config, reader)
    _validate_health(config, reader)
    if config.log.level not in _LOG_LEVELS:
        raise reader.fail("log", "level", f"must be one of {', '.join(sorted(_LOG_LEVELS))}")
    if config.log.format not in _LOG_FORMATS:
        raise reader.fail("log", "format", f"must be one of {', '.join(sorted(_LOG_FORMATS))}")
    if config.ingest.camera_timezone:
        try:
            ZoneInfo(config.ingest.camera_timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise reader.fail("ingest", "camera_timezone", "unknown time zone") from exc
    _validate_sync(config.sync, reader)
    _validate_service(config.service, reader)  # issue 6


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_sync(sync: SyncConfig, reader: _Reader) -> None:
    if sync.kind not in SYNC_KINDS:
        raise reader.fail("sync", "kind", f"must be one of {', '.join(SYNC_KINDS)}")
    if sync.confirm_level not in CONFIRM_LEVELS:
        raise reader.fail("sync", "confirm_level", f"must be one of {', '.join(CONFIRM_LEVELS)}")
    if sync.kind == "tus":
        if not sync.endpoint:
            raise reader.fail("sync", "endpoint", "required when kind is tus")
        parts = urlsplit(sync.endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise reader.fail("sync", "endpoint", "must be an https:// URL")
        # Evidence and tokens never cross a network in clear text; loopback is for tests and a
        # local TLS-terminating proxy.
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise reader.fail(
                "sync", "endpoint", "plain http is refused except to a loopback address"
            )
    for key in ("directory_root", "ca_bundle", "client_cert", "client_key", "bearer_token_file"):
        value = getattr(sync, key)
        if value and not os.path.isabs(value):
            raise reader.fail("sync", key, "must be an absolute path")
    for key in ("ca_bundle", "client_cert", "client_key", "bearer_token_file"):
        value = getattr(sync, key)
        if value and not os.path.isfile(value):
            raise reader.fail("sync", key, f"{value} is not a readable file")
    if bool(sync.client_cert) != bool(sync.client_key):
        raise reader.fail("sync", "client_key", "client_cert and client_key go together")
    for key in ("client_key", "bearer_token_file"):
        value = getattr(sync, key)
        if value and os.stat(value).st_mode & 0o077:
            raise reader.fail("sync", key, f"{value} is readable by others; run: chmod 600 {value}")
    if not 4096 <= sync.chunk_bytes <= 1 << 30:
        raise reader.fail("sync", "chunk_bytes", "must be between 4096 and 1073741824")
    if not 1 <= sync.max_parallel_uploads <= 16:
        raise reader.fail("sync", "max_parallel_uploads", "must be between 1 and 16")
    for key in ("connect_timeout_s", "read_timeout_s", "retry_attempts", "retry_max_delay_s"):
        if getattr(sync, key) < 1:
            raise reader.fail("sync", key, "must be at least 1")
    for window in sync.windows:
        if not _WINDOW.match(window):
            raise reader.fail("sync", "windows", f"{window!r} is not HH:MM-HH:MM")


def _validate_service(service: ServiceConfig, reader: _Reader) -> None:
    """[service] (issue 6)."""
    if service.metrics_path and not os.path.isabs(service.metrics_path):
        raise reader.fail("service", "metrics_path", "must be an absolute path (or empty)")
    for key in ("metrics_interval_s", "stall_limit_s", "unconfirmed_warn_h", "refusals_recent_h"):
        if getattr(service, key) < 1:
            raise reader.fail("service", key, "must be at least 1")
    if service.unconfirmed_warn_h > service.unconfirmed_bad_h:
        raise reader.fail("service", "unconfirmed_warn_h", "must not be above unconfirmed_bad_h")


_SOURCES = {"udev", "mountwatch", "fake"}


def _validate_devices(config: Config, reader: _Reader) -> None:
    dev = config.devices
    unknown = [s for s in dev.sources if s not in _SOURCES]
    if unknown:
        raise reader.fail(
            "devices", "sources", f"unknown source {unknown[0]!r} (known: fake, mountwatch, udev)"
        )
    if not dev.profiles:
        raise reader.fail("devices", "profiles", "must name at least one camera profile")
    if dev.mount_strategy not in ("external", "mount"):
        raise reader.fail("devices", "mount_strategy", "must be external or mount")
    for key in ("mount_dir", "mount_root", "profile_dir"):
        if not os.path.isabs(getattr(dev, key)):
            raise reader.fail("devices", key, "must be an absolute path")
    if "fake" in dev.sources and not os.path.isabs(dev.fake_spool):
        raise reader.fail(
            "devices", "fake_spool", "must be an absolute path when the fake source is on"
        )
    if not 1 <= dev.max_parallel_devices <= 64:
        raise reader.fail("devices", "max_parallel_devices", "must be between 1 and 64")


def _check_key_file(config: Config, reader: _Reader) -> None:
    path = config.key_path
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return  # generated on first use
    except OSError as exc:
        raise reader.fail("keys", "signing_key", f"{path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise reader.fail("keys", "signing_key", f"{path} is not a regular file")
    if st.st_mode & 0o077:
        raise reader.fail(
            "keys",
            "signing_key",
            f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 600 {path}",
        )
