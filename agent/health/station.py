"""The station's health rules, as `dockagent doctor` applies them: facts in, findings out.

Each check takes facts gathered elsewhere (a config value, a key file's mode and owner, free
space, what the sink answered, unit file text, the service's state, recent refusals, the oldest
unconfirmed file) and returns a Finding: green (fine), yellow (look at it) or red (evidence is
not flowing or not safe), with the fix. Pure: nothing here opens a file, the database, a socket
or a process; agent.cli.doctor gathers the facts and prints the findings. The checks of
the installed units and the service are in agent.health.installation, those of where
evidence goes (the directory sink, the tus server) in agent.health.server.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.core.i18n import N_

GREEN, YELLOW, RED = "green", "yellow", "red"
_RANK = {GREEN: 0, YELLOW: 1, RED: 2}

AS_SERVICE_USER = N_("run it as the service user: sudo -u dockagent dockagent doctor")

# Details and fixes with values in them, written from these templates so that the doctor can
# show them in the station's language (agent.cli.doctor); the English is exactly the template
# filled in. A field named `at` is a station time.
NOT_CHECKED = N_("not checked: {why}")
CONFIG_VALID = N_("{source} is valid")
NO_KEY = N_("no station key at {path} yet")
NOT_REGULAR = N_("{path} is not a regular file")
RESTORE_KEY = N_("restore the key to {path}")
KEY_LOADED = N_("{path}: mode {mode}, key id {key_id}")
NO_DATABASE = N_("no database at {path} yet")
DATABASE_OK = N_("{path}: integrity check ok")
DATABASE_READ_BEFORE = N_(
    "{path} ({size}): read whole {hours} h ago, ok (`dockagent doctor --full` reads it now)"
)
DATABASE_NOT_READ = N_("{path} ({size}): last read whole {hours} h ago")
DATABASE_NEVER_READ = N_("{path} ({size}): never read whole yet")
DATABASE_READ_FIX = N_(
    "start the service (it reads the database whole after it starts, then daily), or run "
    "`dockagent doctor --full` (every page read: about a second per 300 MB)"
)
# The service reads the whole database daily: a check older than two days did not run.
WHOLE_CHECK_STALE_H = 48.0
SPACE = N_("{where}: {free} free, reserve {reserve}")
NO_ROOM = N_("{detail}: imports copy nothing (exit 75) until there is room")
LITTLE_ROOM = N_("{detail}: less than {share} of the disk is left")
CLOCK = N_("station clock {description}")
CLOCK_UNTRUSTED = N_(
    "station clock {description}: camera clocks are not corrected and drift is measured "
    "against an untrusted time"
)
NO_REFUSAL = N_("no device refused in the last {hours} h")
REFUSED = N_("{count} device(s) refused in the last {hours} h; latest {at}: {identity}: {reason}")
OLDEST_UNCONFIRMED = N_(
    "oldest unconfirmed file {file_id} ({serial}, {state}) was found {hours} h ago"
)


@dataclass(frozen=True)
class Finding:
    """One check's verdict: its name, green/yellow/red, what was found, and how to fix it."""

    check: str
    status: str
    detail: str
    fix: str = ""


def worst(findings: Iterable[Finding]) -> str:
    """The worst status among the findings (green when there are none)."""
    return max((f.status for f in findings), key=lambda s: _RANK[s], default=GREEN)


def not_checked(check: str, why: str) -> Finding:
    """A check that could not run because an earlier one failed: yellow, saying why."""
    return Finding(check, YELLOW, NOT_CHECKED.format(why=why))


def failed(check: str, message: str, *, permission: bool = False) -> Finding:
    """A check whose facts could not be read: red; a permission error names the service user."""
    return Finding(check, RED, message, AS_SERVICE_USER if permission else "")


