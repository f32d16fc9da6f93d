"""The soak: hundreds of dock sessions with random faults, then "nothing lost" and flatness.

The real daemon (`dockagent run`) over the fake USB bus, a pool of simulated directory cameras
(a few serials, new recordings before every dock), uploading through a fault proxy to a real
@tus/server that restarts now and then. About one session in four carries a fault: SIGKILL of
the daemon and a restart, a tus server restart, an undock while copying, the station's wall
clock stepped by two days, a connection cut or a 5xx from the proxy. Then faults stop, every
camera docks once more until it is confirmed and wiped, the daemon stops cleanly, and the
independent checker (tests/support/nothing_lost.py) and `dockagent verify` judge the result.
Exit 0 only if nothing is lost and the daemon's memory, open files and threads stayed flat
(sampling.FLAT_RULE); 1 otherwise; 2 for bad arguments.

Run as `python -m tests.soak [--duration S] ...` from the checkout (scripts/soak prepares the
checkout and does that). It never runs in the default test suite: tests/e2e/test_soak_short.py
runs a 20-second version of it. The rooms, in the order a run uses them:

- `plan`: the run's settings, the fault mix, the shared dice and tally, its time limits;
- `station`: the station seen from outside (read-only SQLite), the fake USB bus, the
  restartable tus server, the daemon and its incarnations;
- `cameras`: one simulated camera that docks again and again with new recordings;
- `faults`: choosing and injecting each fault, and the tus server's scheduled restarts;
- `sampling`: the daemon's memory, open files and threads, sampled, and the flatness rule;
- `run`: the run loop (one thread per camera, its dock sessions), the last docks, the drain;
- `report`: the JSON report, samples.csv and the printed summary;
- `__main__`: the command line.

The soak drives the agent only from outside (processes, the bus's event files, the data
directory read-only); of the agent's code it imports only the fake bus's event writer, and
the wall-clock module to learn whether its test hook exists.
"""
