"""When to ask the time-stamping authority for a token over the chain head, and asking it.

After each dock session, and while records are added at least every `[custody] tsa_interval_s`,
the newest record is stamped (agent.custody.tsa) through the station's HTTP adapter
(agent.sync.tus_client.post_timestamp_query); a reply is kept only once it verifies against the
trust anchor. A TSA that cannot be reached is asked again with a growing pause (30 s up to
10 min) until it answers: the records not yet covered wait, and `status` and `doctor` show them
(`gap`). A kept token is noted as owed to every sink (agent.sync.token_delivery carries it).
The daemon runs `Stamper.tick` from a thread of its own; when nothing is uncovered a tick is
one indexed query and one meta read. It signs nothing and changes no custody record.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.core import log
from agent.core.config import Config
from agent.core.errors import AgentError, TsaFailed, describe
from agent.core.wallclock import utc_now
from agent.custody import tsa
from agent.store import Store
from agent.sync import token_delivery

_log = log.get(__name__)
_FIRST_PAUSE_S = 30.0
_LONGEST_PAUSE_S = 600.0
_TICK_S = 5.0


@dataclass(frozen=True)
class Gap:
    """Records the kept tokens do not cover yet: `first`..`last`, the first committed `since`."""

    covered: int
    covered_at: str
    first: int
    last: int
    since: str


def covered(store: Store, staging_root: Path) -> tuple[int, str]:
    """The newest record a kept token covers, and the TSA's time for it. Read from the store's
    meta; a store without it (a rebuilt one) learns it from the kept tokens' names once."""
    noted = store.meta(tsa.COVERED_SEQ)
    if noted is not None and noted.isdigit():
        return int(noted), store.meta(tsa.COVERED_AT) or ""
    return tsa.newest_token_seq(staging_root), ""


def gap(store: Store, staging_root: Path) -> Gap | None:
    """The records no token covers yet, None when every record is covered."""
    head = store.chain_head()
    seq, at = covered(store, staging_root)
    if head is None or head[0] <= seq:
        return None
    return Gap(seq, at, seq + 1, head[0], store.record_created_at(seq + 1) or "")


def state(cfg: Config, store: Store) -> dict[str, object]:
    """What `status` and `doctor` show of trusted time: off, or what the tokens cover and the
    records that wait for one (since when)."""
    if not cfg.custody.tsa_url:
        return {"enabled": False}
    seq, at = covered(store, cfg.staging_path)
    waiting = gap(store, cfg.staging_path)
    return {
        "enabled": True,
        "tsa_url": cfg.custody.tsa_url,
        "covered_upto": seq,
        "covered_at": at,
        "uncovered": None
        if waiting is None
        else {"first": waiting.first, "last": waiting.last, "since": waiting.since},
        # Tokens kept that a sink has not acknowledged yet, per sink (agent.sync.token_delivery).
        "undelivered": store.tokens_undelivered(),
    }


def describe_state(data: dict[str, object]) -> str:
    """The state for a person to read, one line."""
    if not data.get("enabled"):
        return "off ([custody] tsa_url is not set): no time-stamp token covers the chain"
    upto, at = data.get("covered_upto"), data.get("covered_at")
    covered_text = f"records 1-{upto} covered (token time {at or 'unknown'})" if upto else ""
    waiting = data.get("uncovered")
    if isinstance(waiting, dict):
        wait_text = (
            f"records {waiting['first']}-{waiting['last']} not yet covered by a token, "
            f"since {waiting['since'] or 'unknown'}"
        )
        covered_text = f"{covered_text}; {wait_text}" if covered_text else wait_text
    undelivered = data.get("undelivered")
    if isinstance(undelivered, dict) and undelivered:
        sinks = ", ".join(f"{name} {count}" for name, count in sorted(undelivered.items()))
        covered_text = f"{covered_text or 'no records yet'}; tokens not yet at {sinks}"
    return covered_text or "no records yet"


