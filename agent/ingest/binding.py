"""Whether a docked camera must show this station's binding, and writing it the first time.

With `[devices] bind_cameras` on and a profile that allows it (`binding = true`), an enrolled
camera is bound at its first dock on a writable volume (trust on first use): the station writes
DOCKAGENT.BND (agent.camera.binding) and records when: devices.bound_at, and a signed
`device.bound` record in the chain, which a rebuilt store replays. From then on every dock of
that serial must show a binding that this station's key signed for that serial; a missing,
copied, foreign or forged one refuses the camera (CameraRefused, which the daemon and
`dockagent import` record as a refusal) before any evidence is read. A binding that verifies
while the store has no record of it (a crash between writing it and recording it) arms the
requirement again.
Holds no SQL and reads no evidence; the file's format and I/O are agent.camera.binding's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.camera import binding
from agent.camera.profile import Profile
from agent.core import log
from agent.core.config import Config
from agent.core.errors import CameraRefused, describe
from agent.core.model import DeviceInfo, display_name
from agent.custody import audit
from agent.custody.keys import StationKey
from agent.store import Store

_log = log.get(__name__)


class BindingState(enum.StrEnum):
    OFF = "off"  # not asked for here (config, profile, or a serial not enrolled)
    VERIFIED = "verified"  # the volume shows this station's binding for this serial
    DUE = "due"  # not bound yet: written at the end of this dock where the volume is writable


@dataclass(frozen=True)
class BindingCheck:
    state: BindingState
    detail: str  # a sentence for the session's identity_check ("" when off)

    def reserved(self) -> frozenset[bytes]:
        """Names at the volume root that are the station's, not the camera's: left out of the
        evidence scan (and so never wiped) and counted as accounted for."""
        if self.state is BindingState.VERIFIED:
            return frozenset({binding.NAME.encode()})
        return frozenset()


def check(
    root_fd: int,
    info: DeviceInfo,
    config: Config,
    profile: Profile,
    store: Store,
    key: StationKey,
    where: str,
) -> BindingCheck:
    """What the volume's binding says of the camera DEVICE.INF names; CameraRefused when it
    must show one and does not, or shows one that is not this station's for this serial."""
    if not config.devices.bind_cameras or not profile.binding:
        return BindingCheck(BindingState.OFF, "")
    device = store.enrolled().get(info.serial)
    if device is None:
        return BindingCheck(BindingState.OFF, "not bound: the serial is not enrolled")

    def refuse(problem: str) -> CameraRefused:
        return CameraRefused(path=where, problem=f"binding {binding.NAME}: {problem}")

    try:
        raw = binding.read(root_fd)
    except OSError as exc:
        raise refuse(f"cannot be read ({describe(exc)})") from exc
    if raw is None:
        if device.bound_at:
            raise refuse(
                f"missing, although this station bound {info.serial} at {device.bound_at}: "
                "another volume presented as this camera, or the camera was reformatted"
            )
        return BindingCheck(BindingState.DUE, "not bound yet")
    try:
        found = binding.parse(raw)
    except binding.BindingMalformed as exc:
        raise refuse(f"malformed ({exc})") from exc
    if found.station != config.station_id:
        raise refuse(f"written by station {display_name(found.station)}, not this one")
    if not found.signed_by(key.binding_key()):
        raise refuse("forged: its signature does not verify under this station's key")
    if found.serial != info.serial:
        raise refuse(f"copied: it binds camera {found.serial}, not {info.serial}")
    if not device.bound_at:
        store.mark_bound(info.serial, found.bound_at)
    return BindingCheck(BindingState.VERIFIED, f"binding of {found.bound_at} verified")


def bind(root_fd: int, serial: str, config: Config, store: Store, key: StationKey, now: str) -> str:
    """Write the binding and record it (in that order: a crash between leaves a binding the
    next dock verifies and records). Returns the sentence for the session; a volume that
    cannot be written stays unbound and is tried again at its next dock."""
    signed = binding.sign(key.binding_key(), config.station_id, serial, now)
    try:
        binding.write(root_fd, signed)
    except OSError as exc:
        _log.warning("device.binding_not_written", device_serial=serial, reason=describe(exc))
        return f"binding not written ({describe(exc)})"
    with store.transaction():
        store.mark_bound(serial, now)
        # In the chain too, so a rebuilt store still requires the binding (agent.rebuild).
        detail = {"serial": serial, "bound_at": now}
        audit.record_action(store, key, config.station_id, "device.bound", detail, now)
    _log.info("device.bound", device_serial=serial, bound_at=now)
    return "binding written"
