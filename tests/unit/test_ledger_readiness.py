"""Readiness after offload: ready / warning / not ready, each with its reasons."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agent.core.config import HealthConfig
from agent.health import readiness
from agent.store import FaultRow

LIMITS = HealthConfig()
GOOD_BATTERY: dict[str, Any] = {"verdict": "ok", "reasons": [], "charge_pct": 60}
BASE = readiness.Inputs(
    battery=GOOD_BATTERY,
    storage_free=80 << 30,
    storage_capacity=100 << 30,
    storage_is_volume=True,
    drift_s=3,
    clock_threshold_s=30,
    correction="not needed",
    correction_detail="",
    correction_check="",
    drift_flagged=False,
    drift_trend="",
    faults=[],
    officer_mismatch="",
)


def _fault(severity: str, code: str, detail: str) -> FaultRow:
    """A fault row of this dock, as the store returns it."""
    return FaultRow(1, "CAM1", 1, "2024-03-10T20:00:00+00:00", "camera_log", code, severity, detail)


def _areas(result: readiness.Readiness, severity: str) -> set[str]:
    return {r.area for r in result.reasons if r.severity == severity}


def test_a_fit_camera_is_ready() -> None:
    result = readiness.assess(BASE, LIMITS)
    assert result.verdict == "ready"
    assert result.summary() == "ready"


def test_each_area_can_make_a_camera_not_ready() -> None:
    cases = [
        replace(BASE, battery={"verdict": "bad", "reasons": ["overheating: peak 63 °C"]}),
        replace(BASE, storage_free=5 << 30),
        replace(BASE, drift_s=3600, correction="not written", correction_detail="unsynced"),
        replace(BASE, faults=[_fault(severity="not_ready", code="FAULT E12", detail="x")]),
    ]
    for inputs, area in zip(cases, ["battery", "storage", "clock", "faults"], strict=True):
        result = readiness.assess(inputs, LIMITS)
        assert result.verdict == "not ready", area
        assert area in _areas(result, "not_ready")


def test_warnings_carry_their_reasons() -> None:
    result = readiness.assess(
        replace(
            BASE,
            battery={"verdict": "warning", "reasons": ["capacity faded to 70 %"], "charge_pct": 10},
            storage_free=25 << 30,
            drift_s=-90,
            correction="failed",
            correction_detail="clock not corrected: volume read-only",
            drift_flagged=True,
            drift_trend="+10.0 s/day over 4.0 days",
            officer_mismatch="assigned to 200 but DEVICE.INF says 100",
        ),
        LIMITS,
    )
    assert result.verdict == "warning"
    texts = " | ".join(r.text for r in result.reasons)
    assert "capacity faded to 70 %" in texts
    assert "charge 10 %" in texts
    assert "25 % free" in texts
    assert "volume read-only" in texts
    assert "+10.0 s/day" in texts
    assert "DEVICE.INF says 100" in texts


def test_a_written_correction_is_information_not_a_warning() -> None:
    result = readiness.assess(replace(BASE, drift_s=-90, correction="written"), LIMITS)
    assert result.verdict == "ready"
    assert any("TIME.TXT written" in r.text for r in result.reasons)


def test_unknown_drift_and_a_correction_that_did_not_take_warn() -> None:
    assert readiness.assess(replace(BASE, drift_s=None), LIMITS).verdict == "warning"
    result = readiness.assess(replace(BASE, correction_check="did not take"), LIMITS)
    assert result.verdict == "warning" and "clock" in _areas(result, "warning")


def test_a_directory_is_not_judged_on_storage() -> None:
    result = readiness.assess(replace(BASE, storage_is_volume=False, storage_free=0), LIMITS)
    assert result.verdict == "ready"
