"""The daemon's side of being a systemd service: readiness, status, watchdog pings, metrics.

From the main loop only: READY=1 after recovery, STATUS= when it changes, WATCHDOG=1 at half the
interval while agent.runtime.liveness is satisfied (sd_watchdog_enabled(3)), STOPPING=1, and the
metrics file every metrics_interval_s. Nothing here may stop the daemon: failures are logged, not
raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from agent.core import log
from agent.core.config import Config
from agent.reporting import metrics
from agent.runtime.liveness import Liveness
from agent.runtime.notify import Notifier, watchdog_interval_s
from agent.store import Store, StoreError

_log = log.get(__name__)

# How often the STATUS= line is recomputed (it is sent only when its text changes).
STATUS_EVERY_S = 2.0


class ServiceReporter:
    def __init__(
        self,
        cfg: Config,
        liveness: Liveness,
        environ: Mapping[str, str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.liveness = liveness
        self.notifier = Notifier(environ)
        timeout = watchdog_interval_s(environ)
        # sd_watchdog_enabled(3): ping at half the timeout, so one late loop is not a restart.
        self.ping_every_s = timeout / 2 if timeout else None
        self.metrics = metrics.MetricsWriter(cfg.service.metrics_path)
        self.monotonic = monotonic
        self._next_ping = 0.0
        self._next_status = 0.0
        self._next_metrics = 0.0
        self._status = ""
        self._stalled = False

    # ---- lifecycle -------------------------------------------------------------------------

    def starting(self) -> None:
        self.notifier.send("STATUS=starting: recovery before taking cameras")

    def ready(self, store: Store) -> None:
        """Recovery is done and every source listens: systemd may order dependants now."""
        snap = self._snapshot(store)
        self._status = snap.status_line() if snap else "running"
        self.notifier.send("READY=1", f"STATUS={self._status}")
        _log.info(
            "service.ready_notified",
            notify=self.notifier.enabled,
            watchdog_ping_s=self.ping_every_s,
            metrics_path=self.cfg.service.metrics_path or None,
        )
        if snap is not None:
            self.metrics.write(snap)
        now = self.monotonic()
        self._next_status = now + STATUS_EVERY_S
        self._next_metrics = now + self.cfg.service.metrics_interval_s

    def tick(self, store: Store) -> None:
        """Once per main-loop turn (at least every quarter second)."""
        now = self.monotonic()
        if self.ping_every_s is not None and now >= self._next_ping:
            self._next_ping = now + self.ping_every_s
            self._watchdog()
        if now >= self._next_status:
            self._next_status = now + STATUS_EVERY_S
            line = self._quick_status(store)
            if line and line != self._status and not self._stalled:
                self._status = line
                self.notifier.send(f"STATUS={line}")
        if now >= self._next_metrics:
            self._next_metrics = now + self.cfg.service.metrics_interval_s
            snap = self._snapshot(store)
            if snap is not None:
                self.metrics.write(snap)

    def seconds_to_next(self) -> float:
        """Until tick() has something to do: the next watchdog ping, STATUS= or metrics file."""
        due = [self._next_status, self._next_metrics]
        if self.ping_every_s is not None:
            due.append(self._next_ping)
        return max(0.0, min(due) - self.monotonic())

    def stopping(self, busy: bool) -> None:
        self.notifier.send(
            "STOPPING=1",
            "STATUS=stopping: " + ("letting copies in flight finish" if busy else "idle"),
        )

    # ---- internals -------------------------------------------------------------------------

    def _watchdog(self) -> None:
        verdict = self.liveness.check()
        if verdict.healthy:
            if self._stalled:
                _log.info("watchdog.recovered")
                self._stalled = False
            self.notifier.send("WATCHDOG=1")
            return
        if not self._stalled:
            # No ping: systemd kills and restarts the daemon after WatchdogSec=; recovery then
            # puts the interrupted copies back (nothing is lost, DESIGN.md rule 8).
            _log.error("watchdog.stalled", problems=verdict.problems)
            self._status = f"stalled, watchdog pings stopped: {verdict.describe()}"
            self.notifier.send(f"STATUS={self._status}")
            self._stalled = True

    def _quick_status(self, store: Store) -> str:
        try:
            return metrics.quick_status(store)
        except (StoreError, ValueError) as exc:
            _log.warning("service.status_failed", error=str(exc))
            return ""

    def _snapshot(self, store: Store) -> metrics.Snapshot | None:
        try:
            return metrics.collect(store)
        except (StoreError, OSError, ValueError) as exc:
            _log.warning("service.snapshot_failed", error=str(exc))
            return None
