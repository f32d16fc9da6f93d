"""The station's configuration: every key declared once, read strictly, shown in the example.

- `spec`: how a key is declared (`key(default, doc, range/choices/checks)`) and how one value is
  read against its declaration.
- `checks`: the checks a declaration can name (absolute paths, private files, time zones).
- `tables`, `health`, `sync`: the declarations themselves, as the frozen dataclasses the rest of
  the agent reads (`cfg.sync.endpoint`); `Config` is the whole.
- `reader`, `load`, `retention`: TOML in, `Config` out, every mistake one line naming the file,
  line and key (ConfigError, exit 78, so systemd does not restart into the same mistake).
- `example`: config.example.toml written from the declarations (scripts/gen-config-example).

No other module reads the environment for settings.
"""

from agent.core.config.health import ComplianceConfig, HealthConfig
from agent.core.config.load import ENV_CONFIG, ENV_DATA_DIR, ENV_STATE_DIRECTORY, load
from agent.core.config.sync import CONFIRM_LEVELS, SYNC_KINDS, SyncConfig
from agent.core.config.tables import (
    Config,
    DevicesConfig,
    IngestConfig,
    KeysConfig,
    LogConfig,
    RetentionClass,
    RetentionConfig,
    RetentionRule,
    ServiceConfig,
    StorageConfig,
)

__all__ = [
    "CONFIRM_LEVELS",
    "ENV_CONFIG",
    "ENV_DATA_DIR",
    "ENV_STATE_DIRECTORY",
    "SYNC_KINDS",
    "ComplianceConfig",
    "Config",
    "DevicesConfig",
    "HealthConfig",
    "IngestConfig",
    "KeysConfig",
    "LogConfig",
    "RetentionClass",
    "RetentionConfig",
    "RetentionRule",
    "ServiceConfig",
    "StorageConfig",
    "SyncConfig",
    "load",
]
