"""`dockagent doctor [--json]`: one line per thing that can be wrong on a station, with the fix.

Each check is green (fine), yellow (look at it) or red (broken: evidence is not flowing or not
safe); the exit code is the worst: 0 green, 1 yellow, 2 red. The rules are agent.health.station's;
this module gathers their facts and prints the findings. It reads and asks, never repairs: no
row, key, file or unit is changed, and it needs no running daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.camera import profile
from agent.cli import sink_facts, words
from agent.cli.output import emit_json
from agent.cli.output import width as text_width
from agent.cli.words import _, pgettext, say, zone
from agent.core import config as config_mod
from agent.core import log
from agent.core.config import Config
from agent.core.errors import (
    AgentError,
    describe,
)
from agent.core.i18n import N_, NP_
from agent.core.zones import stamp
from agent.custody import integrity, keys, verify
from agent.devices import rules
from agent.health import clock, installation, server, station
from agent.health.station import GREEN, RED, YELLOW, Finding
from agent.store import DatabaseError, Store, StoreError, readonly
from agent.sync import stamping

EXIT_CODES = {GREEN: 0, YELLOW: 1, RED: 2}
_COLOURS = {GREEN: "\033[32m", YELLOW: "\033[33m", RED: "\033[31m"}

SERVICE = "dockagent.service"
MOUNT_UNIT = "dockagent-mount@.service"
# The SCSI relay (cameras opened by vendor commands): installed with the rest, always.
RELAY_UNITS = ("dockagent-scsi.socket", "dockagent-scsi@.service")
MOUNT_HELPER = "opt/dockagent/libexec/dockagent-mount"
# Where systemd and udev look (systemd.unit(5) "Unit File Load Path", udev(7) "Rules Files").
UNIT_DIRS = ("etc/systemd/system", "usr/local/lib/systemd/system", "usr/lib/systemd/system",
             "lib/systemd/system")  # fmt: skip
RULES_DIRS = ("etc/udev/rules.d", "usr/local/lib/udev/rules.d", "usr/lib/udev/rules.d",
              "lib/udev/rules.d")  # fmt: skip
# Checks that need the configuration, and those that need the database open.
_NEEDS_CONFIG = {
    "key",
    "database",
    "staging",
    "server",
    "refusals",
    "unconfirmed",
    "confirmations",
    "timestamps",
    "encryption",
}
_NEEDS_STORE = {"refusals", "unconfirmed", "confirmations", "timestamps"}
# Why a check did not run (agent.health.station.not_checked), for the catalogue.
NOT_RUN = (N_("the configuration is invalid"), N_("no readable database"))


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the station: one line per check, green/yellow/red with the fix; "
        "exit 0 all green, 1 some yellow, 2 some red",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--full",
        action="store_true",
        help="read the whole database now (PRAGMA integrity_check), however large; "
        f"without it a database over {READ_WHOLE_BYTES >> 20} MiB is shown as the service "
        "last read it",
    )
    p.add_argument(
        "--root",
        default="/",
        help="look for the installed units and udev rules below this directory (default /)",
    )
    p.set_defaults(func=run)


# ---- gathering the facts, in the order the checks run --------------------------------------


# A database up to this size is read whole by every doctor (PRAGMA integrity_check, a fifth
# of a second); a larger one by `doctor --full`, and by the service daily, which doctor shows.
READ_WHOLE_BYTES = 64 << 20


def _database_bytes(path: Path) -> int:
    """The database and its write-ahead log, in bytes (what a whole read reads)."""
    total = 0
    for part in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            total += part.stat().st_size
    return total


def _hours_since(store: Store, now: datetime) -> float | None:
    """Hours since the whole database last passed its check, if it ever did."""
    at = store.whole_checked_at()
    try:
        when = datetime.fromisoformat(at) if at else None
    except ValueError:
        return None  # not a time the agent writes: as if never checked
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, (now - when).total_seconds() / 3600)


class Doctor:
    def __init__(self, config_path: str | None, root: Path, full: bool = False) -> None:
        self.config_path = config_path
        self.root = root
        self.full = full
        self.cfg: Config | None = None
        self.store: Store | None = None
        self.now = datetime.now(UTC)

    def run(self) -> list[Finding]:
        steps: list[tuple[str, Callable[[], Finding]]] = [
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
            ("confirmations", self.check_confirmations),
            ("timestamps", self.check_trusted_time),
            ("encryption", self.check_encryption),
        ]
        try:
            return [self._one(name, step) for name, step in steps]
        finally:
            if self.store is not None:
                self.store.close()

    def _one(self, name: str, step: Callable[[], Finding]) -> Finding:
        if name in _NEEDS_CONFIG and self.cfg is None:
            return station.not_checked(name, NOT_RUN[0])
        if name in _NEEDS_STORE and self.store is None:
            return station.not_checked(name, NOT_RUN[1])
        try:
            return step()
        except PermissionError as exc:
            return station.failed(name, describe(exc), permission=True)
        except (OSError, StoreError, AgentError) as exc:
            return station.failed(name, describe(exc))

    def _cfg(self) -> Config:
        if self.cfg is None:
            raise RuntimeError("configuration not loaded")  # run() skips the check instead
        return self.cfg

    def _store(self) -> Store:
        if self.store is None:
            raise RuntimeError("database not open")  # run() skips the check instead
        return self.store

    def check_config(self) -> Finding:
        try:
            # The key file is the next check's business: judged apart, with its own fix.
            self.cfg = config_mod.load(self.config_path, check_key=False)
        except AgentError as exc:
            return station.config(None, exc.message)
        return station.config(self.cfg.source, None)

    def check_key(self) -> Finding:
        cfg = self._cfg()
        path = cfg.key_path
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            facts = station.KeyFile(path, mode=None)
        else:
            facts = station.KeyFile(
                path=path,
                mode=stat.S_IMODE(st.st_mode),
                regular=stat.S_ISREG(st.st_mode),
                uid=st.st_uid,
                data_dir=cfg.data_path,
                data_dir_uid=os.stat(cfg.data_path).st_uid if cfg.data_path.exists() else st.st_uid,
            )
        problem = station.key_file(facts)
        if problem is not None:
            return problem
        # A technician of the group may not read the private key: its mode, owner and public
        # half say as much. Anyone else loads it (StationKeyError if it is unreadable).
        readable = readonly.may_write(cfg.data_path)
        key = keys.load_or_create(path) if readable else keys.load_verifier(path)
        if key is None:
            return station.failed("key", f"{keys.public_path(path)} cannot be read")
        return station.key_loaded(facts, key.key_id)

    def check_database(self) -> Finding:
        cfg = self._cfg()
        path = cfg.db_path
        present = path.exists() or (cfg.data_path / Store.MARKER).exists()
        if not present:
            return station.database(station.Database(path, present=False))
        try:
            key = integrity.station_key(cfg.key_path)
            store = integrity.open_store(cfg.data_path, cfg.staging_path, create=False, key=key)
        except AgentError as exc:
            return station.database(station.Database(path, True, refused=exc.message))
        except DatabaseError as exc:
            return station.database(station.Database(path, True, unreadable=str(exc)))
        size = _database_bytes(path)
        if size > READ_WHOLE_BYTES and not self.full:
            facts = station.Database(
                path, True, unread_bytes=size, whole_checked_h=_hours_since(store, self.now)
            )
            finding = station.database(facts)
            self.store = store
            return finding
        try:
            problems = store.integrity_problems()
        except DatabaseError as exc:
            store.close()
            return station.database(station.Database(path, True, check_failed=str(exc)))
        finding = station.database(station.Database(path, True, problems=problems))
        if finding.status == GREEN:
            self.store = store  # the checks of the store's contents read it
        else:
            store.close()
        return finding

    def check_staging(self) -> Finding:
        cfg = self._cfg()
        where = sink_facts.nearest_existing(cfg.staging_path)
        vfs = os.statvfs(where)
        return station.staging(
            station.Staging(
                where=where,
                free=vfs.f_bavail * vfs.f_frsize,  # what the service user may use
                size=vfs.f_blocks * vfs.f_frsize,
                reserve=cfg.storage.reserve_bytes,
            )
        )

    def check_clock(self) -> Finding:
        state = clock.station_clock().read()
        return station.clock(state.synchronised, state.describe())

    def check_server(self) -> Finding:
        return sink_facts.check(self._cfg(), self.store)

    def check_install(self) -> Finding:
        root = self.root
        found = {
            SERVICE: _find(root, UNIT_DIRS, SERVICE),
            MOUNT_UNIT: _find(root, UNIT_DIRS, MOUNT_UNIT),
            **{name: _find(root, UNIT_DIRS, name) for name in RELAY_UNITS},
            rules.RULES_NAME: _find(root, RULES_DIRS, rules.RULES_NAME),
            "mount helper": _find(root, (str(Path(MOUNT_HELPER).parent),), "dockagent-mount"),
        }
        facts = installation.Installed(root, found)
        wanted = _wanted(self.cfg) if all(p is not None for p in found.values()) else None
        if wanted is not None:
            facts = installation.Installed(
                root,
                found,
                service_text=_read(found[SERVICE]),
                rules_text=_read(found[rules.RULES_NAME]),
                mount_texts=_mount_texts(root, found[MOUNT_UNIT]),
            )
        return installation.install(facts, wanted, rules.RULES_NAME)

    def check_service(self) -> Finding:
        this_system = self.root == Path("/")
        systemctl = shutil.which("systemctl")
        # sd_booted(3): systemd is the init system only if /run/systemd/system/ exists.
        systemd = systemctl is not None and Path("/run/systemd/system").is_dir()
        facts = installation.Service(SERVICE, self.root, this_system, systemd)
        if this_system and systemd and systemctl is not None:
            facts = dataclasses.replace(
                facts,
                state=_systemctl(systemctl, "is-active", SERVICE),
                status_text=_systemctl(
                    systemctl, "show", "--property=StatusText", "--value", SERVICE
                ),
            )
        return installation.service(facts)

    def check_refusals(self) -> Finding:
        cfg, store = self._cfg(), self._store()
        refused = [
            station.Refusal(str(r.at), str(r.identity), str(r.reason))
            for r in store.refusals(limit=1000)
        ]
        return station.refusals(refused, self.now, cfg.service.refusals_recent_h)

    def check_confirmations(self) -> Finding:
        """Confirmations by a sink the station's own configuration did not name (the signed
        records say both: agent.custody.verify.confirmation_problems), read one at a time and
        only after the last clean verify's head: that verify found none up to it (a foreign
        sink fails a verify), and every confirmation ever signed is a year's million records."""
        store = self._store()
        head = store.verified_head()
        after = head.seq if head is not None else 0
        found = verify.confirmation_problems(store.records("confirmation", after=after))
        return station.confirmations([p.detail for p in found])

    def check_trusted_time(self) -> Finding:
        cfg = self._cfg()
        data = stamping.state(cfg, self._store())
        waiting = data.get("uncovered")
        since = waiting.get("since") or None if isinstance(waiting, dict) else None
        facts = station.TrustedTime(
            enabled=bool(data["enabled"]),
            detail=stamping.describe_state(data),
            uncovered_since=datetime.fromisoformat(since) if isinstance(since, str) else None,
            interval_s=cfg.custody.tsa_interval_s,
        )
        return station.trusted_time(facts, self.now)

    def check_encryption(self) -> Finding:
        return station.encryption(self._cfg().custody.encrypt_to)

    def check_unconfirmed(self) -> Finding:
        cfg, store = self._cfg(), self._store()
        row = store.oldest_unconfirmed()
        oldest = None
        if row is not None:
            oldest = station.Unconfirmed(
                file_id=row.file_id,
                device_serial=row.device_serial,
                state=row.state,
                discovered_at=datetime.fromisoformat(row.discovered_at),
            )
        return station.unconfirmed(
            oldest, self.now, cfg.service.unconfirmed_warn_h, cfg.service.unconfirmed_bad_h
        )