def size_text(n: int) -> str:
    """Bytes as a person reads them: 512 B, 8.0 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


# ---- configuration, key, database ----------------------------------------------------------


def config(source: object, error: str | None) -> Finding:
    """The configuration file loaded (from `source`), or the problem it has."""
    if error is not None:
        return Finding(
            "config",
            RED,
            error,
            N_(
                "correct the named key (config.example.toml documents each one); "
                "the service refuses to start (exit 78) until then"
            ),
        )
    return Finding("config", GREEN, CONFIG_VALID.format(source=source))


@dataclass(frozen=True)
class KeyFile:
    """The station key file as stat(2) saw it; mode None when there is no file."""

    path: Path
    mode: int | None
    regular: bool = True
    uid: int = 0
    data_dir: Path = Path()
    data_dir_uid: int = 0  # the key's own uid when the data directory does not exist yet


def key_file(facts: KeyFile) -> Finding | None:
    """What is wrong with the key file (missing, not a file, readable by others, owned by
    another user than the data directory), or None: then it is to be loaded."""
    path = facts.path
    if facts.mode is None:
        return Finding(
            "key",
            YELLOW,
            NO_KEY.format(path=path),
            N_(
                "create it with `dockagent key show` (as the service user) and register the "
                "public key it prints with the central server"
            ),
        )
    if not facts.regular:
        return Finding("key", RED, NOT_REGULAR.format(path=path), RESTORE_KEY.format(path=path))
    if facts.mode & 0o077:
        return Finding(
            "key",
            RED,
            f"{path} can be read by others (mode {facts.mode:04o}); the service refuses to start",
            f"chmod 600 {path}",
        )
    if facts.uid != facts.data_dir_uid:
        return Finding(
            "key",
            RED,
            f"{path} is owned by uid {facts.uid}, the data directory by uid {facts.data_dir_uid}",
            f"chown --reference={facts.data_dir} {path}",
        )
    return None


def key_loaded(facts: KeyFile, key_id: str) -> Finding:
    """The key file passed key_file and loaded as the key `key_id`."""
    mode = f"{facts.mode or 0:04o}"
    return Finding("key", GREEN, KEY_LOADED.format(path=facts.path, mode=mode, key_id=key_id))


DATABASE_FIX = N_(
    "stop the service (systemctl stop dockagent) and restore dockagent.db from backup, "
    "or run `dockagent rebuild` (the database from the signed sidecars); staged evidence "
    "is not touched"
)


@dataclass(frozen=True)
class Database:
    """What opening and checking the database found. `refused`: the open check's own message
    (it names the file); `unreadable`: SQLite could not open it; `check_failed`: SQLite's
    integrity check itself failed; `problems`: what the integrity check reported."""

    path: Path
    present: bool
    refused: str | None = None
    unreadable: str | None = None
    check_failed: str | None = None
    problems: Sequence[str] = ()
    # Too large to read whole in a doctor's time (unread_bytes > 0): when the service last
    # read it whole and found it sound, if ever (hours ago).
    unread_bytes: int = 0
    whole_checked_h: float | None = None


def database(facts: Database) -> Finding:
    """The database opened and passed its integrity check, or how it did not."""
    if not facts.present:
        return Finding(
            "database",
            YELLOW,
            NO_DATABASE.format(path=facts.path),
            N_("it is created when the service first starts"),
        )
    damage = _database_damage(facts)
    if damage is not None:
        return Finding("database", RED, damage, DATABASE_FIX)
    if facts.unread_bytes:
        return _database_unread(facts)
    return Finding("database", GREEN, DATABASE_OK.format(path=facts.path))


def _database_damage(facts: Database) -> str | None:
    """What keeps the database from being used, if anything."""
    path = facts.path
    if facts.refused is not None:
        return facts.refused
    if facts.unreadable is not None:
        return f"{path}: {facts.unreadable}"
    if facts.check_failed is not None:
        return f"{path}: integrity check failed: {facts.check_failed}"
    if facts.problems:
        return f"{path} is damaged: {'; '.join(facts.problems[:3])}"
    return None


def _database_unread(facts: Database) -> Finding:
    """A database too large for doctor to read whole: the service's last whole read."""
    size = size_text(facts.unread_bytes)
    hours = facts.whole_checked_h
    if hours is not None and hours <= WHOLE_CHECK_STALE_H:
        detail = DATABASE_READ_BEFORE.format(path=facts.path, size=size, hours=f"{hours:.0f}")
        return Finding("database", GREEN, detail)
    if hours is None:
        detail = DATABASE_NEVER_READ.format(path=facts.path, size=size)
    else:
        detail = DATABASE_NOT_READ.format(path=facts.path, size=size, hours=f"{hours:.0f}")
    return Finding("database", YELLOW, detail, DATABASE_READ_FIX)


# ---- space, clock ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Staging:
    """The file system staging is on (`where`: the nearest existing directory), in bytes;
    `free` is what the service user may use, as imports count it."""

    where: Path
    free: int
    size: int
    reserve: int


def staging(facts: Staging) -> Finding:
    """Red when free space is at or below the reserve; yellow under a tenth of the disk."""
    detail = SPACE.format(
        where=facts.where, free=size_text(facts.free), reserve=size_text(facts.reserve)
    )
    fix = N_(
        "free space on that file system: uploads confirmed and purged free it (see "
        "`dockagent queue` and the server line), or give staging a bigger disk"
    )
    if facts.free <= facts.reserve:
        return Finding("staging", RED, NO_ROOM.format(detail=detail), fix)
    if facts.free - facts.reserve < facts.size // 10:
        return Finding("staging", YELLOW, LITTLE_ROOM.format(detail=detail, share="10 %"), fix)
    return Finding("staging", GREEN, detail)


