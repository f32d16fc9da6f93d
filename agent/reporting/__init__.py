"""What supervisors and monitoring read: the ledger (台账), compliance, metrics.

- `sessions`: the sessions ledger, one row per dock session, and the fault register.
- `handovers`: which officer holds which camera; `assign`, the one write (audited).
- `compliance`: the 24-hour import rule, segment gaps and interruptions, per officer.
- `history`: one camera's docks, drift and battery trends, handovers and faults.
- `readiness`: each camera's readiness verdict at its last dock.
- `exports`: CSV a spreadsheet opens safely (formula-like cells quoted).
- `times`: the station's UTC text, `--since`, hours.
- `metrics`: the store's numbers as a Prometheus text file.

Reporting only reads the store (and signs the audit record of a handover); it changes no
custody, and renders no text for a terminal: agent.cli does that.
"""
