"""The bay status screen: a read-only page for the station's own display (`dockagent screen`).

One tile per bay (camera, officer, what is happening, the readiness verdict), alarms across the
top. A process of its own, separate from the daemon, that opens the store read-only and writes
nothing anywhere; it shows no evidence content (no file names, no hashes) and no secret (no
key, no server address). Nothing the daemon does depends on it.
"""
