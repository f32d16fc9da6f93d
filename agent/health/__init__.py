"""Fitness of a camera for the next shift: clock drift, battery, readiness, SYSTEM.LOG.

The submodules are pure analysis (clock, battery, logs, readiness) plus `dock`, which runs them
for one dock session and records the results, with `faults` (what is registered against the
camera, and which of an import's problems are its) and `files` (corrected times and retention
class on each file before it is sealed). Nothing here may abort an offload: a garbled log
or a failed check is data on the session's rows, never an exception to the pipeline.
"""
