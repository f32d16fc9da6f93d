"""Fitness of a camera for the next shift (clock drift, battery, readiness, SYSTEM.LOG), and of
the station itself (the doctor's rules).

The camera submodules are pure analysis (clock, battery, logs, readiness) plus `dock`, which runs
them for one dock session and records the results. Nothing here may abort an offload: a garbled
log or a failed check is data on the session's rows, never an exception to the pipeline.
`station` and `installation` are the station's health checks as pure functions: facts in,
findings (green/yellow/red with the fix) out; `dockagent doctor` gathers the facts.
"""
