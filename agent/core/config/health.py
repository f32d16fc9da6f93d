"""[health] and [compliance], declared once: the limits a docked camera and its recordings are
judged by (the verdicts themselves are agent.health's and agent.reporting's).

Nothing here reads a file or judges anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agent.core.config.spec import key


@dataclass(frozen=True)
class HealthConfig:
    DOC: ClassVar[str] = """
        Checks on every dock: camera clock, battery log (LOG/BATTERY.CSV), storage left after
        offload. Each camera gets a verdict - ready, warning or not ready - with its reasons
        (dockagent ledger, status). TIME.TXT is written only from an NTP-synchronised station
        (adjtimex(2)) and only above the camera profile's clock_threshold_s; these keys judge
        what is left.
        """

    clock_not_ready_s: int = key(
        300, "|drift| (seconds) above which a camera whose clock was not corrected is not ready."
    )
    drift_rate_flag_s_per_day: float = key(
        3.0,
        """
        A camera whose drift changes faster than this (seconds per day, across docks since its clock
        was last set) is flagged and registered as a fault.
        """,
    )
    drift_trend_min_span_h: int = key(
        24, "The drift trend needs docks spanning at least this many hours."
    )
    battery_capacity_warn_pct: int = key(
        80,
        "Battery capacity (full charge / design, %): below warn a warning, below bad not ready.",
        percent=True,
    )
    battery_capacity_bad_pct: int = key(60, not_above="battery_capacity_warn_pct")
    battery_temp_warn_c: int = key(
        45,
        "Peak battery temperature in the log (deg C): from warn a warning, from bad not ready.",
        not_above="battery_temp_bad_c",
    )
    battery_temp_bad_c: int = key(60)
    battery_cycles_warn: int = key(1000, "Charge cycles from which the battery is a warning.")
    battery_deep_discharge_pct: int = key(
        5,
        """
        A deep discharge is a fall to battery_deep_discharge_pct % or below; this many in the log
        make a warning.
        """,
    )
    battery_deep_discharges_warn: int = key(3)
    battery_sudden_drop_pct: int = key(
        10,
        """
        A sudden drop: at least battery_sudden_drop_pct points lost between two samples at most
        battery_sudden_drop_window_s seconds apart (any number of them is a warning).
        """,
    )
    battery_sudden_drop_window_s: int = key(900)
    battery_skipped_warn_pct: int = key(
        5, "More than this share (%) of BATTERY.CSV rows truncated or garbled is a warning."
    )
    charge_warn_pct: int = key(
        20,
        "Charge at dock (%) below which the camera must charge before it is issued (warning).",
        percent=True,
    )
    storage_warn_free_pct: int = key(
        30,
        """
        Free camera storage after offload and wipe (% of the volume): below warn a warning, below
        not_ready not ready. A directory imported like a camera is not judged on storage.
        """,
        percent=True,
    )
    storage_not_ready_free_pct: int = key(10, not_above="storage_warn_free_pct")
    battery_reading_required: bool = key(
        False,
        """
        true: a camera whose charge is unknown (its model reports none - battery source "none" -
        or the reading failed) is not ready. false: a model without a battery source is said to
        have none (info), and a failed reading is a warning.
        """,
    )
    readiness_recheck_s: int = key(
        60,
        """
        While a camera stays docked its readiness is judged again this often (seconds): its
        battery log re-read (only what the camera appended, a bounded read) and its storage; the
        verdict is final once it is undocked.
        """,
        low=1,
    )


@dataclass(frozen=True)
class ComplianceConfig:
    late_after_h: int = key(
        24,
        """
        `dockagent report compliance`. A recording ingested more than late_after_h hours after it
        ended (camera time corrected by the measured drift) is late.
        """,
        low=1,
    )
    segment_gap_s: int = key(
        3,
        """
        Consecutive segments (NNNN, NNNN+1 in one day directory, same kind) further apart than
        segment_gap_s and at most segment_window_s seconds are listed as a gap to explain.
        """,
        not_above="segment_window_s",
    )
    segment_window_s: int = key(300)
