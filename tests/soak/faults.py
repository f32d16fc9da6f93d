"""The soak's faults: which one a dock carries, and injecting it into the running station.

A fault is chosen per dock session (plan.FAULT_WEIGHTS, at the run's fault rate) while faults
are on; the station-wide ones are injected here under one lock, so that stopping the faults
(`stop`) waits for an injection under way and leaves the station as it should be: proxy faults
cleared, wall clock true. The tus server also restarts on its own schedule. Undocking a camera
mid-copy is the camera's own business (run.Soak.undock_mid_copy).
"""

from __future__ import annotations

import os
import threading
import time

from tests.soak.plan import (
    CLOCK_JUMP_S,
    FAULT_WEIGHTS,
    PROXY_FAULTS,
    WALL_OFFSET_ENV,
    Dice,
    Settings,
    Tally,
)
from tests.soak.station import DaemonControl, Station, TusControl
from tests.support.fault_proxy import FaultProxy


def clock_hook_available() -> bool:
    """Whether the agent has the wall-clock test hook (clock jumps are skipped where not)."""
    try:
        from agent.core import testhooks  # only to learn whether the hook exists
    except ImportError:
        return False
    return getattr(testhooks, "WALL_OFFSET_FILE", "") == WALL_OFFSET_ENV


class Faults:
    """Chooses and injects the faults of one run."""

    def __init__(
        self,
        settings: Settings,
        dice: Dice,
        tally: Tally,
        station: Station,
        daemon: DaemonControl,
        tus: TusControl,
        proxy: FaultProxy,
    ) -> None:
        self.s = settings
        self.dice = dice
        self.tally = tally
        self.station = station
        self.daemon = daemon
        self.tus = tus
        self.proxy = proxy
        self.on = threading.Event()
        self.lock = threading.Lock()
        self.clock_hook = clock_hook_available()
        self.clock_jumped = False

    def _too_soon_to_kill(self) -> bool:
        current = self.daemon.current
        return time.monotonic() - current.started < self.s.kill_spacing_s(current.index)

    def pick(self) -> str | None:
        """The fault the next dock carries, or None."""
        if not self.on.is_set() or not self.dice.chance(self.s.fault_rate):
            return None
        kinds = dict(FAULT_WEIGHTS)
        if not self.clock_hook or self.clock_jumped:
            kinds.pop("clock_jump")
        if self._too_soon_to_kill():
            kinds.pop("daemon_kill")
        return self.dice.choice(list(kinds), list(kinds.values()))

    def inject(self, kind: str) -> None:
        """Inject one station-wide fault (plan.GLOBAL_FAULTS), unless the faults have stopped."""
        with self.lock:
            if not self.on.is_set():
                return
            if kind == "daemon_kill" and not self._too_soon_to_kill():
                self.tally.fault(kind)
                self.daemon.kill_and_restart()
            elif kind == "tus_restart":
                self.tally.fault(kind)
                self.tus.restart(self.dice.uniform(0.2, 2.0))
            elif kind == "clock_jump" and not self.clock_jumped:
                self._jump_clock()
            elif kind == "proxy":
                name = self.dice.choice(list(PROXY_FAULTS), [1] * len(PROXY_FAULTS))
                self.tally.fault(name)
                self.proxy.arm(PROXY_FAULTS[name]())

    def _jump_clock(self) -> None:
        step = CLOCK_JUMP_S if self.dice.chance(0.5) else -CLOCK_JUMP_S
        self.tally.fault("clock_jump_forward" if step > 0 else "clock_jump_back")
        self.set_wall_offset(step)
        self.clock_jumped = True
        # The clock stays wrong for a while, then is stepped back (NTP catching up).
        threading.Timer(self.dice.uniform(5.0, 20.0), self.clock_back).start()

    def set_wall_offset(self, seconds: float) -> None:
        tmp = self.station.wall_offset.with_suffix(".tmp")
        tmp.write_text(f"{seconds}\n")
        os.replace(tmp, self.station.wall_offset)

    def clock_back(self) -> None:
        with self.lock:
            if self.clock_jumped:
                self.set_wall_offset(0)
                self.clock_jumped = False

    def scheduled_restarts(self, abort: threading.Event) -> None:
        """The tus server also restarts now and then on its own, fault or no fault."""
        low, high = self.s.duration_s / 8, self.s.duration_s / 4
        while not abort.wait(self.dice.uniform(low, high)):
            with self.lock:
                if not self.on.is_set():
                    return
                self.tally.fault("tus_restart_scheduled")
                self.tus.restart(self.dice.uniform(0.2, 2.0))

    def kill_moment(self) -> None:
        """Half the kills land while some camera is being copied, half at a random moment
        (mostly amid uploads and purges)."""
        if self.dice.chance(0.5):
            time.sleep(self.dice.uniform(0.0, 1.5))
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.station.copying():
                self.tally.event("daemon_kill_while_copying")
                return
            time.sleep(0.01)

    def stop(self) -> int:
        """No more faults: proxy faults cleared, the wall clock true again. Returns how many of
        the armed proxy faults fired (an armed fault fires on the next matching request, and
        none may have come)."""
        with self.lock:
            self.on.clear()
            armed = list(self.proxy.faults)
            self.proxy.clear()
            self.set_wall_offset(0)
            self.clock_jumped = False
        return sum(1 for f in armed if f.fired)
