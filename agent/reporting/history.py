"""One camera's history (`dockagent devices SERIAL`): its docks, trends, handovers and faults.

Per dock: drift, clock correction, battery and readiness; over the docks, the drift rate (with
the flag a runaway clock raises) and the battery's fade. Data only: agent.cli renders it.
"""

from __future__ import annotations

from typing import Any

from agent.core.config import Config
from agent.health import battery, clock
from agent.reporting.handovers import current_officer
from agent.reporting.sessions import officer_columns, require_schema
from agent.store import HealthRow, Store


def _docks(store: Store, history: list[HealthRow]) -> list[dict[str, Any]]:
    docks = []
    for h in history:
        session = store.session(int(h.session_id))
        docks.append(
            {
                "session_id": h.session_id,
                "docked_at_utc": h.docked_at,
                "officer": h.officer,
                "outcome": session.outcome,
                "files_sealed": session.files_sealed,
                "clock_drift_s": h.clock_drift_s,
                "clock_detail": h.clock_detail,
                "clock_correction": h.clock_correction,
                "correction_check": h.correction_check,
                "battery_verdict": h.battery_verdict,
                "battery": h.battery_report(),
                "readiness": h.readiness,
                "readiness_reasons": h.reasons(),
            }
        )
    return docks


def device_history(store: Store, serial: str, config: Config | None = None) -> dict[str, Any]:
    """A camera's docks with drift and battery, its trends, assignments and faults."""
    require_schema(store)
    cfg = config or Config()
    history = store.health_history(serial)
    trend = clock.drift_trend(
        clock.trend_points(history),
        cfg.health.drift_trend_min_span_h,
        cfg.health.drift_rate_flag_s_per_day,
    )
    docks = _docks(store, history)
    officer, source = current_officer(store, serial)
    return {
        "serial": serial,
        "officer": officer,
        "officer_source": source,
        **officer_columns(store.officers(), officer),
        "docks": docks,
        "drift_trend": {
            "rate_s_per_day": trend.rate_s_per_day,
            "span_days": trend.span_days,
            "points": trend.points,
            "flagged": trend.flagged,
            "detail": trend.detail,
        },
        "battery_trend": battery.trend([(d["docked_at_utc"], d["battery"]) for d in docks]),
        "assignments": [a.as_dict() for a in store.assignments(serial)],
        "faults": [f.as_dict() for f in store.faults(camera=serial)],
    }
