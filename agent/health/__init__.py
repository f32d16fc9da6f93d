"""Fitness of a camera for the next shift (clock drift, battery, readiness, SYSTEM.LOG), and of
the station itself (the doctor's rules).

- `battery`, `readiness`: pure judgement of what was read (BATTERY.CSV; the verdict).
- `logs`: SYSTEM.LOG parsed, and the bounded tail read of a camera log.
- `clock`: drift and its correction; the kernel's clock state, and the one TIME.TXT write.
- `dock`: runs them for one dock session and records the results; `faults` (what is registered
  against the camera, and which of an import's problems are its, by kind) and `files` (corrected
  times and retention class on each file before it is sealed) are its parts.
- `station`, `installation`: the station's health checks as pure functions: facts in, findings
  (green/yellow/red with the fix) out; `dockagent doctor` gathers the facts.

Nothing here may abort an offload: a garbled log or a failed check is data on the session's
rows, never an exception to the pipeline.
"""
