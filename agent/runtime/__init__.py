"""Running unattended: the daemon (the composition root) and what keeps it alive.

- `daemon`: `dockagent run`, which wires sources, supervisor, ingest and sync together.
- `dock`: one docked camera from admission to removal (its sessions by id, where it is mounted).
- `supervisor`: one worker thread per docked camera, capped, drained on stop.
- `liveness`: whether the daemon is getting work done (what the watchdog acts on).
- `service`: readiness, status and watchdog pings to systemd, and the metrics file.
- `notify`: sd_notify(3) datagrams.
- `lock`: the single-writer lock of a data directory.
"""
