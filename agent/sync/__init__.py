"""Sync: sealed evidence to a sink (tus server or directory), confirmed before anything is freed.

The package's map, one module per job, in the order a file goes through them:

- `pool`        the upload workers: claim sealed rows from the store's queue, hand each to the
                sink, finish the row with one transition (confirmed, deferred, held); the
                daemon's loop. Named `pool`, not `queue`: the queue is the store's rows, this
                is what drains them (and `queue` is a standard-library name).
- `windows`     the station-local times of day when uploads may run.
- `throttle`    the bandwidth cap shared by all workers (a token bucket, monotonic clock).
- `jobs`        what one upload is: the job and its metadata, built from a row and its record.
- `sink`        what a sink is: the Sink and Progress protocols, the Confirmation and the
                ordered confirmation levels.
- `tus_sink`    the tus sink: one file through the upload state machine, in small steps.
- `tus_client`  the tus 1.0.0 HTTP client: the only importer of requests; every answer and
                transport failure becomes an agent error there, once.
- `directory`   the directory sink (a NAS or a local evidence disk).
- `schedule`    retry timing: short waits within an attempt, backoffs between attempts, and
                when each deferred file is due, on the monotonic clock.
- `receipts`    upload receipts beside the staged file, so a rebuilt database never uploads twice.
- `purge`       the staged copies of confirmed files, removed once their grace has passed.

The pool imports the sinks, never the other way round; nothing here but the tus client imports
requests (the directory sink does not load it); whether a failure is worth retrying is
agent.core.errors.classify's decision everywhere in this package.
"""
