"""The verdict on a camera after offload: ready, warning or not ready, each with its reasons.

Pure: it weighs what the other health checks found (battery, storage left on the camera, clock,
faults of this dock, officer assignment) against the configured thresholds. It reads nothing,
stores nothing, and never blocks an offload or a wipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agent.core.config import HealthConfig
from agent.store import FaultRow

READY = "ready"
WARNING = "warning"
NOT_READY = "not ready"

_RANK = {"info": 0, "warning": 1, "not_ready": 2}


@dataclass(frozen=True)
class Reason:
    severity: str  # info | warning | not_ready
    area: str  # battery | storage | clock | faults | officer
    text: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Readiness:
    verdict: str
    reasons: tuple[Reason, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": [r.as_dict() for r in self.reasons]}

    def summary(self) -> str:
        shown = [r.text for r in self.reasons if r.severity != "info"]
        return self.verdict + (": " + "; ".join(shown) if shown else "")


@dataclass(frozen=True)
class Inputs:
    battery: dict[str, Any]  # BatteryReport.as_dict()
    storage_free: int | None  # bytes free on the camera after offload and wipe
    storage_capacity: int | None
    storage_is_volume: bool  # False: a directory (its free space is the host's)
    drift_s: int | None
    clock_threshold_s: int
    correction: str  # written | not needed | not written | failed
    correction_detail: str
    correction_check: str  # took | did not take | did not hold | "" (nothing to check)
    drift_flagged: bool
    drift_trend: str
    faults: Sequence[FaultRow]  # fault rows of this dock (severity warning|not_ready)
    officer_mismatch: str


def _battery(inp: Inputs, limits: HealthConfig) -> list[Reason]:
    rep = inp.battery
    verdict = rep.get("verdict", "unknown")
    texts = list(rep.get("reasons", []))
    out: list[Reason] = []
    if verdict == "bad":
        out.extend(Reason("not_ready", "battery", t) for t in texts)
    elif verdict in ("warning", "unknown"):
        out.extend(Reason("warning", "battery", t) for t in texts or ["battery state unknown"])
    charge = rep.get("charge_pct")
    if charge is not None and charge < limits.charge_warn_pct:
        out.append(Reason("warning", "battery", f"charge {charge} % at dock: charge before issue"))
    return out


def _storage(inp: Inputs, limits: HealthConfig) -> list[Reason]:
    if not inp.storage_is_volume:
        return [Reason("info", "storage", "a directory, not a camera volume: storage not judged")]
    if inp.storage_free is None or not inp.storage_capacity:
        return [Reason("warning", "storage", "the volume does not report its free space")]
    pct = 100.0 * inp.storage_free / inp.storage_capacity
    text = f"{pct:.0f} % free after offload ({inp.storage_free} of {inp.storage_capacity} bytes)"
    if pct < limits.storage_not_ready_free_pct:
        return [Reason("not_ready", "storage", text)]
    if pct < limits.storage_warn_free_pct:
        return [Reason("warning", "storage", text)]
    return [Reason("info", "storage", text)]


def _clock(inp: Inputs, limits: HealthConfig) -> list[Reason]:
    out: list[Reason] = []
    if inp.drift_s is None:
        out.append(Reason("warning", "clock", "camera clock drift unknown (no new USB_CONNECT)"))
    elif abs(inp.drift_s) > inp.clock_threshold_s:
        if inp.correction == "written":
            out.append(
                Reason(
                    "info",
                    "clock",
                    f"clock off by {inp.drift_s:+d} s: TIME.TXT written, set at the next boot",
                )
            )
        else:
            severity = "not_ready" if abs(inp.drift_s) > limits.clock_not_ready_s else "warning"
            out.append(
                Reason(
                    severity,
                    "clock",
                    f"clock off by {inp.drift_s:+d} s and not corrected ({inp.correction_detail})",
                )
            )
    if inp.correction_check in ("did not take", "did not hold"):
        out.append(Reason("warning", "clock", f"last correction {inp.correction_check}"))
    if inp.drift_flagged:
        out.append(Reason("warning", "clock", f"drift trend {inp.drift_trend}"))
    return out


def assess(inp: Inputs, limits: HealthConfig) -> Readiness:
    reasons = [*_battery(inp, limits), *_storage(inp, limits), *_clock(inp, limits)]
    for fault in inp.faults:
        severity = "not_ready" if fault.severity == "not_ready" else "warning"
        reasons.append(Reason(severity, "faults", f"{fault.code}: {fault.detail}"))
    if inp.officer_mismatch:
        reasons.append(Reason("warning", "officer", inp.officer_mismatch))
    worst = max((_RANK[r.severity] for r in reasons), default=0)
    verdict = {0: READY, 1: WARNING, 2: NOT_READY}[worst]
    reasons.sort(key=lambda r: -_RANK[r.severity])
    return Readiness(verdict, tuple(reasons))
