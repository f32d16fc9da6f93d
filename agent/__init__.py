"""dockagent: takes body-worn-camera evidence into sealed custody on a collection station.

The package holds the daemon, the technician CLI and the pieces they share. Nothing here
shows or serves recording content; only metadata, hashes and health leave the store.
"""

__version__ = "0.1.0"
