"""The header a spreadsheet shows above each CSV column of the ledger and the compliance report.

Every column of sessions.SESSION_COLUMNS, sessions.FAULT_COLUMNS, compliance.FINDING_COLUMNS
and compliance.FILE_COLUMNS is marked here for the catalogue (context "CSV column"); its msgid
is the column's key, which is what an English header shows (scripts read those), and the
station's language gives the rest (agent/locale). Names columns; translates nothing itself.
"""

from __future__ import annotations

from agent.core.i18n import NP_

CONTEXT = "CSV column"

MARKED = frozenset(
    {
        NP_("CSV column", "session_id"),
        NP_("CSV column", "camera"),
        NP_("CSV column", "officer"),
        NP_("CSV column", "officer_name"),
        NP_("CSV column", "unit_id"),
        NP_("CSV column", "unit_name"),
        NP_("CSV column", "officer_source"),
        NP_("CSV column", "officer_on_camera"),
        NP_("CSV column", "officer_mismatch"),
        NP_("CSV column", "handovers_since_last_dock"),
        NP_("CSV column", "docked_at_utc"),
        NP_("CSV column", "undocked_at_utc"),
        NP_("CSV column", "station_clock"),
        NP_("CSV column", "outcome"),
        NP_("CSV column", "files_found"),
        NP_("CSV column", "files_sealed"),
        NP_("CSV column", "bytes_copied"),
        NP_("CSV column", "hours_recorded"),
        NP_("CSV column", "first_recording_corrected"),
        NP_("CSV column", "last_recording_corrected"),
        NP_("CSV column", "first_recording_camera_clock"),
        NP_("CSV column", "last_recording_camera_clock"),
        NP_("CSV column", "clock_drift_s"),
        NP_("CSV column", "time_basis"),
        NP_("CSV column", "clock_correction"),
        NP_("CSV column", "correction_check"),
        NP_("CSV column", "drift_trend"),
        NP_("CSV column", "drift_flagged"),
        NP_("CSV column", "battery_verdict"),
        NP_("CSV column", "battery"),
        NP_("CSV column", "storage_free_bytes"),
        NP_("CSV column", "readiness"),
        NP_("CSV column", "readiness_reasons"),
        NP_("CSV column", "faults"),
        NP_("CSV column", "fault_details"),
        NP_("CSV column", "wipe"),
        NP_("CSV column", "at"),
        NP_("CSV column", "device_serial"),
        NP_("CSV column", "source"),
        NP_("CSV column", "code"),
        NP_("CSV column", "severity"),
        NP_("CSV column", "detail"),
        NP_("CSV column", "finding"),
        NP_("CSV column", "file_id"),
        NP_("CSV column", "file"),
        NP_("CSV column", "camera_time"),
        NP_("CSV column", "corrected_time"),
        NP_("CSV column", "ingested_at_utc"),
        NP_("CSV column", "hours_to_ingest"),
        NP_("CSV column", "retention_class"),
        NP_("CSV column", "explanation"),
        NP_("CSV column", "kind"),
        NP_("CSV column", "important"),
        NP_("CSV column", "late"),
        NP_("CSV column", "state"),
    }
)
