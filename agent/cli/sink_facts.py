"""The facts `dockagent doctor` gathers about the sink: where a directory sink lies against
staging, and what a tus server offers (OPTIONS) and has shown (past confirmations).

Only looks: it uploads nothing and changes no row. The verdicts are agent.health.server's.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from agent.core.config import Config
from agent.core.errors import UploadRefused, UploadRetryable, UploadTlsFailed
from agent.health import server
from agent.health.station import Finding
from agent.store import Store

# The server check waits at most this long, whatever the upload timeouts say.
SERVER_TIMEOUT_S = 10


def check(cfg: Config, store: Store | None) -> Finding:
    """The sink's finding: the directory sink's place, or the tus server's answers."""
    if cfg.sync.kind == "directory":
        root = cfg.archive_path
        # The file system each would be on: that of its nearest existing directory.
        shares = (
            os.stat(nearest_existing(root)).st_dev
            == os.stat(nearest_existing(cfg.staging_path)).st_dev
        )
        return server.directory_sink(
            server.DirectorySink(
                root=root,
                configured=bool(cfg.sync.directory_root),
                is_dir=root.is_dir(),
                writable=os.access(root, os.W_OK),
                shares_staging=shares,
                wipe_policy=cfg.ingest.wipe_policy.value,
                staging=cfg.staging_path,
            )
        )
    probe = _tus_probe(cfg)
    if probe.failure is None and store is not None:
        probe = _tus_history(probe, store)
    return server.tus_server(probe)


def nearest_existing(path: Path) -> Path:
    """The path itself, or its nearest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _tus_history(probe: server.TusProbe, store: Store) -> server.TusProbe:
    """What past uploads showed of the server's confirmations (tus sink_refs are URLs)."""
    held = store.unconfirmable_holds()
    return dataclasses.replace(
        probe,
        verified_seen=store.tus_verified_count(),
        unconfirmable=len(held),
        unconfirmable_reason=held[-1].reason if held else "",
    )


def _tus_probe(cfg: Config) -> server.TusProbe:
    """Ask the tus server what it offers (OPTIONS), with short timeouts."""
    from agent.sync.tus_sink import TusSink  # noqa: PLC0415 - requests only when a server is set

    sync = dataclasses.replace(
        cfg.sync,
        connect_timeout_s=min(cfg.sync.connect_timeout_s, SERVER_TIMEOUT_S),
        read_timeout_s=min(cfg.sync.read_timeout_s, SERVER_TIMEOUT_S),
    )
    probe = server.TusProbe(endpoint=sync.endpoint, confirm_level=sync.confirm_level)
    sink = TusSink(sync)
    try:
        caps = sink.client.capabilities()
    except UploadTlsFailed as exc:
        return dataclasses.replace(probe, failure="tls", message=exc.message)
    except UploadRetryable as exc:
        return dataclasses.replace(probe, failure="unreachable", message=exc.message)
    except UploadRefused as exc:
        return dataclasses.replace(probe, failure="refused", message=exc.message)
    finally:
        sink.close()
    return dataclasses.replace(
        probe, extensions=caps.extensions, checksums=caps.checksum_algorithms
    )
