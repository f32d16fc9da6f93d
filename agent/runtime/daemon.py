"""`dockagent run`: the unattended daemon.

Order at start: single-instance lock, store, key, recovery, then the device sources (each
starts its monitor before listing what is present). The main loop only moves events to the
supervisor; signal handlers only set flags (a second SIGTERM exits at once). On stop it stops
the sources and lets in-flight copies finish until the drain deadline; whatever is cut off is
a `copying` row that recovery puts back at the next start.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import signal
import threading
import time
from types import FrameType

from agent.camera import profile
from agent.camera.volume import open_root
from agent.core import durable, log, wallclock
from agent.core.config import Config
from agent.core.errors import (
    EX_SOFTWARE,
    AgentError,
    CameraRefused,
    StoreCorrupt,
    UnlockFailed,
    UnlockRefused,
    describe,
)
from agent.core.model import DeviceInfo, FileState, SessionOutcome, WipePolicy, display_name
from agent.custody import integrity, keys, recovery
from agent.custody.seal import Sealer
from agent.devices import mounts
from agent.devices.events import Action, DeviceEvent, DeviceSource
from agent.devices.fake import FakeSource
from agent.devices.mountwatch import MountWatchSource
from agent.health import clock
from agent.ingest import policy
from agent.ingest.session import READ_ONLY_MOUNT, Importer, utc_now
from agent.runtime.dock import Dock
from agent.runtime.liveness import Liveness
from agent.runtime.lock import WriterLock
from agent.runtime.service import ServiceReporter
from agent.runtime.store_check import WholeCheck
from agent.runtime.supervisor import Job, Supervisor
from agent.runtime.unlock import (
    clock_plan,
    identity_check,
    opener_for,
    same_camera,
    unlock_camera,
    with_retries,
)
from agent.store import Store
from agent.sync.pool import Uploader
from agent.sync.stamping import Stamper

_log = log.get(__name__)
_WIPE_CHECK_S = 5.0  # how often docked cameras are checked for a wipe after confirmation
# The main loop's turn while a camera is docked or a worker runs: workers are reaped, wipes and
# readiness rechecked on time. With none, it waits for a device event or the service's next
# step (watchdog ping, STATUS=, metrics), at most _IDLE_TURN_S: an idle station wakes once a
# second, not four times, and a SIGTERM (whose handler only sets a flag) is seen within it.
_BUSY_TURN_S = 0.25
_IDLE_TURN_S = 1.0


def build_sources(cfg: Config) -> list[DeviceSource]:
    sources: list[DeviceSource] = []
    for name in cfg.devices.sources:
        if name == "udev":
            from agent.devices.udev import UdevSource  # noqa: PLC0415 - pyudev only when used

            sources.append(UdevSource())
        elif name == "mountwatch":
            sources.append(MountWatchSource(cfg.devices.mount_root))
        elif name == "fake":
            sources.append(FakeSource(cfg.devices.fake_spool))
    return sources


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stopping = threading.Event()
        self.signals = 0
        self.present: set[str] = set()
        self.events: queue.Queue[DeviceEvent] = queue.Queue()
        # Watchdog liveness, sd_notify and metrics (agent.runtime.service)
        self.liveness = Liveness(cfg.service.stall_limit_s)
        self.service = ServiceReporter(cfg, self.liveness)
        self.supervisor = Supervisor(cfg.devices.max_parallel_devices, self.liveness)
        # Admitted cameras still plugged in, by source key.
        self.docks: dict[str, Dock] = {}
        self.next_wipe_check = 0.0
        # Set when a dock session ends: the chain head is time-stamped then (agent.sync.stamping).
        self.session_ended = threading.Event()
        self.damage: StoreCorrupt | None = None  # found by the whole-database check

    # ---- signals: flags only ---------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            os._exit(128 + signum)  # second SIGTERM: exit at once, recovery cleans up
        self.stopping.set()
        self.session_ended.set()  # wakes the stamping thread, which then sees the stop

    # ---- main loop -------------------------------------------------------------------------

    def run(self) -> int:
        cfg = self.cfg
        durable.make_dirs(cfg.data_path)  # its name made durable too (fsync(2) NOTES)
        with WriterLock(cfg.data_path):
            self.key = keys.load_or_create(cfg.key_path)
            # The whole database is read after READY, beside the work (agent.runtime.store_check).
            self.store = integrity.open_store(
                cfg.data_path, cfg.staging_path, create=True, key=self.key
            )
            sealer = Sealer(self.store, self.key, cfg.station_id, cfg.staging_path)
            self.service.starting()
            report = recovery.recover(self.store, sealer, cfg.staging_path, utc_now())
            self.store.undock_all(utc_now())
            self.store.finalise_readiness(None)  # nothing is docked yet: every verdict is final
            self.profiles = profile.load_all(cfg.devices.profiles, cfg.devices.profile_dir)
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
            sources = build_sources(cfg)
            with self.liveness.watching_new_threads("source"):  # sources must stay alive
                for source in sources:
                    source.start(self.events)
            # The upload workers run beside the cameras; they stop after the chunk in flight.
            uploads = threading.Thread(
                # Idle, it looks for newly sealed files every 2 s (one indexed query).
                # Each upload worker is watched like a camera worker (Liveness.working).
                target=Uploader(cfg, working=self.liveness.working, beat=self.liveness.beat).serve,
                args=(self.stopping, 2.0),
                name="uploads",
                daemon=True,
            )
            uploads.start()
            stamping = self._start_stamping()
            _log.info(
                "daemon.started",
                sources=[s.name for s in sources],
                pid=os.getpid(),
                recovered=vars(report),
            )
            self.service.ready(self.store)  # READY=1 after recovery and sources
            WholeCheck(cfg.data_path, self.stopping, self._store_damaged).start()
            try:
                while not self.stopping.is_set():
                    try:
                        event = self.events.get(timeout=self._turn_s())
                    except queue.Empty:
                        event = None
                    if event is not None:
                        self.handle(event)
                    self.supervisor.pump()
                    self.service.tick(self.store)  # WATCHDOG=1, STATUS=, metrics
                    self._wipe_when_confirmed()
                    self._judge_docked()
            finally:
                _log.info("daemon.stopping", busy=self.supervisor.busy())
                self.service.stopping(self.supervisor.busy())  # STOPPING=1 (sd_notify(3))
                for source in sources:
                    source.stop()
                drained = self.supervisor.drain(cfg.devices.drain_deadline_s)
                uploads.join(timeout=cfg.devices.drain_deadline_s)
                if stamping is not None:
                    stamping.join(timeout=cfg.custody.tsa_timeout_s + 1)
                if not drained:
                    _log.warning("daemon.drain_timed_out", deadline_s=cfg.devices.drain_deadline_s)
                self.store.close()
            _log.info("daemon.stopped", drained=drained)
            if self.damage is not None:
                raise self.damage
            return 0 if drained else EX_SOFTWARE

    def _store_damaged(self, exc: StoreCorrupt) -> None:
        """The whole-database check found damage: stop as a damaged store at start would."""
        self.damage = exc
        self.stopping.set()
        self.session_ended.set()

    def _turn_s(self) -> float:
        if self.docks or self.supervisor.busy():
            return _BUSY_TURN_S
        return min(_IDLE_TURN_S, max(0.01, self.service.seconds_to_next()))

    def _start_stamping(self) -> threading.Thread | None:
        """Time-stamp tokens over the chain head, on a thread of its own so that a slow TSA
        (one request's deadline at most) never holds the device events."""
        if not self.cfg.custody.tsa_url:
            return None

        def serve() -> None:
            store = Store.open(self.cfg.data_path, create=False)
            try:
                Stamper(self.cfg, store).serve(self.stopping, self.session_ended)
            finally:
                store.close()

        thread = threading.Thread(target=serve, name="tsa", daemon=True)
        thread.start()
        return thread

    def _wipe_when_confirmed(self) -> None:
        """A camera still docked when the central server confirms its last files is wiped then,
        not at its next dock: its session is taken up again (nothing new to copy), and that
        pass's wipe decision, the same as at any dock, now finds every file confirmed; the
        wipe is recorded on the dock's one session. A wipe that cannot
        happen as the camera is mounted (read-only) is recorded once, on the dock's session,
        and the camera is not taken in again until that changes; each writability gets one
        pass, so a wipe that fails is not retried every few seconds either."""
        now = time.monotonic()
        if (
            now < self.next_wipe_check
            or self.cfg.ingest.wipe_policy is not WipePolicy.AFTER_CONFIRM
        ):
            return
        self.next_wipe_check = now + _WIPE_CHECK_S
        for dock in list(self.docks.values()):
            if dock.key in self.supervisor.running or not self._all_confirmed(dock):
                continue
            writable = dock.writable()
            if writable is False:
                self._wipe_blocked(dock, READ_ONLY_MOUNT)
                continue
            if dock.rechecked and writable == dock.rechecked_writable:
                continue
            dock.rechecked, dock.rechecked_writable, dock.wipe_blocked = True, writable, ""
            _log.info(
                "device.rechecked",
                device_serial=dock.identity.serial,
                session_id=dock.session_id,
                reason="every file confirmed",
            )
            wipe_pass = functools.partial(self.take_in, dock, continues=dock.session_id)
            self.supervisor.submit(Job(dock.key, wipe_pass))

    def _judge_docked(self) -> None:
        """Each docked camera's readiness is judged again every [health] readiness_recheck_s
        (agent.health.readiness_watch), on its camera's worker: a camera being taken in is
        judged after."""
        now = time.monotonic()
        for dock in list(self.docks.values()):
            if dock.follow is None or now < dock.next_judge:
                continue
            if dock.key in self.supervisor.running or self.supervisor.is_waiting(dock.key):
                continue
            dock.next_judge = now + self.cfg.health.readiness_recheck_s
            self.supervisor.submit(Job(dock.key, functools.partial(self.judge_again, dock)))

    def judge_again(self, dock: Dock) -> None:
        """Judge a docked camera's readiness again, reading its volume where it is still mounted
        (the agent unmounts one it mounted itself after the take-in: then as last read)."""
        follow = dock.follow
        if follow is None or dock.key not in self.present:
            return
        store = Store.open(self.cfg.data_path, create=False)
        try:
            before = follow.verdict
            if dock.mountpoint:
                with open_root(dock.mountpoint) as root_fd:
                    judged = follow.again(store, root_fd, utc_now())
            else:
                judged = follow.again(store, None, utc_now())
        except (AgentError, OSError) as exc:
            _log.warning("health.rejudge_failed", device=dock.shown, error=describe(exc))
            return
        finally:
            store.close()
        if judged is not None and judged.verdict != before:
            _log.info(
                "health.readiness_rejudged",
                device_serial=dock.identity.serial,
                session_id=follow.session_id,
                verdict=judged.verdict,
                charge_pct=follow.inputs.battery.get("charge_pct"),
            )

    def _all_confirmed(self, dock: Dock) -> bool:
        if dock.session_id is None:
            return False
        session = self.store.session(dock.session_id)
        if session.outcome != SessionOutcome.COMPLETE or session.wipe_state == "wiped":
            return False
        states = self.store.session_state_counts(dock.session_id)
        return bool(states) and set(states) == {FileState.CONFIRMED.value}

    def _wipe_blocked(self, dock: Dock, reason: str) -> None:
        """Record once, on the dock's session, why its confirmed files cannot be wiped."""
        if dock.wipe_blocked == reason or dock.session_id is None:
            return
        dock.wipe_blocked = reason
        self.store.update_session(
            dock.session_id, {"wipe_state": "not wiped", "wipe_detail": reason}
        )
        _log.warning(
            "device.wipe_impossible",
            device_serial=dock.identity.serial,
            session_id=dock.session_id,
            reason=reason,
        )

    def handle(self, event: DeviceEvent) -> None:
        identity = event.identity
        shown = display_name(identity.describe())
        if event.action is Action.REMOVED:
            self.present.discard(identity.key)
            dock = self.docks.pop(identity.key, None)
            self.supervisor.cancel_waiting(identity.key)
            if dock is not None:
                self._undock(self.store, dock)
            _log.info("device.removed", source=event.source, device=shown)
            return
        self.present.add(identity.key)
        _log.info(f"device.{event.action.value}", source=event.source, device=shown)
        opening = self._opening(event)
        if opening is not None:
            # The disk of a camera a dock is opening: that dock takes it in (agent.runtime.unlock).
            opening.volume.offer(identity)
            _log.info("device.volume_appeared", device=shown, device_serial=identity.serial)
            return
        if identity.key in self.docks:
            return  # announced again (udev "change", a second listing): the same dock
        admission = policy.admit_device(
            identity, self.profiles, self.store.enrolled(), self.cfg.devices.require_enrollment
        )
        if not admission.allowed or admission.profile is None:
            self._refuse(event.source, shown, admission.reason)
            return
        dock = Dock.admitted(event, admission.profile)
        self.docks[identity.key] = dock
        self.supervisor.submit(Job(identity.key, functools.partial(self.take_in, dock)))

    def _opening(self, event: DeviceEvent) -> Dock | None:
        """The dock opening a camera by vendor commands whose disk `event` is, if any."""
        for dock in self.docks.values():
            if dock.opens_by_unlock and same_camera(dock.identity, dock.source, dock.extra, event):
                return dock
        return None

    def _refuse(self, source: str, shown: str, reason: str, store: Store | None = None) -> None:
        (store or self.store).add_refusal(source, shown, reason, utc_now())
        _log.warning("device.refused", source=source, device=shown, reason=reason)

    @staticmethod
    def _undock(store: Store, dock: Dock) -> None:
        """The camera was unplugged: every session of this dock ends its handover now."""
        now = utc_now()
        for session_id in dock.session_ids:
            store.mark_undocked(session_id, now)
        # Its readiness as last judged is final: nothing reads the camera any more.
        dock.follow = None
        store.finalise_readiness(list(dock.session_ids))

    # ---- one camera, in a worker thread ----------------------------------------------------

    def take_in(self, dock: Dock, continues: int | None = None) -> None:
        """One pass over the dock's camera: its first (a new session), or `continues` its
        session for the wipe once every file is confirmed."""
        store = Store.open(self.cfg.data_path, create=False)
        mounted_here = False
        try:
            if dock.opens_by_unlock and dock.unlocked is None and not self._open(dock, store):
                return
            mounted_here = self._find_volume(dock)
            if dock.mountpoint:
                self._import(dock, store, mounted_here, continues)
        except CameraRefused as exc:
            self._refuse(dock.source, dock.shown, exc.message, store)
        except (AgentError, OSError) as exc:
            _log.error("device.take_in_failed", device=dock.shown, error=describe(exc))
        finally:
            if dock.key not in self.present:
                self._undock(store, dock)  # unplugged while it was being taken in
            store.close()
            if mounted_here:
                mounts.unmount(dock.mountpoint)
                dock.mountpoint = ""
            self.session_ended.set()  # the chain head is stamped now (agent.sync.stamping)

    def _open(self, dock: Dock, store: Store) -> bool:
        """Open a camera that shows its disk only after vendor SCSI commands, and wait for the
        disk (bounded by the profile's appear_timeout_s). False when it was refused or could not
        be opened: recorded as a refusal with its reason, nothing taken, nothing wiped."""
        plan = clock_plan(
            dock.profile,
            self.cfg.ingest.camera_timezone,
            clock.station_clock(),
            wallclock.now(),
        )
        accept = identity_check(
            dock.identity.serial,
            dock.profile,
            store.enrolled(),
            self.cfg.devices.require_enrollment,
            dock.shown,
        )
        opener = opener_for(self.cfg.devices.scsi_relay)
        spec = dock.profile.unlock
        try:
            if spec is None:
                # unlock_camera refuses it with the reason
                dock.unlocked = unlock_camera(dock.identity, "", dock.profile, plan, accept)
            else:
                dock.unlocked = with_retries(
                    functools.partial(
                        unlock_camera,
                        dock.identity,
                        dock.extra.get("usb_device", ""),
                        dock.profile,
                        plan,
                        accept,
                        opener,
                    ),
                    spec,
                    lambda: not self.stopping.is_set() and dock.key in self.present,
                    self.stopping.wait,
                    dock.shown,
                )
        except (UnlockRefused, UnlockFailed) as exc:
            self._unlock_refused(dock, store, exc.message)
            return False
        except (AgentError, OSError) as exc:
            reason = f"camera at {dock.shown}: unlock failed: {describe(exc)}"
            self._unlock_refused(dock, store, reason)
            return False
        if dock.identity.fs_type or dock.identity.mountpoint:
            return True  # it showed its volume already (opened before this dock)
        timeout_s = spec.appear_timeout_s if spec is not None else 0.0
        volume = dock.volume.wait(
            timeout_s, lambda: self.stopping.is_set() or dock.key not in self.present
        )
        if volume is None:
            self._unlock_refused(
                dock,
                store,
                f"camera at {dock.shown}: opened, but no disk appeared within {timeout_s:g} s",
            )
            return False
        dock.takes_volume(volume)
        return True

    def _unlock_refused(self, dock: Dock, store: Store, reason: str) -> None:
        store.add_refusal(dock.source, dock.shown, reason, utc_now())
        _log.warning(
            "device.unlock_refused",
            source=dock.source,
            device=dock.shown,
            device_serial=dock.identity.serial,
            reason=reason,
        )

    def _find_volume(self, dock: Dock) -> bool:
        """Where the dock's volume is: given by the source, mounted by us, or found in
        mountinfo once the mount unit made it. True when this pass mounted it (and unmounts)."""
        cfg, identity = self.cfg, dock.identity
        if dock.mountpoint and dock.mounted_by == "source":
            return False
        if cfg.devices.mount_strategy == "mount":
            dock.mountpoint = mounts.mount_private(
                identity.devnode, identity.fs_type, cfg.devices.mount_dir, identity.serial
            )
            dock.mounted_by = "agent"
            _log.info(
                "device.mounted",
                device=dock.shown,
                mountpoint=dock.mountpoint,
                options=mounts.options_of(dock.mountpoint),
            )
            return True
        dock.mountpoint = mounts.wait_for_mount(identity.devnode, cfg.devices.mount_wait_s)
        if not dock.mountpoint:
            _log.error("device.mount_missing", device=dock.shown, waited_s=cfg.devices.mount_wait_s)
        else:
            dock.mounted_by = "external"
        return False

    def _import(self, dock: Dock, store: Store, mounted_here: bool, continues: int | None) -> None:
        point, usb_serial = dock.mountpoint, dock.identity.serial

        def check(info: DeviceInfo) -> None:
            admission = policy.admit_camera(usb_serial, info.serial)
            if not admission.allowed:
                raise CameraRefused(path=point, problem=admission.reason)

        def should_stop() -> bool:
            self.liveness.beat()
            return self.stopping.is_set()

        def remount(writable: bool) -> None:
            mounts.remount(point, writable)

        hardware = f"USB serial {usb_serial} (as the {dock.source} source reports it) "
        hardware += "matches DEVICE.INF"
        known, unlocked = None, ""
        if dock.unlocked is not None:
            known = dock.unlocked.device_info()
            unlocked = json.dumps(dock.unlocked.as_dict(), ensure_ascii=False)
            hardware = f"{dock.unlocked.summary()}; matches USB serial {usb_serial}"
        sealer = Sealer(store, self.key, self.cfg.station_id, self.cfg.staging_path)
        importer = Importer(self.cfg, store, sealer, dock.profile)
        importer.port_path = dock.port
        # A chunk copied or a file finished is progress for the watchdog
        importer.copier.on_chunk = self.liveness.beat
        importer.prover.on_chunk = self.liveness.beat
        try:
            summary = importer.import_volume(
                point,
                make_writable=remount if mounted_here else None,
                check=check,
                should_stop=should_stop,
                stays_docked=True,
                usb_serial=usb_serial,
                identity_check=hardware,
                continues=continues,
                known=known,
                unlock=unlocked,
                # The charge read and the clock set over SCSI, for the dock's checks.
                readings=dock.unlocked,
            )
        finally:
            dock.add_session(importer.session_id)
        self._judged_at_dock(dock, importer, store)
        _log.info(
            "device.taken_in",
            device=dock.shown,
            port=display_name(dock.port),
            session_id=summary.session_id,
            sealed=summary.files_sealed,
            complete=summary.complete,
        )

    def _judged_at_dock(self, dock: Dock, importer: Importer, store: Store) -> None:
        """After a first pass, what its checks judged is kept to judge the camera again while it
        stays docked; after a pass that wiped, it is judged again at once (storage freed)."""
        check = importer.dock_check
        if check is not None:
            dock.follow = check.follow()
            dock.next_judge = time.monotonic() + self.cfg.health.readiness_recheck_s
            return
        if dock.follow is None or not dock.mountpoint:
            return
        try:
            with open_root(dock.mountpoint) as root_fd:
                dock.follow.again(store, root_fd, utc_now())
        except (AgentError, OSError) as exc:
            _log.warning("health.rejudge_failed", device=dock.shown, error=describe(exc))


def run(cfg: Config) -> int:
    return Daemon(cfg).run()


__all__ = ["Daemon", "run"]
