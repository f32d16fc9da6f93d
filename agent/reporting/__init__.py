"""What supervisors and monitoring read: the ledger (台账), compliance, metrics.

- `ledger`: dock sessions, handovers, faults, the 24-hour rule.
- `metrics`: the store's numbers as a Prometheus text file.

Reporting only reads the store (and signs the audit record of an export); it changes no custody.
"""
