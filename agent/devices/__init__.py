"""Device sources: where docked cameras come from, all speaking the same three events.

A source (udev, mountwatch, fake) turns its foreign world into DeviceEvents and puts them on
a queue: `present` for what was already there at start, `inserted`, `removed`. Sources decide
nothing about whether a device is allowed (agent.ingest.policy does) and never read a camera.
"""
