"""Carrying the chain's RFC 3161 time-stamp tokens to every sink, with the records.

Each token the station keeps (agent.sync.stamping notes it in the store the moment it is kept)
waits for every configured sink: each sink is sent it once, whole, with what it covers (the
chain head's seq and hash, records 1..seq), and the token waits for that sink until the sink
acknowledged every byte (`delivered`, with where it holds it); a failure that may pass leaves it
waiting for the next pass, one that cannot (other bytes under its name, a refusal) holds it for
that sink with the reason. A sink configured after a token was kept is owed it too, and a
station whose tokens were kept before their delivery existed has them noted once, from their
files. Sinks are handed in (agent.sync.pool makes them); nothing here decides when a pass runs,
signs anything or changes a custody record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agent.core import log
from agent.core.config import Config
from agent.core.config.station import destinations, sink_of
from agent.core.errors import ErrorKind, classify, describe
from agent.core.wallclock import utc_now
from agent.custody import tsa
from agent.custody.records import envelope
from agent.store import Store, TokenRow
from agent.sync.jobs import TokenJob
from agent.sync.sink import Sink

_log = log.get(__name__)
# Tokens sent to one sink per pass: one a dock session or an hour, so a pass clears a long
# absence in a few rounds without holding the upload loop.
TOKENS_PER_PASS = 64


def sink_names(cfg: Config) -> tuple[str, ...]:
    """The names tokens are owed under: each of several sinks' own ([[sync.sinks]]), else the
    one sink's kind and destination (another destination is another sink, owed every token)."""
    if cfg.sync.sinks:
        return tuple(d.name for d in destinations(cfg))
    identity = sink_of(cfg)
    return (f"{identity.kind}:{identity.endpoint}",)


def adopt_kept(store: Store, staging_root: Path, names: Iterable[str]) -> int:
    """Tokens kept before they were noted for delivery (a station from before it, a rebuilt
    database), noted once from their files; and every noted token owed to each named sink
    that has no row of it. How many tokens were noted."""
    names = tuple(names)
    noted = store.noted_token_seqs()
    now = utc_now()
    adopted = 0
    for seq, path in tsa.tokens(staging_root):
        record = store.record(seq)
        if seq in noted or record is None or not isinstance(record.record_hash, str):
            continue  # a token naming no record of this chain: `verify` names it
        try:
            at = tsa.token_time(tsa.read_token(path))
        except (OSError, ValueError):
            at = ""
        store.note_token(seq, record.record_hash, at, names, now)
        adopted += 1
    store.tokens_for_new_sinks(names, now)
    return adopted


@dataclass
class Delivered:
    """One pass, per sink name: tokens acknowledged, and the reason of the last failure."""

    delivered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def deliver(
    store: Store,
    cfg: Config,
    sinks: Iterable[tuple[str, Sink]],
    stop: threading.Event | None = None,
) -> Delivered:
    """Send each named sink the tokens it waits for, oldest first. A sink whose send fails in a
    way that may pass is left for the next pass (its other tokens too: it is away)."""
    result = Delivered()
    for name, sink in sinks:
        for row in store.tokens_waiting(name, TOKENS_PER_PASS):
            if stop is not None and stop.is_set():
                return result
            if not _send(store, cfg, name, sink, row, result):
                break
    return result


def _send(
    store: Store, cfg: Config, name: str, sink: Sink, row: TokenRow, result: Delivered
) -> bool:
    """One token to one sink; False when the sink failed in a way that may pass."""
    log_ = _log.bind(seq=row.seq, sink=name)
    try:
        job = _job(store, cfg, row)
        ref = sink.send_token(job)
    except Exception as exc:  # every failure becomes the token's state for this sink
        # A sink's disk or network away passes; other bytes under the token's name, a token no
        # longer kept or a refusal do not.
        retryable = isinstance(exc, OSError) or classify(exc) is ErrorKind.RETRYABLE
        reason = describe(exc)
        store.record_token_sink(
            row.seq, name, "waiting" if retryable else "held", utc_now(), reason=reason
        )
        log_.warning(
            "tsa.token_send_failed",
            error_kind="retryable" if retryable else "permanent",
            reason=reason,
        )
        result.failed[name] = reason
        return not retryable
    store.record_token_sink(row.seq, name, "delivered", utc_now(), ref=ref)
    log_.info("tsa.token_delivered", ref=ref)
    result.delivered[name] = result.delivered.get(name, 0) + 1
    return True


def _job(store: Store, cfg: Config, row: TokenRow) -> TokenJob:
    """The token's bytes as kept, and the head record it stamps. A token file that is gone or
    a record the chain does not hold is no token this station can vouch for: ValueError,
    which holds it for the sink with the reason."""
    path = tsa.token_dir(cfg.staging_path) / tsa.token_name(row.seq)
    try:
        token = tsa.read_token(path)
    except FileNotFoundError:
        raise ValueError(f"token {path} is no longer kept") from None
    record = store.record(row.seq)
    if record is None or record.record_hash != row.record_hash:
        raise ValueError(f"record {row.seq}, which token {path.name} stamps, is not the chain's")
    return TokenJob(
        seq=row.seq,
        first_new=row.first_new,
        record_hash=row.record_hash,
        stamped_at=row.stamped_at,
        station_id=cfg.station_id,
        token=token,
        head=envelope(record),
    )
