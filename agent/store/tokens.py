"""Which RFC 3161 time-stamp tokens each sink has been given (migration 0019).

A kept token (agent.custody.tsa keeps its bytes beside the chain) is noted here by the record it
stamps, with that record's hash and the first record no earlier token covered; each sink then
has a row per token: `waiting` until it acknowledged the token, `delivered` (with where it
holds it) or `held` (with the reason: it will never take it as it is). No policy, no file I/O,
no clock but the times written down.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from agent.store.base import StoreBase

TOKEN_STATES = ("waiting", "delivered", "held")


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A kept token: records 1..seq are what it covers, first_new..seq are the ones no
    earlier token did; record_hash is its imprint."""

    seq: int
    record_hash: str
    first_new: int
    stamped_at: str


class TokenQueries(StoreBase):
    def note_token(
        self,
        seq: int,
        record_hash: str,
        stamped_at: str,
        sinks: Iterable[str],
        now: str,
    ) -> None:
        """A token kept over record `seq`, waiting for every sink named (the caller's
        transaction, where it has one). Noting one again changes nothing."""
        with self.transaction():
            before = self.conn.execute(
                "SELECT MAX(seq) FROM tsa_tokens WHERE seq < ?", (seq,)
            ).fetchone()[0]
            self.conn.execute(
                "INSERT OR IGNORE INTO tsa_tokens(seq, record_hash, first_new, stamped_at, "
                "kept_at) VALUES (?, ?, ?, ?, ?)",
                (seq, record_hash, int(before or 0) + 1, stamped_at, now),
            )
            self.conn.executemany(
                "INSERT OR IGNORE INTO token_sinks(seq, sink, state, updated_at) "
                "VALUES (?, ?, 'waiting', ?)",
                [(seq, sink, now) for sink in sinks],
            )

    def noted_token_seqs(self) -> set[int]:
        return {int(r[0]) for r in self.conn.execute("SELECT seq FROM tsa_tokens")}

    def tokens_for_new_sinks(self, sinks: Iterable[str], now: str) -> int:
        """Every noted token waits for each of these sinks that has no row of it yet (a sink
        configured after the token was kept); how many rows that added."""
        added = 0
        with self.transaction():
            for sink in sinks:
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO token_sinks(seq, sink, state, updated_at) "
                    "SELECT seq, ?, 'waiting', ? FROM tsa_tokens",
                    (sink, now),
                )
                added += max(cur.rowcount, 0)
        return added

    def tokens_waiting(self, sink: str, limit: int) -> list[TokenRow]:
        """The tokens `sink` has not acknowledged yet, oldest first (by the partial index)."""
        return [
            TokenRow(int(r[0]), str(r[1]), int(r[2]), str(r[3]))
            for r in self._read_tokens(
                "SELECT t.seq, t.record_hash, t.first_new, t.stamped_at FROM token_sinks d "
                "JOIN tsa_tokens t ON t.seq = d.seq WHERE d.sink=? AND d.state='waiting' "
                "ORDER BY d.seq LIMIT ?",
                (sink, limit),
            )
        ]

    def record_token_sink(
        self, seq: int, sink: str, state: str, now: str, *, ref: str = "", reason: str = ""
    ) -> None:
        """One delivery attempt's outcome for one sink."""
        if state not in TOKEN_STATES:
            raise ValueError(f"unknown token state {state!r}")
        with self.transaction():
            self.conn.execute(
                "INSERT INTO token_sinks(seq, sink, state, ref, reason, attempts, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT(seq, sink) DO UPDATE SET "
                "state=excluded.state, ref=excluded.ref, reason=excluded.reason, "
                "attempts=attempts+1, updated_at=excluded.updated_at",
                (seq, sink, state, ref, reason, now),
            )

    def tokens_undelivered(self) -> dict[str, int]:
        """Per sink, how many tokens wait for it (by the partial index: no history read)."""
        return {
            str(r[0]): int(r[1])
            for r in self._read_tokens(
                "SELECT sink, COUNT(*) FROM token_sinks WHERE state='waiting' GROUP BY sink", ()
            )
        }

    def token_deliveries(self) -> dict[str, dict[str, int]]:
        """Per sink, how many tokens wait for it and how many it holds (or refused)."""
        counts: dict[str, dict[str, int]] = {}
        for r in self._read_tokens(
            "SELECT sink, state, COUNT(*) FROM token_sinks GROUP BY sink, state", ()
        ):
            counts.setdefault(str(r[0]), {})[str(r[1])] = int(r[2])
        return counts

    def _read_tokens(self, sql: str, args: tuple[object, ...]) -> list[sqlite3.Row]:
        """A view's rows; none from a database that a reader opened before migration 0019."""
        try:
            return list(self.conn.execute(sql, args))
        except sqlite3.OperationalError as exc:
            if "no such table: tsa_tokens" in str(exc) or "no such table: token_sinks" in str(exc):
                return []
            raise
