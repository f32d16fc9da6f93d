"""The health checks of one dock session, run by the import pipeline at three points.

docked(): SYSTEM.LOG and the battery (by the profile's BatterySpec: BATTERY.CSV, a charge the
SCSI unlock handed in, or none) read, drift measured, log events and faults kept, the last
correction checked, officer resolved. scanned(): for a camera with no log, its drift bounded by
the recordings and the last correction checked (agent.health.clock_dock); drift-corrected
times and retention class put on the files before they are sealed (agent.health.files).
finished(): the import's faults (agent.health.faults), the clock corrected by the profile's
ClockSpec method, storage left, readiness verdict.
Every step catches its own failures and records them as a fault: nothing here may abort or
change an offload, and nothing here logs a log line's or a file's content.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfoNotFoundError

from agent.camera.methods import BatterySpec, ClockSpec
from agent.camera.profile import Profile
from agent.core import log
from agent.core.config import Config
from agent.core.errors import describe
from agent.core.model import DeviceInfo, ImportSummary
from agent.health import battery, clock, clock_dock, clock_files, files, readiness
from agent.health.clock_dock import Readings
from agent.health.faults import Fault, Faults, import_faults, logged_fault
from agent.health.logs import LogEvent, ParsedLog, Tail, open_tail, parse_system_log
from agent.health.readiness_watch import Follow
from agent.store import Store

_log = log.get(__name__)
T = TypeVar("T")
# The docks a drift trend is fitted over at most: the newest since the clock's last setting
# (two hundred docks are months of a camera's shifts; older drift says little of the clock now).
TREND_DOCKS = 200

# Log events kept in the store (once per line): what compliance, faults and the clock need.
# Unknown events are kept too ("kept as-is and counted", camera-layout.md): all are counted by
# kind in the session's log summary, and the newest agent.health.logs.UNKNOWN_SAMPLE of a dock are
# stored as a sample (storing every one cost ~23 MB of database per dock of a hostile log).
KEPT_EVENTS = frozenset(
    {"REC_INTERRUPT", "FAULT", "TIME_SET", "LOW_BATTERY", "STORAGE_FULL", "USB_CONNECT"}
)


def methods(profile: Profile) -> tuple[ClockSpec, BatterySpec]:
    """The profile's clock and battery methods (a version 1 profile's are the generic ones)."""
    return profile.clock, profile.battery


def _used(event: LogEvent) -> bool:
    """The events of SYSTEM.LOG that _docked uses: those it keeps (USB_CONNECT among them)."""
    return event.event in KEPT_EVENTS or not event.known


class DockCheck:
    def __init__(
        self,
        config: Config,
        store: Store,
        profile: Profile,
        info: DeviceInfo,
        session_id: int,
        now: Callable[[], str],
        station: clock.StationClock | None = None,
        readings: Readings | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.profile = profile
        self.info = info
        self.session_id = session_id
        self.now = now
        self.station = station or clock.station_clock()
        self.zone_error = ""
        try:
            self.zone = clock.camera_zone(config.ingest.camera_timezone, profile.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            # A profile naming an unknown zone: camera times are read in the station's zone,
            # and the fault says so, rather than refusing the camera's evidence.
            self.zone = None
            self.zone_error = f"camera profile time zone {profile.timezone!r}: {exc}"
        self.clock_spec, self.battery_spec = methods(profile)
        self.readings = readings
        self.threshold = self.clock_spec.threshold_s
        self.bounds = clock_files.Bounds(None, None, 0)
        self.has_log = bool(profile.system_log)
        self.clock_file_present = False
        self.docked_at: datetime | None = None  # the session's, once docked() read it
        self.check_pending = False  # a correction to check once the recordings are known
        self.log = _log.bind(device_serial=info.serial, session_id=session_id)
        self.faults = Faults(store, info.serial, session_id, now, self.log)
        self.station_state = clock.StationClockState(False, "unknown", source="not read")
        self.drift: int | None = None
        self.drift_session = session_id
        self.same_dock = False
        self.first_session = session_id  # the session that first saw this dock's USB_CONNECT
        self.battery = battery.BatteryReport(False, "unknown", ["not assessed"])
        self.correction_check = ""
        self.drift_flagged = False
        self.drift_trend = ""
        self.officer_mismatch = ""
        # What readiness was judged on, and the battery log's judge and where its read ended:
        # to judge the camera again while it stays docked (agent.health.readiness_watch).
        self.judged: readiness.Inputs | None = None
        self.battery_judge: battery.Judge | None = None
        self.battery_offset = 0

    # ---- the three points of the pipeline --------------------------------------------------

    def docked(self, root_fd: int) -> None:
        self.faults.guard("docked", self._docked, root_fd)

    def scanned(self, file_ids: Sequence[int]) -> None:
        self.faults.guard("scanned", self._scanned, file_ids)

    def finished(self, root_fd: int, summary: ImportSummary) -> None:
        self.faults.guard("finished", self._finished, root_fd, summary)

    def wants_clock_write(self) -> bool:
        """Will finished() write the clock file (so the volume must be writable then)?"""
        if not self.clock_spec.file_format:
            return False
        drift = clock_dock.effective_drift(self.drift, self.bounds)
        decision = clock.decide_correction(drift, self.threshold, self.station_state)
        return decision.write or self._stale_clock_file()

    def failed(self, exc: BaseException) -> None:
        """The session ended with an error: a camera that could not be read is a device fault."""
        if isinstance(exc, OSError):
            fault = Fault("read", "session_aborted", "warning", describe(exc))
            self.faults.guard("failed", self.faults.register, fault)

    # ---- implementation --------------------------------------------------------------------

    def _read(self, root_fd: int, rel: str, parse: Callable[[Tail], T]) -> tuple[T | None, str]:
        """(parse of the camera log, or None when absent or unreadable, error); never raises on
        I/O. The log is parsed as it is read, line by line: it is never held whole."""
        if not rel:
            return None, ""  # the camera's profile names no such log
        try:
            tail = open_tail(root_fd, rel.encode())
            if tail is None:
                return None, ""
            with tail:
                return parse(tail), ""
        except OSError as exc:
            return None, describe(exc)

    def _docked(self, root_fd: int) -> None:
        self.station_state = self.station.read()
        session = self.store.session(self.session_id)
        docked_at_text = str(session.docked_at)
        docked_at = clock.parse_station_time(docked_at_text)
        self.docked_at = docked_at
        with self.store.transaction():
            self.store.open_health(self.session_id, self.info.serial, docked_at_text, self.now())
        if self.zone_error:
            self.faults.register(Fault("health", "bad_time_zone", "warning", self.zone_error))
        # Before this dock writes one: the file of the last correction still there?
        self.clock_file_present = bool(self.clock_spec.file_format) and (
            clock_dock.clock_file_present(root_fd, self.clock_spec.path)
        )

        parsed, log_summary, log_error = self._read_log(root_fd)
        connect_at, clock_detail = self._measure(parsed, docked_at, log_error, log_summary)
        new_events = self._keep_events(parsed.events)
        self._check_last_correction(new_events)
        self._trend(docked_at)
        officer, source, assigned = self._officer(docked_at_text)
        self._assess_battery(root_fd)

        with self.store.transaction():
            self.store.update_health(
                self.session_id,
                self.now(),
                camera_connect_at=connect_at,
                clock_drift_s=self.drift,
                clock_detail=clock_detail,
                station_clock=self.station_state.describe(),
                station_synced=int(self.station_state.synchronised),
                station_esterror_us=self.station_state.esterror_us,
                correction_check=self.correction_check,
                drift_flagged=int(self.drift_flagged),
                drift_trend=self.drift_trend,
                officer_on_camera=self.info.officer_id,
                officer=officer,
                officer_source=source,
                officer_mismatch=self.officer_mismatch,
                battery_verdict=self.battery.verdict,
                battery=self.battery.as_dict(),
                system_log=log_summary,
            )
        self.log.info(
            "clock.drift_measured",
            drift_s=self.drift,
            same_dock=self.same_dock,
            station_synchronised=self.station_state.synchronised,
            officer_id=officer,
            officer_assigned=assigned,
        )

    def _read_log(self, root_fd: int) -> tuple[ParsedLog, dict[str, Any], str]:
        """The camera's SYSTEM.LOG, where its profile names one: (parsed, summary, read error).
        Only the events used are held: a camera's SYSTEM.LOG is mostly recordings."""
        if not self.has_log:
            return ParsedLog(), {"present": False, "kept": False}, ""
        read, error = self._read(
            root_fd,
            self.profile.system_log,
            lambda t: parse_system_log(t.lines(), t.skipped, keep=_used),
        )
        present = read is not None
        parsed = read if read is not None else ParsedLog()
        log_summary: dict[str, Any] = parsed.summary()
        log_summary["present"] = present
        if error:
            log_summary["read_error"] = error
        self.log.info(
            "camera.log_parsed",
            lines=parsed.lines,
            events=parsed.event_count,
            malformed=parsed.malformed,
            unknown=parsed.unknown,
            present=present,
        )
        return parsed, log_summary, error

    def _measure(
        self, parsed: ParsedLog, docked_at: datetime, error: str, log_summary: dict[str, Any]
    ) -> tuple[str, str]:
        """The drift from the log's USB_CONNECT (or a read-back the unlock handed in);
        returns (the camera's USB_CONNECT reading, how the drift was obtained)."""
        if self.clock_spec.method == "none":
            return "", "clock method none: the station can neither read nor set this clock"
        known = self.store.known_event_lines(self.info.serial, "USB_CONNECT")
        measured = clock.measure_drift(parsed.events, docked_at, self.zone, set(known))
        self.drift, clock_detail = measured.drift_s, measured.detail
        if not self.has_log:
            clock_detail = "the camera keeps no log: drift bounded by its recordings"
        elif error:
            clock_detail = f"{self.profile.system_log} unreadable ({error}): drift unknown"
        elif not log_summary.get("present"):
            clock_detail = f"no {self.profile.system_log} on the camera: drift unknown"
        connect = next((e for e in reversed(parsed.events) if e.event == "USB_CONNECT"), None)
        if self.drift is None and connect is not None and connect.line in known:
            self.same_dock = True
            self.first_session = known[connect.line]
            earlier = self.store.health(known[connect.line])
            if earlier is not None and earlier.clock_drift_s is not None:
                self.drift = int(earlier.clock_drift_s)
                self.drift_session = int(earlier.session_id)
                clock_detail = (
                    f"same dock as session {self.drift_session} (its USB_CONNECT): "
                    f"drift {self.drift:+d} s measured then"
                )
        readback = clock_dock.readback_drift(self.readings)
        if self.drift is None and readback is not None:
            self.drift = readback
            clock_detail = f"drift {readback:+d} s read back by the camera's unlock"
        return measured.connect_at, clock_detail

    def _assess_battery(self, root_fd: int) -> None:
        """The battery by the profile's source: BATTERY.CSV, the unlock's reading, or none."""
        health = self.config.health
        source = self.battery_spec.source
        if source == "scsi":
            # Handed in with the unlock's result, or on the identity it read (a DeviceInfo
            # from a device record may carry the charge).
            pct = (
                self.readings.battery_pct
                if self.readings is not None
                else getattr(self.info, "battery_pct", None)
            )
            self.battery = battery.from_scsi(pct if isinstance(pct, int) else None)
        elif source == "none":
            self.battery = battery.not_reported()
        else:
            report, berror = self._read(root_fd, self.battery_spec.path, self._judge_battery)
            self.battery = report if report is not None else battery.assess(None, health)
            if berror:
                self.battery.read_error = berror
                self.battery.reasons.append(f"battery log unreadable: {berror}")
            if self.info.battery_pct is not None:
                # The camera's own answer over SCSI (agent.devices.dialects) is its charge now;
                # the battery log, where there is one, still judges the battery's health.
                self.battery.charge_pct = self.info.battery_pct
        self.battery.source = source
        self.log.info(
            "battery.assessed",
            source=source,
            verdict=self.battery.verdict,
            rows=self.battery.rows,
            truncated=self.battery.truncated,
            garbled=self.battery.garbled,
            capacity_pct=self.battery.capacity_pct,
            peak_temp_c=self.battery.peak_temp_c,
        )
        if self.battery.verdict == "bad":
            self.faults.register(
                Fault("battery", "battery_bad", "not_ready", "; ".join(self.battery.reasons))
            )

    def _judge_battery(self, tail: Tail) -> battery.BatteryReport:
        judge = battery.Judge(self.config.health)
        judge.feed(tail.lines(), tail.skipped)
        self.battery_judge, self.battery_offset = judge, tail.size
        return judge.report()

    def follow(self) -> Follow | None:
        """What this dock judged, to judge the camera again while it stays docked (None before
        finished() judged it)."""
        if self.judged is None:
            return None
        log_read = self.battery_spec.source not in ("scsi", "none")
        return Follow(
            self.session_id,
            self.first_session,
            self.judged,
            self.config.health,
            self.battery_spec.path if log_read else "",
            self.battery_judge if log_read else None,
            self.battery_offset,
        )

    def _keep_events(self, events: Sequence[LogEvent]) -> list[LogEvent]:
        """Store the events that matter (once per line); returns those not seen at a past dock."""
        new: list[LogEvent] = []
        with self.store.transaction():
            for event in events:
                if event.event not in KEPT_EVENTS and event.known:
                    continue
                stamp = event.camera_time.isoformat()
                corrected = clock.corrected_time(stamp, self.drift, self.zone)
                if self.store.add_camera_event(
                    self.info.serial,
                    self.session_id,
                    stamp,
                    corrected,
                    event.event,
                    event.fields,
                    event.line,
                ):
                    new.append(event)
        for event in new:
            if event.event == "FAULT":
                self.faults.register(logged_fault(event))
        return new

    def _check_last_correction(self, new_events: Sequence[LogEvent]) -> None:
        last = self.store.last_health(self.info.serial, self.session_id)
        if last is None or last.clock_correction != "written" or self.same_dock:
            return
        spec = self.clock_spec
        by_log = spec.file_format == "generic" and self.has_log
        if self.drift is None and not self.clock_file_present and not by_log:
            # No log to tell: the recordings will, once they are listed (scanned()).
            self.check_pending = True
            return
        self._settle_check(new_events)

    def _settle_check(self, new_events: Sequence[LogEvent]) -> None:
        status, detail = clock_dock.check_last_correction(
            self.clock_spec,
            new_events=new_events,
            has_log=self.has_log,
            file_present=self.clock_file_present,
            drift_s=self.drift,
            bounds=self.bounds,
        )
        self.correction_check = status
        with self.store.transaction():
            self.store.update_health(
                self.session_id,
                self.now(),
                correction_check=status,
                correction_check_detail=detail,
            )
        self.log.info("clock.correction_checked", result=status)
        if status != "took":
            self.faults.register(
                Fault("clock", "clock_not_set", "warning", f"clock correction {status}: {detail}")
            )

    def _trend(self, docked_at: datetime) -> None:
        # The docks since the clock's last setting, the newest TREND_DOCKS of them: a camera
        # docked every day for years does not read years of rows at every dock (a 2-hour soak
        # of 1,700 docks a camera showed each later daemon's memory higher).
        history = self.store.trend_history(self.info.serial, self.session_id, TREND_DOCKS)
        points = clock.trend_points(history)
        if self.correction_check == "took":
            points = []
        if self.drift is not None and not self.same_dock:
            points.append((docked_at, self.drift))
        health = self.config.health
        trend = clock.drift_trend(
            points, health.drift_trend_min_span_h, health.drift_rate_flag_s_per_day
        )
        self.drift_flagged = trend.flagged
        self.drift_trend = trend.detail
        with self.store.transaction():
            self.store.update_health(
                self.session_id, self.now(), drift_rate_s_per_day=trend.rate_s_per_day
            )
        if trend.flagged and not self.same_dock:
            self.log.warning("clock.drift_flagged", rate_s_per_day=trend.rate_s_per_day)
            self.faults.register(
                Fault("clock", "drift_runaway", "warning", f"camera clock {trend.detail}")
            )

    def _officer(self, docked_at: str) -> tuple[str, str, bool]:
        """(officer, where it came from, whether an assignment exists) at dock time."""
        assignment = self.store.assignment_at(self.info.serial, docked_at)
        on_camera = self.info.officer_id
        if assignment is None:
            return on_camera, "DEVICE.INF" if on_camera else "", False
        officer = str(assignment.officer_id)
        if on_camera and on_camera != officer:
            self.officer_mismatch = (
                f"assigned to {officer} since {assignment.assigned_at}, "
                f"but the camera's DEVICE.INF says {on_camera}"
            )
        return officer, "assignment", True

    def _scanned(self, file_ids: Sequence[int]) -> None:
        if self.docked_at is not None and self.drift is None and self.clock_spec.method != "none":
            since = clock_dock.last_undock(self.store, self.info.serial, self.session_id)
            self.bounds = clock_dock.recording_bounds(
                self.store, self.session_id, file_ids, self.zone, since, self.docked_at
            )
            if self.bounds.known:
                with self.store.transaction():
                    self.store.update_health(
                        self.session_id, self.now(), clock_detail=self.bounds.describe()
                    )
            self.log.info("clock.drift_bounded", low_s=self.bounds.low_s, high_s=self.bounds.high_s)
        if self.check_pending:
            self.check_pending = False
            self._settle_check(())
        basis = clock.time_basis(self.drift, self.drift_session, self.station_state.describe())
        files.annotate(self.store, self.config, file_ids, self.drift, self.zone, basis)

    def _finished(self, root_fd: int, summary: ImportSummary) -> None:
        for fault in import_faults(summary):
            self.faults.register(fault)

        correction, detail = self._correct_clock(root_fd)

        vfs = os.fstatvfs(root_fd)
        free = vfs.f_bavail * vfs.f_frsize
        capacity = vfs.f_blocks * vfs.f_frsize
        is_volume = os.path.ismount(summary.source)
        faults = self.faults.of_dock(self.first_session)
        self.judged = readiness.Inputs(
            battery=self.battery.as_dict(),
            storage_free=free if capacity else None,
            storage_capacity=capacity or None,
            storage_is_volume=is_volume,
            drift_s=self.drift,
            clock_threshold_s=self.threshold,
            correction=correction,
            correction_detail=detail,
            correction_check=self.correction_check,
            drift_flagged=self.drift_flagged,
            drift_trend=self.drift_trend,
            faults=faults,
            officer_mismatch=self.officer_mismatch,
            clock_method=self.clock_spec.method,
            clock_file=self.clock_spec.path,
            drift_bounds=self.bounds.describe() if self.drift is None else "",
            drift_proven=self.bounds.proven() if self.drift is None else None,
        )
        verdict = readiness.assess(self.judged, self.config.health)
        now = self.now()
        # A camera taken in by hand is not docked any more: its verdict is final at once.
        undocked = self.store.session(self.session_id).undocked_at is not None
        with self.store.transaction():
            self.store.update_health(
                self.session_id,
                self.now(),
                clock_correction=correction,
                clock_correction_detail=detail,
                storage_free_bytes=free if is_volume else None,
                storage_capacity_bytes=capacity if is_volume else None,
                readiness=verdict.verdict,
                readiness_reasons=[r.as_dict() for r in verdict.reasons],
                readiness_at=now,
                readiness_final=int(undocked),
            )
        self.log.info(
            "health.readiness_assessed",
            verdict=verdict.verdict,
            reasons=len(verdict.reasons),
            battery=self.battery.verdict,
            drift_s=self.drift,
            clock_correction=correction,
        )

    def _stale_clock_file(self) -> bool:
        """Is the station's own clock file of an earlier dock still unread on the camera (and
        may the station write a fresh one)? Left alone, it would set the camera to that dock's
        time at its next start."""
        return (
            self.clock_file_present
            and self.correction_check == "did not take"
            and self.station_state.synchronised
        )

    def _correct_clock(self, root_fd: int) -> tuple[str, str]:
        spec = self.clock_spec
        if spec.method == "none":
            return "not written", "clock method none: the station does not set this model's clock"
        if spec.method == "scsi":
            return clock_dock.scsi_correction(self.readings)
        drift = clock_dock.effective_drift(self.drift, self.bounds)
        decision = clock.decide_correction(drift, self.threshold, self.station_state)
        if not decision.write and self._stale_clock_file():
            decision = clock.Decision(
                True,
                "written",
                f"the {spec.path} of the last correction was still there, unread: written "
                "again with the station's time, or the camera would take a stale one",
            )
        if not decision.write:
            return decision.status, decision.reason
        now = clock.parse_station_time(self.now())
        try:
            _, written = clock_dock.write_clock_file(root_fd, spec, now, self.zone)
        except OSError as exc:
            detail = clock.write_failure(exc, spec.path)
            self.log.warning("clock.correction_failed", drift_s=drift, error=describe(exc))
            self.faults.register(
                Fault("clock", "clock_not_corrected", "warning", f"{detail} ({decision.reason})")
            )
            return "failed", detail
        self.log.info("clock.correction_written", drift_s=drift, method=spec.method)
        return "written", f"{written}: {decision.reason}; the camera applies it at its next boot"