def _wanted(cfg: Config | None) -> installation.Wanted | None:
    """What the configuration asks of the installation (nothing when it is invalid)."""
    if cfg is None:
        return None
    return installation.Wanted(
        config_source=cfg.source,
        rules_text=rules.generate(profile.load_all(cfg.devices.profiles, cfg.devices.profile_dir)),
        drain_deadline_s=cfg.devices.drain_deadline_s,
        wipe_policy=cfg.ingest.wipe_policy,
    )


def _find(root: Path, dirs: tuple[str, ...], name: str) -> Path | None:
    for directory in dirs:
        path = root / directory / name
        if path.is_file():
            return path
    return None


def _read(path: Path | None) -> str:
    return path.read_text("utf-8", "replace") if path is not None else ""


def _mount_texts(root: Path, unit: Path | None) -> list[str]:
    """The mount unit's text, then its drop-ins' in the order systemd applies them."""
    texts = [_read(unit)]
    dropins = root / "etc/systemd/system" / f"{MOUNT_UNIT}.d"
    if dropins.is_dir():
        texts += [_read(p) for p in sorted(dropins.glob("*.conf"))]
    return texts


def _systemctl(systemctl: str, *args: str) -> str:
    try:
        proc = subprocess.run(
            [systemctl, *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()


# ---- printing ------------------------------------------------------------------------------


# The checks' names and verdicts, for the catalogue (shown in the station's language).
CHECK_NAMES = (
    NP_("doctor check", "config"),
    NP_("doctor check", "key"),
    NP_("doctor check", "database"),
    NP_("doctor check", "staging"),
    NP_("doctor check", "clock"),
    NP_("doctor check", "server"),
    NP_("doctor check", "install"),
    NP_("doctor check", "service"),
    NP_("doctor check", "refusals"),
    NP_("doctor check", "unconfirmed"),
    NP_("doctor check", "confirmations"),
    NP_("doctor check", "timestamps"),
    NP_("doctor check", "encryption"),
)
VERDICTS = (NP_("doctor verdict", "GREEN"), NP_("doctor verdict", "YELLOW"),
            NP_("doctor verdict", "RED"))  # fmt: skip


# Each check's templates of details and fixes with values in them (agent.health), so that
# they are shown in the station's language; a template is only tried on its own check's text.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "config": (station.CONFIG_VALID,),
    "key": (station.NO_KEY, station.NOT_REGULAR, station.RESTORE_KEY, station.KEY_LOADED),
    "database": (
        station.NO_DATABASE,
        station.DATABASE_OK,
        station.DATABASE_READ_BEFORE,
        station.DATABASE_NOT_READ,
        station.DATABASE_NEVER_READ,
    ),
    "staging": (station.SPACE, station.NO_ROOM, station.LITTLE_ROOM),
    "clock": (station.CLOCK, station.CLOCK_UNTRUSTED),
    "refusals": (station.NO_REFUSAL, station.REFUSED),
    "unconfirmed": (station.OLDEST_UNCONFIRMED,),
    "install": (installation.NOT_INSTALLED, installation.INSTALLED),
    "service": (
        installation.NOT_THIS_SYSTEM,
        installation.SERVICE_STATE,
        installation.SERVICE_STATE_SAYING,
    ),
    "server": (
        server.SINK_WRITABLE,
        server.SINK_MISSING,
        server.SINK_READ_ONLY,
        server.SINK_MADE_LATER,
        server.UNREACHABLE,
    ),
}


def _say(check: str, text: str) -> str:
    """A finding's text in the station's language, as far as it is our own words."""
    return say(text, (station.NOT_CHECKED, *TEMPLATES.get(check, ())))


def _line(f: Finding, width: int, colour: bool) -> str:
    verdict = pgettext("doctor verdict", f.status.upper())
    pad = " " * max(1, 7 - text_width(verdict))  # "YELLOW" and a space
    label = (f"{_COLOURS[f.status]}{verdict}\033[0m" if colour else verdict) + pad
    name = pgettext("doctor check", f.check)
    detail = _say(f.check, f.detail)
    if f.check == "clock":  # the station's own time, in its zone with the zone named
        detail += _("; now {time}").format(time=stamp(datetime.now(UTC), zone()))
    line = f"{label}{name}{' ' * (width - text_width(name))}  {detail}"
    if f.fix and f.status != GREEN:
        line += _(" -- fix: {fix}").format(fix=_say(f.check, f.fix))
    return line


def _print(findings: list[Finding], result: str) -> None:
    out = sys.stdout
    colour = out.isatty()
    width = max(text_width(pgettext("doctor check", f.check)) for f in findings)
    for f in findings:
        out.write(_line(f, width, colour) + "\n")
    counts = {s: sum(f.status == s for f in findings) for s in (RED, YELLOW, GREEN)}
    out.write(
        _("doctor: {red} red, {yellow} yellow, {green} green (exit {code})").format(
            red=counts[RED], yellow=counts[YELLOW], green=counts[GREEN], code=EXIT_CODES[result]
        )
        + "\n"
    )


def run(args: argparse.Namespace) -> int:
    log.setup(args.log_level or "warning", "auto")
    doctor = Doctor(args.config, Path(args.root), full=args.full)
    findings = doctor.run()
    words.speak(doctor.cfg)  # the configured language and zone; the locale's when it is invalid
    result = station.worst(findings)
    if args.json:
        data: dict[str, Any] = {
            "checks": [dataclasses.asdict(f) for f in findings],
            "worst": result,
            "exit_code": EXIT_CODES[result],
        }
        emit_json(data)
    else:
        _print(findings, result)
    return EXIT_CODES[result]
