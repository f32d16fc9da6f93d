"""Fitness of a camera for the next shift: clock drift, battery, readiness, SYSTEM.LOG.

The submodules are pure analysis (clock, battery, logs, readiness) plus `dock`, which runs them
for one dock session and records the results. Nothing here may abort an offload: a garbled log
or a failed check is data on the session's rows, never an exception to the pipeline.
"""
