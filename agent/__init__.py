"""dockagent: takes body-worn-camera evidence into sealed custody on a collection station.

The package holds the daemon, the technician CLI and the pieces they share, in rooms whose
imports point down this list (the `[tool.importlinter]` contracts of pyproject.toml):

- `cli`: the `dockagent` command, one module per command group.
- `runtime`: the daemon and what keeps it running unattended under systemd.
- `reporting`, `rebuild`: the ledger and metrics; a new database from the signed sidecars.
- `sync`: sealed evidence to a sink, confirmed before anything is freed.
- `ingest`: one dock session: list, copy + hash, seal, wipe where policy allows.
- `health`: a camera's fitness for the next shift (clock, battery, logs, readiness).
- `devices`: where docked cameras come from (udev, mountwatch, fake) and their mounts.
- `camera`: the camera as a volume: profiles, safe reads, DEVICE.INF, the scan.
- `custody`: what makes held evidence provable: key, seal, chain, verify, recovery.
- `store`: the only package that speaks SQL.
- `core`: errors, records, config, logging, clocks, durable writes; imports nothing above.

Nothing here shows or serves recording content; only metadata, hashes and health leave the
store. The camera simulator is test tooling (scripts/simulator) and never imported here.
"""

__version__ = "0.1.0"
