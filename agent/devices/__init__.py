"""Device sources: where docked cameras come from, all speaking the same three events.

A source (`udev`, `mountwatch`, `fake`) turns its foreign world into DeviceEvents (`events`)
and puts them on a queue: `present` for what was already there at start, `inserted`,
`removed`. Sources decide nothing about whether a device is allowed (agent.ingest.policy does)
and never read a camera. `mounts` finds or mounts an admitted camera's volume; `rules` writes
the udev rules that hand a docked camera to the mount unit. `scsi` sends SCSI commands (SG_IO)
and `dialects` speak a vendor's command set over it, for cameras that open only after vendor
commands (agent.runtime.unlock decides when).
"""
