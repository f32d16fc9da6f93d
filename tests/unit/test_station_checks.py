"""The doctor's rules without a station: each check with facts that pass and facts that fail.

The verdict (green/yellow/red), the words a technician reads and the fix are what is asserted;
the facts are built by hand, so no file, database, server or systemd is involved.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.core.model import WipePolicy
from agent.health import installation, server, station
from agent.health.station import GREEN, RED, YELLOW, Finding

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
KEY = Path("/var/lib/dockagent/station.key")
DATA = Path("/var/lib/dockagent")
DB = DATA / "dockagent.db"


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")


# ---- findings ------------------------------------------------------------------------------


def test_worst_is_the_most_severe_status_and_green_when_empty() -> None:
    assert station.worst([]) == GREEN
    assert station.worst([Finding("a", GREEN, ""), Finding("b", YELLOW, "")]) == YELLOW
    assert station.worst([Finding("a", RED, ""), Finding("b", YELLOW, "")]) == RED


def test_a_permission_failure_says_to_run_as_the_service_user() -> None:
    plain = station.failed("key", "No such file or directory")
    assert (plain.status, plain.fix) == (RED, "")
    denied = station.failed("key", "Permission denied", permission=True)
    assert denied.status == RED
    assert "sudo -u dockagent" in denied.fix
    skipped = station.not_checked("refusals", "no readable database")
    assert (skipped.status, skipped.detail) == (YELLOW, "not checked: no readable database")


# ---- configuration, key, database ----------------------------------------------------------


def test_config_valid_is_green_and_an_error_is_red_naming_exit_78() -> None:
    good = station.config("/etc/dockagent/config.toml", None)
    assert (good.status, good.detail) == (GREEN, "/etc/dockagent/config.toml is valid")
    bad = station.config(None, "storage.reserve_bytes: must be a number")
    assert bad.status == RED
    assert bad.detail == "storage.reserve_bytes: must be a number"
    assert "exit 78" in bad.fix


def _key(**changes: object) -> station.KeyFile:
    base: dict[str, object] = {
        "path": KEY,
        "mode": 0o600,
        "regular": True,
        "uid": 998,
        "data_dir": DATA,
        "data_dir_uid": 998,
    }
    return station.KeyFile(**{**base, **changes})  # type: ignore[arg-type]


def test_a_private_key_owned_like_the_data_directory_is_to_be_loaded() -> None:
    facts = _key()
    assert station.key_file(facts) is None
    loaded = station.key_loaded(facts, "ab12cd34")
    assert loaded.status == GREEN
    assert loaded.detail == f"{KEY}: mode 0600, key id ab12cd34"


@pytest.mark.parametrize(
    ("changes", "status", "detail", "fix"),
    [
        ({"mode": None}, YELLOW, f"no station key at {KEY} yet", "dockagent key show"),
        ({"regular": False}, RED, f"{KEY} is not a regular file", f"restore the key to {KEY}"),
        ({"mode": 0o644}, RED, "can be read by others (mode 0644)", f"chmod 600 {KEY}"),
        ({"mode": 0o640}, RED, "(mode 0640)", f"chmod 600 {KEY}"),
        (
            {"uid": 0},
            RED,
            "owned by uid 0, the data directory by uid 998",
            f"chown --reference={DATA} {KEY}",
        ),
    ],
)
def test_key_file_problems_are_named_with_their_fix(
    changes: dict[str, object], status: str, detail: str, fix: str
) -> None:
    finding = station.key_file(_key(**changes))
    assert finding is not None
    assert finding.status == status
    assert detail in finding.detail
    assert fix in finding.fix


def test_a_database_that_passes_its_integrity_check_is_green() -> None:
    finding = station.database(station.Database(DB, present=True))
    assert (finding.status, finding.detail) == (GREEN, f"{DB}: integrity check ok")


@pytest.mark.parametrize(
    ("facts", "status", "detail"),
    [
        (station.Database(DB, present=False), YELLOW, f"no database at {DB} yet"),
        (
            station.Database(DB, True, refused=f"{DB} is empty but custody records exist"),
            RED,
            f"{DB} is empty but custody records exist",
        ),
        (
            station.Database(DB, True, unreadable="file is not a database"),
            RED,
            f"{DB}: file is not a database",
        ),
        (
            station.Database(DB, True, check_failed="database disk image is malformed"),
            RED,
            f"{DB}: integrity check failed: database disk image is malformed",
        ),
        (
            station.Database(DB, True, problems=["p1", "p2", "p3", "p4"]),
            RED,
            f"{DB} is damaged: p1; p2; p3",
        ),
    ],
)
def test_a_missing_or_damaged_database_says_how_to_restore(
    facts: station.Database, status: str, detail: str
) -> None:
    finding = station.database(facts)
    assert (finding.status, finding.detail) == (status, detail)
    if status == RED:
        assert "restore dockagent.db from backup" in finding.fix
        assert "dockagent rebuild" in finding.fix


# ---- space, clock, sink --------------------------------------------------------------------

MIB = 1 << 20


def test_staging_with_room_is_green() -> None:
    finding = station.staging(station.Staging(Path("/srv"), 500 * MIB, 1000 * MIB, 8 * MIB))
    assert finding.status == GREEN
    assert finding.detail == "/srv: 500.0 MiB free, reserve 8.0 MiB"


def test_staging_at_its_reserve_is_red_and_under_a_tenth_yellow() -> None:
    full = station.staging(station.Staging(Path("/srv"), 8 * MIB, 1000 * MIB, 8 * MIB))
    assert full.status == RED
    assert "imports copy nothing (exit 75)" in full.detail
    assert "free space" in full.fix
    low = station.staging(station.Staging(Path("/srv"), 100 * MIB, 1000 * MIB, 8 * MIB))
    assert low.status == YELLOW
    assert "less than 10 % of the disk is left" in low.detail


def test_size_text_reads_like_a_person_would_write_it() -> None:
    assert station.size_text(512) == "512 B"
    assert station.size_text(8 * MIB) == "8.0 MiB"
    assert station.size_text(3 << 40) == "3.0 TiB"


def test_the_clock_must_be_synchronised() -> None:
    assert station.clock(True, "synchronised (adjtimex: ok)").status == GREEN
    bad = station.clock(False, "not synchronised (adjtimex: unsync)")
    assert bad.status == RED
    assert bad.detail.startswith("station clock not synchronised (adjtimex: unsync): ")
    assert "timedatectl set-ntp true" in bad.fix


def test_a_directory_sink_is_green_when_writable_or_made_later() -> None:
    root = DATA / "archive"
    writable = server.directory_sink(server.DirectorySink(root, True, True, True))
    assert (writable.status, writable.detail) == (GREEN, f"directory sink {root} is writable")
    later = server.directory_sink(server.DirectorySink(root, False, False, False))
    assert later.status == GREEN
    assert "made at the first upload" in later.detail


def test_a_configured_directory_sink_missing_or_read_only_is_red() -> None:
    share = Path("/mnt/evidence")
    missing = server.directory_sink(server.DirectorySink(share, True, False, False))
    assert (missing.status, missing.detail) == (RED, f"directory sink {share} does not exist")
    assert "mount the evidence share" in missing.fix
    readonly = server.directory_sink(server.DirectorySink(share, True, True, False))
    assert readonly.status == RED
    assert "not writable by this user" in readonly.detail


def test_wiping_on_a_copy_on_the_staging_disk_is_red() -> None:
    root = DATA / "archive"
    facts = server.DirectorySink(
        root, False, False, False, shares_staging=True, wipe_policy="after_confirm",
        staging=DATA / "staging",
    )  # fmt: skip
    finding = server.directory_sink(facts)
    assert finding.status == RED
    assert finding.detail.startswith(
        f"directory sink {root} is on the same file system as staging ({DATA / 'staging'})"
    )
    assert "wiped on the strength of a second copy on the station's own disk" in finding.detail
    assert "directory_root" in finding.fix and 'wipe_policy = "never"' in finding.fix
    # Not wiping, or wiping once sealed (a choice to trust the station's copy): not this check's.
    for policy in ("never", "after_seal"):
        kept = server.directory_sink(dataclasses.replace(facts, wipe_policy=policy))
        assert kept.status == GREEN, policy
    # On another file system (the evidence share), after_confirm is what it is for.
    share = server.directory_sink(
        server.DirectorySink(Path("/mnt/evidence"), True, True, True, wipe_policy="after_confirm")
    )
    assert share.status == GREEN


ENDPOINT = "https://evidence.example/files/"


def test_a_tus_server_with_creation_and_sha256_is_green() -> None:
    probe = server.TusProbe(
        ENDPOINT,
        "checksummed",
        extensions=frozenset({"creation", "termination", "checksum"}),
        checksums=frozenset({"sha256", "sha1"}),
    )
    finding = server.tus_server(probe)
    assert finding.status == GREEN
    assert finding.detail == (
        f"{ENDPOINT}: reachable, TLS verified, tus 1.0.0; extensions: checksum, creation, "
        "termination; checksums: sha1, sha256"
    )


@pytest.mark.parametrize(
    ("probe", "detail", "fix"),
    [
        (
            server.TusProbe(ENDPOINT, "stored", failure="tls", message="TLS with x: bad cert"),
            "TLS with x: bad cert",
            "ca_bundle",
        ),
        (
            server.TusProbe(ENDPOINT, "stored", failure="unreachable", message="refused"),
            f"{ENDPOINT} is unreachable: refused",
            "network",
        ),
        (
            server.TusProbe(ENDPOINT, "stored", failure="refused", message="401 Unauthorized"),
            "401 Unauthorized",
            "bearer token",
        ),
        (
            server.TusProbe(ENDPOINT, "stored", extensions=frozenset({"termination"})),
            "no creation extension, so nothing can be uploaded",
            "creation extension",
        ),
        (
            server.TusProbe(
                ENDPOINT,
                "checksummed",
                extensions=frozenset({"creation"}),
                checksums=frozenset({"md5"}),
            ),
            "confirm_level checksummed needs sha256 checksums",
            "enable sha256 checksums",
        ),
    ],
)
def test_a_tus_server_that_cannot_take_evidence_is_red(
    probe: server.TusProbe, detail: str, fix: str
) -> None:
    finding = server.tus_server(probe)
    assert finding.status == RED
    assert detail in finding.detail
    assert fix in finding.fix


def test_plain_http_says_so() -> None:
    probe = server.TusProbe(
        "http://127.0.0.1:1080/files/", "stored", extensions=frozenset({"creation"})
    )
    assert "plain http to loopback" in server.tus_server(probe).detail


# ---- the store's contents ------------------------------------------------------------------


def test_no_recent_refusal_is_green_and_a_recent_one_yellow() -> None:
    old = station.Refusal(_stamp(NOW - timedelta(hours=30)), "usb 1d6b:0002 ROGUE", "unknown")
    assert station.refusals([old], NOW, 24) == Finding(
        "refusals", GREEN, "no device refused in the last 24 h"
    )
    new = station.Refusal(_stamp(NOW - timedelta(hours=1)), "usb 2b0e:1001 STRANGER9", "enroll")
    finding = station.refusals([new, old], NOW, 24)
    assert finding.status == YELLOW
    assert finding.detail == (
        f"1 device(s) refused in the last 24 h; latest {new.at}: usb 2b0e:1001 STRANGER9: enroll"
    )
    assert "dockagent devices enroll SERIAL" in finding.fix


def _oldest(hours_ago: float) -> station.Unconfirmed:
    return station.Unconfirmed(7, "DOC001", "sealed", NOW - timedelta(hours=hours_ago))


def test_unconfirmed_files_are_green_when_none_or_recent() -> None:
    assert station.unconfirmed(None, NOW, 24, 72).detail == "every file is confirmed by the sink"
    recent = station.unconfirmed(_oldest(2), NOW, 24, 72)
    assert recent.status == GREEN
    assert recent.detail == "oldest unconfirmed file 7 (DOC001, sealed) was found 2.0 h ago"


def test_unconfirmed_files_turn_yellow_then_red_with_age() -> None:
    assert station.unconfirmed(_oldest(24), NOW, 24, 72).status == YELLOW
    old = station.unconfirmed(_oldest(100), NOW, 24, 72)
    assert old.status == RED
    assert "dockagent queue" in old.fix


# ---- the installation and the service ------------------------------------------------------

ROOT = Path("/")
RULES = "99-dockagent.rules"
FOUND: dict[str, Path | None] = {
    "dockagent.service": ROOT / "etc/systemd/system/dockagent.service",
    "dockagent-mount@.service": ROOT / "etc/systemd/system/dockagent-mount@.service",
    RULES: ROOT / "etc/udev/rules.d" / RULES,
    "mount helper": ROOT / "opt/dockagent/libexec/dockagent-mount",
}
SERVICE_UNIT = "[Service]\nType=notify\nTimeoutStopSec=2min\n"
RW_MOUNT = "[Service]\nEnvironment=DOCKAGENT_MOUNT_ACCESS=rw\n"


def _wanted(**changes: object) -> installation.Wanted:
    base: dict[str, object] = {
        "config_source": "/etc/dockagent/config.toml",
        "rules_text": "RULES\n",
        "drain_deadline_s": 60,
        "wipe_policy": WipePolicy.NEVER,
    }
    return installation.Wanted(**{**base, **changes})  # type: ignore[arg-type]


def test_an_installation_matching_the_configuration_is_green() -> None:
    facts = installation.Installed(ROOT, FOUND, SERVICE_UNIT, "RULES\n", [RW_MOUNT])
    finding = installation.install(facts, _wanted(wipe_policy=WipePolicy.AFTER_CONFIRM), RULES)
    assert finding == Finding("install", GREEN, "units, udev rules and mount helper below /")


def test_a_missing_unit_is_red_with_the_install_script() -> None:
    found = {**FOUND, "dockagent.service": None}
    finding = installation.install(installation.Installed(ROOT, found), _wanted(), RULES)
    assert finding.status == RED
    assert finding.detail == "not installed below /: dockagent.service"
    assert "scripts/install" in finding.fix


def test_an_installation_out_of_step_with_the_configuration_is_yellow() -> None:
    facts = installation.Installed(
        ROOT, FOUND, "[Service]\nTimeoutStopSec=30\n", "OLD RULES\n", ["[Service]\n"]
    )
    finding = installation.install(facts, _wanted(wipe_policy=WipePolicy.AFTER_CONFIRM), RULES)
    assert finding.status == YELLOW
    assert "does not match the configured camera profiles" in finding.detail
    assert "TimeoutStopSec=30s is not above drain_deadline_s (60s)" in finding.detail
    assert "cameras are mounted read-only but wipe_policy is" in finding.detail
    assert "scripts/gen-udev-rules --config /etc/dockagent/config.toml" in finding.fix
    assert "DOCKAGENT_MOUNT_ACCESS=rw" in finding.fix


def test_without_a_valid_configuration_only_presence_is_judged() -> None:
    facts = installation.Installed(ROOT, FOUND, "TimeoutStopSec=1\n", "OLD\n", [])
    assert installation.install(facts, None, RULES).status == GREEN


def test_unit_time_spans_are_read_as_systemd_reads_them() -> None:
    assert installation.unit_seconds("TimeoutStopSec=90\n", "TimeoutStopSec") == 90
    assert installation.unit_seconds("TimeoutStopSec = 1min 30s\n", "TimeoutStopSec") == 90
    assert (
        installation.unit_seconds("TimeoutStopSec=2min\nTimeoutStopSec=5s\n", "TimeoutStopSec") == 5
    )
    assert installation.unit_seconds("[Service]\n", "TimeoutStopSec") is None
    # No stop timeout at all is not "too short": no verdict instead of 0 s.
    assert installation.unit_seconds("TimeoutStopSec=infinity\n", "TimeoutStopSec") is None
    assert installation.unit_seconds("TimeoutStopSec=1min soon\n", "TimeoutStopSec") is None


def test_the_last_drop_in_decides_the_mount_access() -> None:
    assert installation.mount_access([]) == "ro"
    assert installation.mount_access(["[Service]\n", RW_MOUNT]) == "rw"
    ro_again = "Environment=DOCKAGENT_MOUNT_ACCESS=ro\n"
    assert installation.mount_access([RW_MOUNT, ro_again]) == "ro"


def _service(**changes: object) -> installation.Service:
    base: dict[str, object] = {
        "name": "dockagent.service",
        "root": ROOT,
        "this_system": True,
        "systemd": True,
        "state": "active",
        "status_text": "watching 2 bays",
    }
    return installation.Service(**{**base, **changes})  # type: ignore[arg-type]


def test_an_active_service_is_green_with_its_status_text() -> None:
    finding = installation.service(_service())
    assert finding == Finding("service", GREEN, "dockagent.service is active: watching 2 bays")


@pytest.mark.parametrize(
    ("changes", "status", "detail"),
    [
        ({"state": "failed", "status_text": ""}, RED, "dockagent.service is failed"),
        ({"state": "", "status_text": ""}, RED, "dockagent.service is unknown"),
        ({"state": "activating"}, YELLOW, "dockagent.service is activating: watching 2 bays"),
        ({"systemd": False}, YELLOW, "systemd is not running here: service state unknown"),
        (
            {"this_system": False, "root": Path("/tmp/r")},
            YELLOW,
            "not checked: --root /tmp/r is not this system",
        ),
    ],
)
def test_a_service_not_running_is_named(
    changes: dict[str, object], status: str, detail: str
) -> None:
    finding = installation.service(_service(**changes))
    assert (finding.status, finding.detail) == (status, detail)
    if status == RED:
        assert "systemctl enable --now dockagent" in finding.fix
        assert "journalctl -u dockagent" in finding.fix


def test_what_options_shows_a_server_can_confirm() -> None:
    creation = frozenset({"creation"})
    assert server.offered_level(frozenset({"termination"}), frozenset({"sha256"})) == ""
    assert server.offered_level(creation, frozenset({"md5"})) == "complete"
    assert server.offered_level(creation, frozenset({"sha1", "sha256"})) == "checksummed"


def test_verified_before_any_upload_showed_it_is_yellow_with_the_weaker_level() -> None:
    probe = server.TusProbe(
        ENDPOINT,
        "verified",
        extensions=frozenset({"creation"}),
        checksums=frozenset({"sha256"}),
    )
    finding = server.tus_server(probe)
    assert finding.status == YELLOW
    assert "no upload has shown yet" in finding.detail
    assert "uploaded and then held" in finding.detail
    assert "Repr-Digest" in finding.fix and "confirm_level = 'checksummed'" in finding.fix
    assert server.tus_server(dataclasses.replace(probe, verified_seen=3)).status == GREEN


def test_files_held_as_unconfirmable_make_the_server_red() -> None:
    reason = "evidence.example cannot confirm at level verified: the upload is complete but only"
    probe = server.TusProbe(
        ENDPOINT,
        "verified",
        extensions=frozenset({"creation"}),
        verified_seen=0,
        unconfirmable=2,
        unconfirmable_reason=reason,
    )
    finding = server.tus_server(probe)
    assert finding.status == RED
    assert "2 file(s) uploaded and held" in finding.detail and reason in finding.detail
    assert "confirm_level = 'complete'" in finding.fix
    assert "dockagent retry --held" in finding.fix


def test_trusted_time_off_is_said_and_a_long_gap_is_yellow() -> None:
    off = station.trusted_time(
        station.TrustedTime(False, "off ([custody] tsa_url is not set)"), NOW
    )
    assert (off.status, off.detail) == (GREEN, "off ([custody] tsa_url is not set)")
    waiting = "records 5-9 not yet covered by a token, since ..."
    recent = station.TrustedTime(True, waiting, NOW - timedelta(minutes=90), interval_s=3600)
    assert station.trusted_time(recent, NOW).status == GREEN  # within two intervals
    old = dataclasses.replace(recent, uncovered_since=NOW - timedelta(hours=3))
    finding = station.trusted_time(old, NOW)
    assert finding.status == YELLOW and finding.detail == waiting
    assert "tsa_url" in finding.fix
