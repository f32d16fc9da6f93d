"""The configuration's tables and keys, each key declared once: its table, name, type, default,
range or choices, and the text config.example.toml shows for it ([health] and [compliance] are
in `health.py`, [sync] in `sync.py`; `Config` here is the whole, in the example's order).

These frozen dataclasses are what the rest of the agent reads (`cfg.devices.sources`); the
reader (`load.py`) and the example (`example.py`) are driven by the same declarations. Rules
that join several keys (the data directory, a tus endpoint, retention classes) live in
`load.py` and `retention.py`. Nothing here reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from agent.core.config import checks
from agent.core.config.custody import CustodyConfig
from agent.core.config.health import ComplianceConfig, HealthConfig
from agent.core.config.screen import ScreenConfig, StationConfig
from agent.core.config.spec import key, required
from agent.core.config.sync import SyncConfig
from agent.core.model import WipePolicy

FILE_KINDS = ("video", "audio", "photo", "other")

_ABSOLUTE = (checks.absolute_path,)
_OPTIONAL_PATH = (checks.absolute_path_or_empty,)


@dataclass(frozen=True)
class KeysConfig:
    signing_key: str = key(
        "",
        """
        Ed25519 private key that signs every custody record; generated on first use, 0600.
        Refused if group or others can read it. Empty means <data_dir>/station.key.
        """,
        checks=_OPTIONAL_PATH,
    )


@dataclass(frozen=True)
class StorageConfig:
    reserve_bytes: int = key(
        1 << 30,
        """
        Bytes of staging that must stay free. An import whose files would cut into this reserve
        copies nothing, wipes nothing, and says how much space it needs.
        """,
    )
    copy_chunk_bytes: int = key(
        1 << 20,
        """
        Size of each read/write piece when copying off a camera ({range}).
        256 KiB - 1 MiB measured fastest here; 8-32 MiB writes ran 2-4x slower.
        """,
        low=4096,
        high=64 << 20,
    )


@dataclass(frozen=True)
class IngestConfig:
    # key() is dataclasses.field with metadata, and the enum default is immutable.
    wipe_policy: WipePolicy = key(  # noqa: RUF009
        WipePolicy.AFTER_CONFIRM,
        """
        When a recording may be removed from the camera:
          never          - never wipe;
          after_seal     - once it is copied, hashed and sealed at this station;
          after_confirm  - once the central evidence server has confirmed it (the default).
        Metadata (DEVICE.INF, logs) is never wiped; nothing is wiped while any file on the camera is
        not accounted for.
        """,
    )
    camera_timezone: str = key(
        "",
        """
        Time zone of the cameras' zone-less FAT clocks, e.g. "Asia/Shanghai". Empty: the station's.
        """,
        checks=(checks.time_zone,),
    )


@dataclass(frozen=True)
class DevicesConfig:
    sources: tuple[str, ...] = key(
        ("udev",),
        """
        Where docked cameras come from (the daemon, `dockagent run`): any of
          "udev"       - USB block devices seen by udev (pyudev);
          "mountwatch" - directories appearing under mount_root (udev + systemd-mount mounts them);
          "fake"       - JSON event files in fake_spool (tests and the demo).
        """,
        choices=("udev", "mountwatch", "fake"),
        item="source",
    )
    require_enrollment: bool = key(
        True,
        """
        Take only serials enrolled with `dockagent devices enroll SERIAL`. false: any serial of a
        known camera profile. Anything else is refused before it is mounted or read.
        """,
    )
    profiles: tuple[str, ...] = key(
        ("generic",),
        "Camera profiles in use: shipped ones (generic) or NAME.toml files in profile_dir.",
        checks=(checks.some_profile,),
    )
    profile_dir: str = key("/etc/dockagent/profiles", checks=_ABSOLUTE)
    mount_strategy: str = key(
        "external",
        """
        external: someone else mounts the camera (udev rule + systemd-mount or udisks2) and the
        agent finds the mount; mount: the agent mounts it read-only (nosuid,nodev,noexec) under
        mount_dir, and remounts read-write only to write TIME.TXT and to wipe.
        """,
        choices=("external", "mount"),
    )
    mount_dir: str = key("/run/dockagent/mnt", checks=_ABSOLUTE)
    mount_root: str = key(
        "/media/dockagent",
        "mountwatch: one directory per camera below this root, named by its USB serial.",
        checks=_ABSOLUTE,
    )
    fake_spool: str = key(
        "",
        'fake: directory of JSON event files (absolute path; required when "fake" is a source).',
    )
    max_parallel_devices: int = key(
        32,
        """
        Cameras taken in at once ({range}); more wait their turn. A camera reads at its own USB
        speed whatever the others do, so one that waits leaves its bus idle: keep this at or
        above the number of dock slots (32 covers a rack of 25).
        """,
        low=1,
        high=64,
    )
    drain_deadline_s: int = key(
        20,
        """
        On SIGTERM, copies in flight may finish for this many seconds; the rest are copied at the
        next start (a second SIGTERM exits at once).
        """,
    )
    mount_wait_s: int = key(
        30, "How long to wait for the external mount of an admitted camera to appear."
    )
    bind_cameras: bool = key(
        False,
        """
        Write a binding signed by this station (DOCKAGENT.BND: station, serial, time, HMAC) to
        each enrolled camera at its first dock on a writable mount, where its profile allows
        (binding = true), and from then on refuse that serial when its volume shows no binding,
        another camera's, another station's or a forged one. Needs the camera mounted
        read-write (mount_strategy "mount", or DOCKAGENT_MOUNT_ACCESS=rw).
        """,
    )
    scsi_relay: str = key(
        "/run/dockagent-scsi.socket",
        """
        Cameras opened by vendor SCSI commands (profile transport "ums-unlock"): the socket of
        the SCSI relay (systemd/dockagent-scsi.socket), which alone holds CAP_SYS_RAWIO and
        sends only the profile dialect's commands to allowed cameras. "" sends them from this
        process (SG_IO on /dev/sgN: needs CAP_SYS_RAWIO, i.e. root; development and tests).
        """,
        checks=_OPTIONAL_PATH,
    )


@dataclass(frozen=True)
class LogConfig:
    level: str = key("info", "{choices}", choices=("debug", "info", "warning", "error"))
    format: str = key(
        "auto",
        "auto (readable on a terminal, JSON lines otherwise, e.g. to the journal) | json | console",
        choices=("auto", "json", "console"),
    )


@dataclass(frozen=True)
class ServiceConfig:
    DOC: ClassVar[str] = """
        Running unattended under systemd (systemd/dockagent.service; README "Running as a
        service").
        """

    metrics_path: str = key(
        "",
        """
        Prometheus text file for node_exporter's textfile collector (queue depth per state, bytes
        awaiting upload, oldest unconfirmed file, last confirmed upload, cameras docked, refusals,
        drift and battery alarms), replaced atomically every metrics_interval_s seconds.
        Absolute path in an existing directory; "" writes none. The installed service uses
        /run/dockagent/dockagent.prom (systemd's RuntimeDirectory=, readable by node_exporter).
        """,
        checks=_OPTIONAL_PATH,
    )
    metrics_interval_s: int = key(30, low=1)
    stall_limit_s: int = key(
        600,
        """
        A camera worker that copies no chunk and finishes no file for this many seconds is stalled:
        the daemon stops its watchdog pings and systemd restarts it (WatchdogSec= in the unit).
        """,
        low=1,
    )
    unconfirmed_warn_h: int = key(
        24,
        """
        dockagent doctor: the oldest file not yet confirmed by the sink is a warning from
        unconfirmed_warn_h hours and a fault from unconfirmed_bad_h; devices refused in the last
        refusals_recent_h hours are listed.
        """,
        low=1,
        not_above="unconfirmed_bad_h",
    )
    unconfirmed_bad_h: int = key(72)
    refusals_recent_h: int = key(24, low=1)


@dataclass(frozen=True)
class RetentionClass:
    name: str  # the NAME of its [retention.classes.NAME] table
    min_days: int = required(
        "Days the central store keeps it at least (0: no fixed minimum, kept until a decision)."
    )
    description: str = key("")


@dataclass(frozen=True)
class RetentionRule:
    retention_class: str = required(toml="class")
    kinds: tuple[str, ...] = key((), choices=FILE_KINDS, item="kind")  # empty: any
    important: bool | None = key(None)  # the camera's important mark; None: either


@dataclass(frozen=True)
class RetentionConfig:
    DOC: ClassVar[str] = """
        Every file gets a retention class, carried in its custody record to the central server.
        Classes are configuration, not code: name them as the unit's regulation does. A file
        gets the class of the first [[retention.rules]] entry that matches it, else
        default_class. Giving [retention.classes.*] or [[retention.rules]] here replaces the
        shipped ones entirely.
        """

    default_class: str = key("standard")
    classes: tuple[RetentionClass, ...] = key(
        (
            RetentionClass("standard", 90, "simple incident: kept at least 3 months"),
            RetentionClass(
                "important",
                180,
                "marked important on the camera: kept at least 6 months, and until a case "
                "decision sets its class",
            ),
        )
    )
    rules: tuple[RetentionRule, ...] = key(
        (RetentionRule("important", important=True),),
        """
        Each rule: class (required), kinds (any of video, audio, photo, other; empty or absent:
        any), important (true/false: the camera's .IMP mark; absent: either).
        """,
    )


@dataclass(frozen=True)
class Config:
    """The whole configuration: the top-level keys, then the tables in the example's order."""

    DOC: ClassVar[str] = """
        dockagent configuration.

        Every key is shown with its default. Unknown keys, wrong types and unusable paths are
        refused at start-up with one line naming the key (exit code 78, so systemd does not
        restart into the same mistake). The file is read from --config or $DOCKAGENT_CONFIG;
        without one, these defaults are used as they stand.
        """

    station_id: str = key(
        "STATION-01",
        """
        Identity of this collection station in custody records and on the central server.
        1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit).
        """,
        checks=(checks.station_name,),
    )
    # Checked once resolved (load.py): $DOCKAGENT_DATA_DIR and $STATE_DIRECTORY may stand in.
    data_dir: str = key(
        "",
        """
        Where the database, staging and the station key live. Empty means: $DOCKAGENT_DATA_DIR if
        set (it overrides this key too), else systemd's $STATE_DIRECTORY (StateDirectory=dockagent).
        Must be an absolute path. Created 0700.
        """,
    )
    keys: KeysConfig = field(default_factory=KeysConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    log: LogConfig = field(default_factory=LogConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    compliance: ComplianceConfig = field(default_factory=ComplianceConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    custody: CustodyConfig = field(default_factory=CustodyConfig)
    station: StationConfig = field(default_factory=StationConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    source: str = "<embedded defaults>"  # where this configuration came from, not a key

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def db_path(self) -> Path:
        return self.data_path / "dockagent.db"

    @property
    def staging_path(self) -> Path:
        # agent.custody.staging owns every name below this one (core imports nothing above it).
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
