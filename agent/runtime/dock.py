"""One docked camera, from its admission to its removal: the daemon's record of a dock.

Built once, when a device event is admitted, and handed to every stage of that dock: the source
key the events name, what the hardware said (USB identity, the physical port it is docked in,
devnode), where its volume is and who mounted it, its profile, and the sessions it has had,
found by id (never by comparing a path).
It also remembers why a wipe after confirmation cannot happen, so that is recorded once and the
camera is not taken in again until something changes. No I/O but one statvfs(2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from agent.camera.profile import Profile
from agent.core.model import display_name
from agent.devices.dialects import UnlockRecord
from agent.devices.events import DeviceEvent, DeviceIdentity
from agent.health.readiness_watch import Follow
from agent.runtime.unlock import VolumeWait


@dataclass
class Dock:
    key: str  # the source's key for this device while it is plugged in
    source: str  # "udev" | "mountwatch" | "fake"
    identity: DeviceIdentity
    profile: Profile
    # Where the volume is, and who mounted it: "source" (it came with the event), "external"
    # (found in mountinfo: the udev rule and the mount unit), "agent" (mount_strategy "mount").
    mountpoint: str = ""
    mounted_by: str = ""
    session_ids: list[int] = field(default_factory=list)
    # Why a wipe after confirmation cannot happen in the state last seen, once recorded.
    wipe_blocked: str = ""
    # Whether a pass was taken after confirmation, and the volume's writability then.
    rechecked: bool = False
    rechecked_writable: bool | None = None
    # What the source said beside the identity (udev: the USB device's sysfs path).
    extra: dict[str, str] = field(default_factory=dict)
    # A camera opened by vendor commands (transport ums-unlock, agent.runtime.unlock): what
    # the unlock found, and its volume once the disk appears.
    unlocked: UnlockRecord | None = None
    volume: VolumeWait = field(default_factory=VolumeWait)
    # Its readiness, judged again while it stays docked (agent.health.readiness_watch), and
    # when next (monotonic seconds).
    follow: Follow | None = None
    next_judge: float = 0.0

    @classmethod
    def admitted(cls, event: DeviceEvent, profile: Profile) -> Dock:
        identity = event.identity
        return cls(
            key=identity.key,
            source=event.source,
            identity=identity,
            profile=profile,
            mountpoint=identity.mountpoint,
            mounted_by="source" if identity.mountpoint else "",
            extra=dict(event.extra),
        )

    @property
    def opens_by_unlock(self) -> bool:
        """The camera shows its disk only after vendor SCSI commands (profile transport)."""
        return getattr(self.profile, "transport", "ums") == "ums-unlock"

    def takes_volume(self, identity: DeviceIdentity) -> None:
        """The opened camera's disk appeared: the dock's volume is that device's from now on
        (the dock keeps its key: the events of its first device still name it)."""
        self.identity = identity
        self.mountpoint = identity.mountpoint
        self.mounted_by = "source" if identity.mountpoint else ""

    @property
    def shown(self) -> str:
        return display_name(self.identity.describe())

    @property
    def port(self) -> str:
        """The physical USB port it is docked in (ID_PATH); "" when the source cannot tell."""
        return self.identity.port_path

    @property
    def session_id(self) -> int | None:
        """The dock's newest session."""
        return self.session_ids[-1] if self.session_ids else None

    def add_session(self, session_id: int | None) -> None:
        if session_id is not None and session_id not in self.session_ids:
            self.session_ids.append(session_id)

    def writable(self) -> bool | None:
        """Whether the volume can be written as it is mounted now (None: it cannot be asked).

        A volume the agent mounts itself is remounted read-write for the wipe, so it counts as
        writable whatever its mount says between passes.
        """
        if self.mounted_by == "agent":
            return True
        if not self.mountpoint:
            return None
        try:
            flags = os.statvfs(self.mountpoint).f_flag
        except OSError:
            return None
        return not flags & os.ST_RDONLY