def clock(synchronised: bool, description: str) -> Finding:
    """The station clock must be synchronised: camera clocks are corrected against it."""
    if synchronised:
        return Finding("clock", GREEN, CLOCK.format(description=description))
    return Finding(
        "clock",
        RED,
        CLOCK_UNTRUSTED.format(description=description),
        N_(
            "enable time synchronisation (timedatectl set-ntp true, or check `chronyc "
            "tracking`) and make sure the NTP server is reachable"
        ),
    )


# ---- what the store says -------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A device the station refused: when (station UTC text), what it was, why."""

    at: str
    identity: str
    reason: str


def refusals(refused: Sequence[Refusal], now: datetime, recent_h: float) -> Finding:
    """Devices refused in the last `recent_h` hours (newest first) are worth a look."""
    since = (now - timedelta(hours=recent_h)).astimezone(UTC).isoformat(timespec="milliseconds")
    recent = [r for r in refused if r.at >= since]
    if not recent:
        return Finding("refusals", GREEN, NO_REFUSAL.format(hours=recent_h))
    latest = recent[0]
    return Finding(
        "refusals",
        YELLOW,
        REFUSED.format(
            count=len(recent),
            hours=recent_h,
            at=latest.at,
            identity=latest.identity,
            reason=latest.reason,
        ),
        N_(
            "a station camera not enrolled: dockagent devices enroll SERIAL; anything else: "
            "find out who docked it (dockagent devices --refused)"
        ),
    )


@dataclass(frozen=True)
class Unconfirmed:
    """The oldest file no sink has confirmed yet."""

    file_id: int
    device_serial: str
    state: str
    discovered_at: datetime


def unconfirmed(oldest: Unconfirmed | None, now: datetime, warn_h: float, bad_h: float) -> Finding:
    """Files waiting for the sink longer than `warn_h` hours are yellow, `bad_h` red."""
    if oldest is None:
        return Finding("unconfirmed", GREEN, N_("every file is confirmed by the sink"))
    hours = (now - oldest.discovered_at).total_seconds() / 3600
    detail = OLDEST_UNCONFIRMED.format(
        file_id=oldest.file_id,
        serial=oldest.device_serial,
        state=oldest.state,
        hours=f"{hours:.1f}",
    )
    fix = N_(
        "see why in `dockagent queue`; check the server line above; held files go again "
        "with `dockagent retry --held`"
    )
    if hours >= bad_h:
        return Finding("unconfirmed", RED, detail, fix)
    if hours >= warn_h:
        return Finding("unconfirmed", YELLOW, detail, fix)
    return Finding("unconfirmed", GREEN, detail)


def confirmations(foreign: Sequence[str]) -> Finding:
    """Files confirmed by a sink the station's own configuration did not name (a custody move
    under another configuration, root's --foreign-config): red, each one named."""
    if not foreign:
        return Finding(
            "confirmations", GREEN, N_("every confirmation is by the station's configured sink")
        )
    shown = "; ".join(foreign[:3]) + (f"; and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return Finding(
        "confirmations",
        RED,
        f"{len(foreign)} file(s) confirmed by a sink that is not the station's: {shown}",
        N_(
            "find out who ran it (dockagent ledger, the audit records `config.overridden`) and "
            "where that sink's copies went; `dockagent verify` names each one"
        ),
    )


@dataclass(frozen=True)
class TrustedTime:
    """What the RFC 3161 tokens cover (agent.sync.stamping.state) and the configured interval."""

    enabled: bool
    detail: str
    uncovered_since: datetime | None = None
    interval_s: int = 3600


def trusted_time(facts: TrustedTime, now: datetime) -> Finding:
    """Off is said, not judged (the station works without a TSA); records waiting longer than
    two intervals for a token are yellow: the TSA has not been reachable."""
    if not facts.enabled:
        return Finding("timestamps", GREEN, facts.detail)
    since = facts.uncovered_since
    if since is not None and (now - since).total_seconds() > 2 * facts.interval_s:
        return Finding(
            "timestamps",
            YELLOW,
            facts.detail,
            N_(
                "check that [custody] tsa_url answers from this station (the daemon asks again "
                "by itself and logs tsa.failed with the reason)"
            ),
        )
    return Finding("timestamps", GREEN, facts.detail)


def encryption(recipients: Sequence[str]) -> Finding:
    """Whether staged copies are encrypted to the central key (`[custody] encrypt_to`): said,
    not judged; off until a site configures a recipient (README "Evidence sealed to the
    central key")."""
    if not recipients:
        return Finding(
            "encryption",
            GREEN,
            N_(
                "not encrypted: staged copies are the camera's bytes "
                "([custody] encrypt_to is empty)"
            ),
        )
    shown = ", ".join(f"{r[:12]}...{r[-6:]}" for r in recipients)
    noun = "recipient" if len(recipients) == 1 else "recipients"
    return Finding("encryption", GREEN, f"encrypted to {len(recipients)} {noun} (age): {shown}")
