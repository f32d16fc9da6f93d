"""The faults of one dock: what the station registers against a camera, and from what.

A fault is a finding about the camera (a logged FAULT, a file it would not give up, a wipe it
refused, a check that failed), kept as a row of its own. Which of an import's problems are the
camera's is decided here, by their kind (model.ProblemKind), never by their wording. Registering
a fault never raises into the dock session, and nothing here logs a file's or a log line's content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from agent.core.errors import describe
from agent.core.model import STATION_SIDE, ImportSummary, ProblemKind, display_name
from agent.health.logs import LogEvent
from agent.store import FaultRow, Store

_KINDS = frozenset(k.value for k in ProblemKind)


class Fault(NamedTuple):
    source: str
    code: str
    severity: str
    detail: str
    camera_time: str = ""


def problem_kind(problem: Mapping[str, object]) -> ProblemKind:
    """The kind of one of an import's problems (ImportSummary.problems)."""
    kind = problem.get("kind")
    if isinstance(kind, str) and kind in _KINDS:
        return ProblemKind(kind)
    return ProblemKind.OTHER


def import_faults(summary: ImportSummary) -> list[Fault]:
    """The camera's part of an import's problems: files it would not give up, files it refused
    to have wiped. A problem of the station's (staging full, a shutdown) is no device fault."""
    found = [
        Fault("read", "read_failed", "warning", f"{problem.get('file')}: {problem.get('reason')}")
        for problem in summary.problems
        if problem_kind(problem) not in STATION_SIDE
    ]
    refused = summary.wipe.get("refused")
    if isinstance(refused, list):
        found.extend(
            Fault("wipe", "wipe_refused", "warning", f"{item.get('file')}: {item.get('reason')}")
            for item in refused
        )
    return found


def logged_fault(event: LogEvent) -> Fault:
    """A FAULT line of the camera's SYSTEM.LOG, as a fault of the camera."""
    code = display_name(event.fields.get("code", "?"))[:64]
    when = event.camera_time.isoformat()
    return Fault(
        "camera_log",
        f"FAULT {code}",
        "not_ready",
        f"camera logged FAULT code={code} at {when} (camera clock), unexplained",
        when,
    )


class Faults:
    """Registers the faults of one dock session, each in its own transaction."""

    def __init__(
        self, store: Store, serial: str, session_id: int, now: Callable[[], str], log: Any
    ) -> None:
        self.store = store
        self.serial = serial
        self.session_id = session_id
        self.now = now
        self.log = log

    def register(self, fault: Fault) -> None:
        with self.store.transaction():
            self.store.add_fault(
                self.serial,
                self.session_id,
                self.now(),
                fault.source,
                fault.code,
                fault.severity,
                fault.detail,
                fault.camera_time,
            )
        self.log.warning(
            "fault.registered", source=fault.source, code=fault.code, severity=fault.severity
        )

    def guard(self, step: str, fn: Callable[..., None], *args: Any) -> None:
        """Run one step of the dock's checks; a failure is registered, never raised."""
        try:
            fn(*args)
        except Exception as exc:
            # A health check that fails is a finding about the station, never a reason to stop
            # taking evidence in.
            self.log.error("health.check_failed", step=step, error=describe(exc))
            try:
                self.register(
                    Fault("health", "check_failed", "warning", f"{step}: {describe(exc)}")
                )
            except Exception as again:
                self.log.error("fault.not_registered", error=describe(again))

    def of_dock(self, first_session: int) -> list[FaultRow]:
        """The faults readiness weighs: this session's, and a retry of the same dock keeps the
        camera's logged faults, which were registered by the session that first read them."""
        return [
            f
            for f in self.store.dock_faults(self.session_id, first_session)
            if f.source in ("camera_log", "read", "wipe")
        ]
