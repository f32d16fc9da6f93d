"""Taking a docked camera in: the dock session, copy + hash, and the wipe.

- `session`: one dock session end to end (identify, list, copy+hash, seal, health, wipe).
- `copying`: the session's copy loop, batch by batch: claim, copy+hash, publish, stage, seal.
- `offload`: one camera file copied into staging while it is hashed, in a single pass.
- `wipe`: recordings removed from the camera once they are held, one at a time.
- `policy`: the pure decisions shared by the daemon, the sync and the CLI (admit, wipe, purge).

Ingest never uploads; what leaves the station is the sync package's.
"""
