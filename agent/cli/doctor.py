"""`dockagent doctor [--json]`: one line per thing that can be wrong on a station, with the fix.

Each check is green (fine), yellow (look at it) or red (broken: evidence is not flowing or not
safe); the exit code is the worst: 0 green, 1 yellow, 2 red. It reads and asks, never repairs:
no row, key, file or unit is changed, and it needs no running daemon.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.camera import profile
from agent.cli.output import emit_json
from agent.core import config as config_mod
from agent.core import log
from agent.core.config import Config
from agent.core.errors import (
    AgentError,
    UploadRefused,
    UploadRetryable,
    UploadTlsFailed,
    describe,
)
from agent.core.model import WipePolicy
from agent.custody import integrity, keys
from agent.devices import rules
from agent.health import clock
from agent.store import DatabaseError, Store, StoreError

GREEN, YELLOW, RED = "green", "yellow", "red"
EXIT_CODES = {GREEN: 0, YELLOW: 1, RED: 2}
_RANK = {GREEN: 0, YELLOW: 1, RED: 2}
_COLOURS = {GREEN: "\033[32m", YELLOW: "\033[33m", RED: "\033[31m"}

SERVICE = "dockagent.service"
MOUNT_UNIT = "dockagent-mount@.service"
MOUNT_HELPER = "opt/dockagent/libexec/dockagent-mount"
# Where systemd and udev look (systemd.unit(5) "Unit File Load Path", udev(7) "Rules Files").
UNIT_DIRS = ("etc/systemd/system", "usr/local/lib/systemd/system", "usr/lib/systemd/system",
             "lib/systemd/system")  # fmt: skip
RULES_DIRS = ("etc/udev/rules.d", "usr/local/lib/udev/rules.d", "usr/lib/udev/rules.d",
              "lib/udev/rules.d")  # fmt: skip
# The server check waits at most this long, whatever the upload timeouts say.
SERVER_TIMEOUT_S = 10
AS_SERVICE_USER = "run it as the service user: sudo -u dockagent dockagent doctor"


@dataclass
class Check:
    check: str
    status: str
    detail: str
    fix: str = ""


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the station: one line per check, green/yellow/red with the fix; "
        "exit 0 all green, 1 some yellow, 2 some red",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--root",
        default="/",
        help="look for the installed units and udev rules below this directory (default /)",
    )
    p.set_defaults(func=run)


# ---- the checks ----------------------------------------------------------------------------


class Doctor:
    def __init__(self, config_path: str | None, root: Path) -> None:
        self.config_path = config_path
        self.root = root
        self.cfg: Config | None = None
        self.store: Store | None = None
        self.now = datetime.now(UTC)

    def run(self) -> list[Check]:
        steps: list[tuple[str, Callable[[], Check]]] = [
            ("config", self.check_config),
            ("key", self.check_key),
            ("database", self.check_database),
            ("staging", self.check_staging),
            ("clock", self.check_clock),
            ("server", self.check_server),
            ("install", self.check_install),
            ("service", self.check_service),
            ("refusals", self.check_refusals),
            ("unconfirmed", self.check_unconfirmed),
        ]
        needs_config = {"key", "database", "staging", "server", "refusals", "unconfirmed"}
        needs_store = {"refusals", "unconfirmed"}
        out: list[Check] = []
        try:
            for name, step in steps:
                if name in needs_config and self.cfg is None:
                    out.append(Check(name, YELLOW, "not checked: the configuration is invalid"))
                    continue
                if name in needs_store and self.store is None:
                    out.append(Check(name, YELLOW, "not checked: no readable database"))
                    continue
                try:
                    out.append(step())
                except PermissionError as exc:
                    out.append(Check(name, RED, describe(exc), AS_SERVICE_USER))
                except (OSError, StoreError, AgentError) as exc:
                    out.append(Check(name, RED, describe(exc)))
        finally:
            if self.store is not None:
                self.store.close()
        return out

    def _cfg(self) -> Config:
        if self.cfg is None:
            raise RuntimeError("configuration not loaded")  # run() skips the check instead
        return self.cfg

    def _store(self) -> Store:
        if self.store is None:
            raise RuntimeError("database not open")  # run() skips the check instead
        return self.store

    def check_config(self) -> Check:
        try:
            # The key file is the next check's business: judged apart, with its own fix.
            self.cfg = config_mod.load(self.config_path, check_key=False)
        except AgentError as exc:
            return Check(
                "config",
                RED,
                exc.message,
                "correct the named key (config.example.toml documents each one); "
                "the service refuses to start (exit 78) until then",
            )
        return Check("config", GREEN, f"{self.cfg.source} is valid")

    def check_key(self) -> Check:
        cfg = self._cfg()
        path = cfg.key_path
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return Check(
                "key",
                YELLOW,
                f"no station key at {path} yet",
                "create it with `dockagent key show` (as the service user) and register the "
                "public key it prints with the central server",
            )
        if not stat.S_ISREG(st.st_mode):
            return Check("key", RED, f"{path} is not a regular file", f"restore the key to {path}")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            return Check(
                "key",
                RED,
                f"{path} can be read by others (mode {mode:04o}); the service refuses to start",
                f"chmod 600 {path}",
            )
        owner = os.stat(cfg.data_path).st_uid if cfg.data_path.exists() else st.st_uid
        if st.st_uid != owner:
            return Check(
                "key",
                RED,
                f"{path} is owned by uid {st.st_uid}, the data directory by uid {owner}",
                f"chown --reference={cfg.data_path} {path}",
            )
        key = keys.load_or_create(path)  # exists: only loaded (StationKeyError if unreadable)
        return Check("key", GREEN, f"{path}: mode {mode:04o}, key id {key.key_id}")

    def check_database(self) -> Check:
        cfg = self._cfg()
        path = cfg.db_path
        fix = (
            "stop the service (systemctl stop dockagent) and restore dockagent.db from backup, "
            "or run `dockagent rebuild` (the database from the signed sidecars); staged evidence "
            "is not touched"
        )
        if not path.exists() and not (cfg.data_path / Store.MARKER).exists():
            return Check(
                "database",
                YELLOW,
                f"no database at {path} yet",
                "it is created when the service first starts",
            )
        try:
            key = integrity.station_key(cfg.key_path)
            store = integrity.open_store(cfg.data_path, cfg.staging_path, create=False, key=key)
        except AgentError as exc:
            return Check("database", RED, exc.message, fix)
        except DatabaseError as exc:
            return Check("database", RED, f"{path}: {exc}", fix)
        try:
            problems = store.integrity_problems()
        except DatabaseError as exc:
            store.close()
            return Check("database", RED, f"{path}: integrity check failed: {exc}", fix)
        if problems:
            store.close()
            shown = "; ".join(problems[:3])
            return Check("database", RED, f"{path} is damaged: {shown}", fix)
        self.store = store
        return Check("database", GREEN, f"{path}: integrity check ok")

    def check_staging(self) -> Check:
        cfg = self._cfg()
        where = cfg.staging_path
        while not where.exists() and where != where.parent:
            where = where.parent
        vfs = os.statvfs(where)
        free = vfs.f_bavail * vfs.f_frsize  # what the service user may use, as imports count
        size = vfs.f_blocks * vfs.f_frsize
        reserve = cfg.storage.reserve_bytes
        detail = f"{where}: {_size(free)} free, reserve {_size(reserve)}"
        fix = (
            "free space on that file system: uploads confirmed and purged free it (see "
            "`dockagent queue` and the server line), or give staging a bigger disk"
        )
        if free <= reserve:
            return Check(
                "staging",
                RED,
                detail + ": imports copy nothing (exit 75) until there is room",
                fix,
            )
        if free - reserve < size // 10:
            return Check("staging", YELLOW, detail + ": less than 10 % of the disk is left", fix)
        return Check("staging", GREEN, detail)

    def check_clock(self) -> Check:
        state = clock.station_clock().read()
        if state.synchronised:
            return Check("clock", GREEN, f"station clock {state.describe()}")
        return Check(
            "clock",
            RED,
            f"station clock {state.describe()}: camera clocks are not corrected and drift "
            "is measured against an untrusted time",
            "enable time synchronisation (timedatectl set-ntp true, or check `chronyc "
            "tracking`) and make sure the NTP server is reachable",
        )

    def check_server(self) -> Check:
        cfg = self._cfg()
        sync = cfg.sync
        if sync.kind == "directory":
            root = cfg.archive_path
            if not root.is_dir() and not cfg.sync.directory_root:
                return Check(
                    "server",
                    GREEN,
                    f"directory sink {root} (below the data directory) is made at the first upload",
                )
            if not root.is_dir():
                # A configured root that is missing is most often a share that is not mounted:
                # uploading into the bare mount point would fill the station's own disk.
                return Check(
                    "server",
                    RED,
                    f"directory sink {root} does not exist",
                    "mount the evidence share / disk there, or correct [sync] directory_root",
                )
            if not os.access(root, os.W_OK):
                return Check(
                    "server",
                    RED,
                    f"directory sink {root} is not writable by this user",
                    "give the dockagent user write access to it",
                )
            return Check("server", GREEN, f"directory sink {root} is writable")
        return _tus_check(cfg)

    def check_install(self) -> Check:
        found = {
            SERVICE: _find(self.root, UNIT_DIRS, SERVICE),
            MOUNT_UNIT: _find(self.root, UNIT_DIRS, MOUNT_UNIT),
            rules.RULES_NAME: _find(self.root, RULES_DIRS, rules.RULES_NAME),
            "mount helper": _find(self.root, (str(Path(MOUNT_HELPER).parent),), "dockagent-mount"),
        }
        missing = [name for name, path in found.items() if path is None]
        if missing:
            return Check(
                "install",
                RED,
                f"not installed below {self.root}: {', '.join(missing)}",
                "run scripts/install (as root), then systemctl daemon-reload",
            )
        notes: list[str] = []
        fixes: list[str] = []
        service_text = _read(found[SERVICE])
        cfg = self.cfg
        if cfg is not None:
            wanted = rules.generate(profile.load_all(cfg.devices.profiles, cfg.devices.profile_dir))
            if _read(found[rules.RULES_NAME]) != wanted:
                notes.append(
                    f"{found[rules.RULES_NAME]} does not match the configured camera profiles"
                )
                fixes.append(
                    f"scripts/gen-udev-rules --config {cfg.source} "
                    f"--output {found[rules.RULES_NAME]} && udevadm control --reload"
                )
            stop = _unit_seconds(service_text, "TimeoutStopSec")
            if stop is not None and stop <= cfg.devices.drain_deadline_s:
                notes.append(
                    f"TimeoutStopSec={stop:g}s is not above drain_deadline_s "
                    f"({cfg.devices.drain_deadline_s}s): systemd cuts the drain short"
                )
                fixes.append("raise TimeoutStopSec in a drop-in (systemctl edit dockagent)")
            access = _mount_access(self.root, found[MOUNT_UNIT])
            if access == "ro" and cfg.ingest.wipe_policy is not WipePolicy.NEVER:
                notes.append(
                    f"cameras are mounted read-only but wipe_policy is "
                    f"{cfg.ingest.wipe_policy.value}: nothing will be wiped"
                )
                fixes.append(
                    "set DOCKAGENT_MOUNT_ACCESS=rw in a drop-in for dockagent-mount@.service, "
                    'or wipe_policy = "never"'
                )
        if notes:
            return Check("install", YELLOW, "; ".join(notes), "; ".join(fixes))
        return Check("install", GREEN, f"units, udev rules and mount helper below {self.root}")

    def check_service(self) -> Check:
        if self.root != Path("/"):
            return Check("service", YELLOW, f"not checked: --root {self.root} is not this system")
        systemctl = shutil.which("systemctl")
        # sd_booted(3): systemd is the init system only if /run/systemd/system/ exists.
        if systemctl is None or not Path("/run/systemd/system").is_dir():
            return Check(
                "service",
                YELLOW,
                "systemd is not running here: service state unknown",
                "run dockagent doctor on the station itself",
            )
        state = _systemctl(systemctl, "is-active", SERVICE) or "unknown"
        status = _systemctl(systemctl, "show", "--property=StatusText", "--value", SERVICE)
        detail = f"{SERVICE} is {state}" + (f": {status}" if status else "")
        if state == "active":
            return Check("service", GREEN, detail)
        if state in ("activating", "reloading", "deactivating"):
            return Check("service", YELLOW, detail, "wait a moment and check again")
        return Check(
            "service",
            RED,
            detail,
            "systemctl enable --now dockagent; why it stopped: journalctl -u dockagent -b",
        )

    def check_refusals(self) -> Check:
        cfg, store = self._cfg(), self._store()
        hours = cfg.service.refusals_recent_h
        since = _iso(self.now - timedelta(hours=hours))
        recent = [r for r in store.refusals(limit=1000) if str(r["at"]) >= since]
        if not recent:
            return Check("refusals", GREEN, f"no device refused in the last {hours} h")
        latest = recent[0]
        return Check(
            "refusals",
            YELLOW,
            f"{len(recent)} device(s) refused in the last {hours} h; latest "
            f"{latest['at']}: {latest['identity']}: {latest['reason']}",
            "a station camera not enrolled: dockagent devices enroll SERIAL; anything else: "
            "find out who docked it (dockagent devices --refused)",
        )

    def check_unconfirmed(self) -> Check:
        cfg, store = self._cfg(), self._store()
        oldest = store.oldest_unconfirmed()
        if oldest is None:
            return Check("unconfirmed", GREEN, "every file is confirmed by the sink")
        found = datetime.fromisoformat(str(oldest["discovered_at"]))
        hours = (self.now - found).total_seconds() / 3600
        detail = (
            f"oldest unconfirmed file {oldest['id']} ({oldest['device_serial']}, "
            f"{oldest['state']}) was found {hours:.1f} h ago"
        )
        fix = (
            "see why in `dockagent queue`; check the server line above; held files go again "
            "with `dockagent retry --held`"
        )
        if hours >= cfg.service.unconfirmed_bad_h:
            return Check("unconfirmed", RED, detail, fix)
        if hours >= cfg.service.unconfirmed_warn_h:
            return Check("unconfirmed", YELLOW, detail, fix)
        return Check("unconfirmed", GREEN, detail)


# ---- helpers -------------------------------------------------------------------------------


def _tus_check(cfg: Config) -> Check:
    from agent.sync.tus_sink import TusSink  # noqa: PLC0415 - requests only when a server is set

    sync = dataclasses.replace(
        cfg.sync,
        connect_timeout_s=min(cfg.sync.connect_timeout_s, SERVER_TIMEOUT_S),
        read_timeout_s=min(cfg.sync.read_timeout_s, SERVER_TIMEOUT_S),
    )
    tls = "TLS verified" if sync.endpoint.startswith("https:") else "plain http to loopback"
    sink = TusSink(sync)
    try:
        caps = sink.client.capabilities()
    except UploadTlsFailed as exc:
        return Check(
            "server",
            RED,
            exc.message,
            "check the server certificate (host name, expiry, chain) against [sync] ca_bundle; "
            "an unsynchronised station clock also fails TLS",
        )
    except UploadRetryable as exc:
        return Check(
            "server",
            RED,
            f"{sync.endpoint} is unreachable: {exc.message}",
            "check the network, firewall and [sync] endpoint; is the server up?",
        )
    except UploadRefused as exc:
        return Check(
            "server",
            RED,
            exc.message,
            "check that [sync] endpoint is the server's tus creation URL and the bearer token",
        )
    finally:
        sink.close()
    extensions = ", ".join(sorted(caps.extensions)) or "none"
    checksums = ", ".join(sorted(caps.checksum_algorithms)) or "none"
    detail = (
        f"{sync.endpoint}: reachable, {tls}, tus 1.0.0; extensions: {extensions}; "
        f"checksums: {checksums}"
    )
    if "creation" not in caps.extensions:
        return Check(
            "server",
            RED,
            detail + ": no creation extension, so nothing can be uploaded",
            "point [sync] endpoint at a tus server with the creation extension",
        )
    if sync.confirm_level == "checksummed" and not caps.sha256_checksums:
        return Check(
            "server",
            RED,
            detail + ": confirm_level checksummed needs sha256 checksums, which it does not offer",
            "enable sha256 checksums on the server, or choose another [sync] confirm_level",
        )
    return Check("server", GREEN, detail)


def _find(root: Path, dirs: tuple[str, ...], name: str) -> Path | None:
    for directory in dirs:
        path = root / directory / name
        if path.is_file():
            return path
    return None


def _read(path: Path | None) -> str:
    return path.read_text("utf-8", "replace") if path is not None else ""


def _unit_seconds(text: str, key: str) -> float | None:
    """A plain time span of a unit file (systemd.time(7)): 60, 60s, 2min, 1min 30s."""
    value = None
    for line in text.splitlines():
        match = re.match(rf"^\s*{key}\s*=\s*(.+?)\s*$", line)
        if match:
            value = match.group(1)
    if value is None:
        return None
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        if unit not in units:
            return None
        total += float(number) * units[unit]
    return total


def _mount_access(root: Path, unit: Path | None) -> str:
    """DOCKAGENT_MOUNT_ACCESS of the mount unit, drop-ins included (the last one wins)."""
    texts = [_read(unit)]
    dropins = root / "etc/systemd/system" / f"{MOUNT_UNIT}.d"
    if dropins.is_dir():
        texts += [_read(p) for p in sorted(dropins.glob("*.conf"))]
    access = "ro"
    for text in texts:
        for found in re.findall(r"DOCKAGENT_MOUNT_ACCESS=(\w+)", text):
            access = found
    return access


def _systemctl(systemctl: str, *args: str) -> str:
    try:
        proc = subprocess.run(
            [systemctl, *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def worst(checks: list[Check]) -> str:
    return max((c.status for c in checks), key=lambda s: _RANK[s], default=GREEN)


def run(args: argparse.Namespace) -> int:
    log.setup(args.log_level or "warning", "auto")
    checks = Doctor(args.config, Path(args.root)).run()
    result = worst(checks)
    if args.json:
        data: dict[str, Any] = {
            "checks": [dataclasses.asdict(c) for c in checks],
            "worst": result,
            "exit_code": EXIT_CODES[result],
        }
        emit_json(data)
        return EXIT_CODES[result]
    out = sys.stdout
    colour = out.isatty()
    width = max(len(c.check) for c in checks)
    for c in checks:
        label = c.status.upper().ljust(6)
        if colour:
            label = f"{_COLOURS[c.status]}{label}\033[0m"
        line = f"{label} {c.check.ljust(width)}  {c.detail}"
        if c.fix and c.status != GREEN:
            line += f" -- fix: {c.fix}"
        out.write(line + "\n")
    counts = {s: sum(c.status == s for c in checks) for s in (RED, YELLOW, GREEN)}
    out.write(
        f"doctor: {counts[RED]} red, {counts[YELLOW]} yellow, {counts[GREEN]} green "
        f"(exit {EXIT_CODES[result]})\n"
    )
    return EXIT_CODES[result]
