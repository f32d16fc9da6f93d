"""The ground floor: what every other package may import, and which imports nothing of theirs.

- `errors`: the one error hierarchy, exit codes, and `classify` (retryable or permanent).
- `model`: frozen records passed between stages, the file state machine, custody state groups.
- `config`: the station's configuration, every key declared once.
- `durable`: the one way evidence and sidecars reach the disk (temp file, fsync, link, dir fsync).
- `log`: structlog set-up (JSON for the journal, readable on a terminal).
- `wallclock`: the station's clocks: the wall clock records keep, and clocks a step cannot move.
- `operator`: who is acting (for the signed audit trail).
- `crashpoints`: named kill points for the fault tests, inert unless a test arms them.
- `testhooks`: the test hooks read once from the environment, in effect only when armed and
  refused under systemd and the technician's wrapper.

Nothing here touches a camera, the store or the network.
"""
