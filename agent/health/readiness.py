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
    clock_method: str = "file:generic"  # the profile's ClockSpec.method
    clock_file: str = "TIME.TXT"  # what a file:<format> method writes
    # A camera with no log: its recordings' bounds on the drift (agent.health.clock_files), and
    # the drift they prove (None: they allow none); "" / None where the drift was measured.
    drift_bounds: str = ""
    drift_proven: int | None = None


def _battery(inp: Inputs, limits: HealthConfig) -> list[Reason]:
    rep = inp.battery
    verdict = rep.get("verdict", "unknown")
    texts = list(rep.get("reasons", []))
    out: list[Reason] = []
    if verdict == "unknown" and limits.battery_reading_required:
        # The station's configuration will not issue a camera whose charge it has not seen.
        texts = texts or ["battery state unknown"]
        return [
            Reason("not_ready", "battery", f"{t} (a battery reading is required)") for t in texts
        ]
    if verdict == "unknown" and rep.get("source") == "none":
        # A model with no battery source is not at fault for it: said, not held against it.
        return [Reason("info", "battery", t) for t in texts or ["battery state unknown"]]
    if verdict == "bad":
        out.extend(Reason("not_ready", "battery", t) for t in texts)
    elif verdict in ("warning", "unknown"):
        out.extend(Reason("warning", "battery", t) for t in texts or ["battery state unknown"])
    charge = rep.get("charge_pct")
    if charge is not None and charge < limits.charge_warn_pct:
        out.append(Reason("warning", "battery", f"charge {charge} %: charge before issue"))
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


def _corrected(inp: Inputs) -> str:
    """How a correction written at this dock takes effect, for the reason's text."""
    if inp.clock_method == "scsi":
        return "set over SCSI at this dock"
    return f"{inp.clock_file} written, set at the next boot"


def _clock(inp: Inputs, limits: HealthConfig) -> list[Reason]:
    if inp.clock_method == "none":
        return [
            Reason(
                "info",
                "clock",
                "clock not checked: the station can neither read nor set this model's clock "
                "(clock method none)",
            )
        ]
    out: list[Reason] = []
    drift = inp.drift_s if inp.drift_s is not None else inp.drift_proven
    off = "off by" if inp.drift_s is not None else "off by at least"
    if drift is None and inp.drift_bounds:
        out.append(Reason("info", "clock", f"camera clock not timed exactly: {inp.drift_bounds}"))
    elif drift is None:
        out.append(Reason("warning", "clock", "camera clock drift unknown (no new USB_CONNECT)"))
    elif abs(drift) > inp.clock_threshold_s:
        if inp.correction == "written":
            out.append(Reason("info", "clock", f"clock {off} {drift:+d} s: {_corrected(inp)}"))
        else:
            severity = "not_ready" if abs(drift) > limits.clock_not_ready_s else "warning"
            out.append(
                Reason(
                    severity,
                    "clock",
                    f"clock {off} {drift:+d} s and not corrected ({inp.correction_detail})",
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