class Stamper:
    """Tokens for one station's chain; one instance per process that stamps."""

    def __init__(self, cfg: Config, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self.staging_root = cfg.staging_path
        self.url = cfg.custody.tsa_url
        self.last_success = time.monotonic()
        self.next_attempt = 0.0
        self.pause = _FIRST_PAUSE_S
        self.session_ended = False  # a dock session ended since the last token

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def stamp_head(self) -> int | None:
        """Ask for a token over the chain head if a record is not covered yet; the seq stamped
        (None: nothing to do). TsaFailed when the TSA cannot give a good one now."""
        head = self.store.chain_head()
        if head is None or head[0] <= covered(self.store, self.staging_root)[0]:
            return None
        record = self.store.record(head[0])
        if record is None:
            return None
        request = tsa.request_for(record)
        # requests only where a token is asked for: `status` and `doctor` read this module too.
        from agent.sync import tus_client  # noqa: PLC0415

        reply = tus_client.post_timestamp_query(
            self.url, request.as_bytes(), timeout_s=float(self.cfg.custody.tsa_timeout_s)
        )
        try:
            anchors = tsa.load_anchor(Path(self.cfg.custody.tsa_trust_anchor))
            at = tsa.check_token(reply, record.record_hash, anchors, nonce=request.nonce)
        except (OSError, ValueError) as exc:
            _log.warning("tsa.refused", seq=record.seq, reason=str(exc)[:300])
            raise TsaFailed(server=self.url, problem=f"reply refused: {exc}") from exc
        tsa.write_token(self.staging_root, record.seq, reply)
        with self.store.transaction():
            if record.seq > covered(self.store, self.staging_root)[0]:
                self.store.set_meta(tsa.COVERED_SEQ, str(record.seq))
                self.store.set_meta(tsa.COVERED_AT, at.isoformat())
            # Owed to every sink from now on (agent.sync.token_delivery carries it there).
            self.store.note_token(
                record.seq,
                record.record_hash,
                at.isoformat(),
                token_delivery.sink_names(self.cfg),
                utc_now(),
            )
        _log.info("tsa.stamped", seq=record.seq, at=at.isoformat())
        return record.seq

    def tick(self, now: float | None = None) -> int | None:
        """The daemon's idle step: stamp when a session ended or the interval passed and a
        record waits; after a failure, not before the pause is over. A TSA that fails is
        logged (`tsa.failed`) and paused for, never raised; the seq stamped, or None."""
        if not self.enabled:
            return None
        now = time.monotonic() if now is None else now
        due = self.session_ended or now - self.last_success >= self.cfg.custody.tsa_interval_s
        if not due or now < self.next_attempt:
            return None
        try:
            seq = self.stamp_head()
        except (AgentError, OSError) as exc:
            self.next_attempt = now + self.pause
            self.pause = min(self.pause * 2, _LONGEST_PAUSE_S)
            _log.warning("tsa.failed", reason=describe(exc), retry_in_s=self.next_attempt - now)
            return None
        self.session_ended, self.pause, self.next_attempt = False, _FIRST_PAUSE_S, 0.0
        if seq is not None:
            self.last_success = now
        return seq

    def serve(self, stop: threading.Event, wake: threading.Event) -> None:
        """The daemon's loop: a tick every few seconds, or at once when `wake` is set (a dock
        session ended)."""
        # Records left uncovered by an earlier run (the TSA was away) are asked for at start.
        self.session_ended = True
        while not stop.is_set():
            if wake.is_set():
                wake.clear()
                self.session_ended = True
            try:
                self.tick()
            except Exception as exc:  # the loop outlives one bad pass (e.g. a busy database)
                _log.exception("tsa.loop_failed", reason=describe(exc))
            wake.wait(_TICK_S)


def stamp_once(cfg: Config, store: Store) -> int | None:
    """One attempt at the end of a dock session outside the daemon (`dockagent import`); a
    failure is logged and left for the daemon's catch-up."""
    stamper = Stamper(cfg, store)
    if not stamper.enabled:
        return None
    try:
        return stamper.stamp_head()
    except (AgentError, OSError) as exc:
        _log.warning("tsa.failed", reason=describe(exc))
        return None
