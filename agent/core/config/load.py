"""Reading the configuration: TOML in, the frozen tables out, every mistake one line (exit 78).

Each key is read against its declaration (`spec.read`); what remains here are the rules that
join keys or look past the file: the data directory and its environment variables, the signing
key's mode, a tus endpoint, retention classes that rules name. No other module reads the
environment for settings.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tomllib
from typing import Any
from urllib.parse import urlsplit

from agent.core.config import retention
from agent.core.config.reader import Reader
from agent.core.config.sinks import read_sync
from agent.core.config.spec import declared, tables
from agent.core.config.sync import SyncConfig
from agent.core.config.tables import Config, DevicesConfig
from agent.core.errors import ConfigError

ENV_CONFIG = "DOCKAGENT_CONFIG"
ENV_DATA_DIR = "DOCKAGENT_DATA_DIR"
ENV_STATE_DIRECTORY = "STATE_DIRECTORY"  # set by systemd for StateDirectory= (systemd.exec(5))


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
    reader = Reader("", Config.source)  # "<embedded defaults>"
    if chosen:
        raw, reader = _parse(chosen)
    by_table = dict(tables(Config))
    _refuse_unknown_names(reader, raw)
    values = reader.keys(None, {k: v for k, v in raw.items() if k not in by_table}, Config)
    for name, value in raw.items():
        if name == "retention":
            values[name] = retention.read(reader, value)
        elif name == "sync":
            values[name] = read_sync(reader, value)
        elif name in by_table:
            values[name] = reader.table(name, value, by_table[name])
    # data_dir: DOCKAGENT_DATA_DIR overrides everything; then the file; then systemd's
    # StateDirectory= (which may list several directories separated by ':').
    data_dir = env.get(ENV_DATA_DIR) or values.get("data_dir") or ""
    if not data_dir and env.get(ENV_STATE_DIRECTORY):
        data_dir = env[ENV_STATE_DIRECTORY].split(":")[0]
    values["data_dir"] = data_dir
    config = Config(**values, source=reader.source)
    _check_data_dir(config, reader)
    if check_key:
        _check_key_file(config, reader)
    _check_devices(config.devices, reader)
    _check_sync(config.sync, reader)
    _check_custody(config, reader)
    return config


def _parse(chosen: str) -> tuple[dict[str, Any], Reader]:
    try:
        with open(chosen, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(where=chosen, problem=f"cannot read: {exc.strerror}") from exc
    reader = Reader(data.decode("utf-8", "replace"), chosen)
    try:
        return tomllib.loads(data.decode("utf-8")), reader
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(where=chosen, problem=f"not valid TOML: {exc}") from exc


def _refuse_unknown_names(reader: Reader, raw: dict[str, Any]) -> None:
    """A top-level name that is neither a key nor a table is refused, listing both."""
    keys = [decl.name for decl in declared(Config)]
    names = [*keys, *(table for table, _cls in tables(Config))]
    for name in raw:
        if name not in names:
            known = sorted([*keys, *(f"[{table}]" for table, _cls in tables(Config))])
            raise reader.fail(None, name, f"unknown key (known: {', '.join(known)})")


def _check_data_dir(config: Config, reader: Reader) -> None:
    data_dir = config.data_dir
    if not data_dir:
        raise reader.fail(
            None,
            "data_dir",
            f"not set: give data_dir, or set ${ENV_DATA_DIR} "
            "(or run under systemd's StateDirectory=)",
        )
    if not os.path.isabs(data_dir):
        raise reader.fail(None, "data_dir", f"must be an absolute path, not {data_dir!r}")
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise reader.fail(None, "data_dir", f"{data_dir} exists and is not a directory")
    parent = data_dir
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK):
        if parent == data_dir and os.access(parent, os.R_OK | os.X_OK):
            return  # a technician of the station's group, who may only look (README)
        raise reader.fail(None, "data_dir", f"{parent} is not writable by this user")


def _check_key_file(config: Config, reader: Reader) -> None:
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


def _check_devices(devices: DevicesConfig, reader: Reader) -> None:
    if "fake" in devices.sources and not os.path.isabs(devices.fake_spool):
        raise reader.fail(
            "devices", "fake_spool", "must be an absolute path when the fake source is on"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_sync(sync: SyncConfig, reader: Reader) -> None:
    if sync.kind == "tus":
        _check_endpoint(reader, sync.endpoint, "sync")
    if bool(sync.client_cert) != bool(sync.client_key):
        raise reader.fail("sync", "client_key", "client_cert and client_key go together")
    for sink in sync.sinks:
        if sink.kind == "tus":
            _check_endpoint(reader, sink.endpoint, f"sync.sinks {sink.name!r}")


def _check_endpoint(reader: Reader, endpoint: str, section: str) -> None:
    if not endpoint:
        raise reader.fail(section, "endpoint", "required when kind is tus")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise reader.fail(section, "endpoint", "must be an https:// URL")
    # Evidence and tokens never cross a network in clear text; loopback is for tests and a
    # local TLS-terminating proxy.
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise reader.fail(section, "endpoint", "plain http is refused except to a loopback address")


def _check_custody(config: Config, reader: Reader) -> None:
    url = config.custody.tsa_url
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise reader.fail("custody", "tsa_url", "must be an http:// or https:// URL")
    if not config.custody.tsa_trust_anchor:
        raise reader.fail("custody", "tsa_trust_anchor", "required when tsa_url is set")
