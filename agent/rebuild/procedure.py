"""The order of `dockagent rebuild`'s steps, chosen so that a kill at any moment leaves a state
the next `dockagent rebuild` completes.

Until the rebuilt database is renamed over the damaged one, the damaged one stays in use and
only gains kept names (agent.rebuild.damaged); the new one is built whole under a temporary
name, with its `store.rebuilt` record, and nothing written to staging describes it before it is
in place (agent.custody.recovery writes its sidecars afterwards, and a second rebuild runs that
step).
The caller holds the writer lock. Verifying, deriving and writing rows are the pieces' jobs, not
this module's.
"""

from __future__ import annotations

import re

from agent.core import crashpoints, log
from agent.core.config import Config
from agent.core.config.station import destinations, held_sinks
from agent.core.errors import EX_DATAERR, AgentError, ErrorKind, StoreTooNew, UsageError, classify
from agent.custody import audit, chainfiles, integrity, recovery
from agent.custody.keys import StationKey
from agent.custody.seal import Sealer
from agent.rebuild import chain, damaged, rows, tables, unsealed
from agent.rebuild.report import RebuildReport
from agent.store import DatabaseError, RecordRow, Store, salvage_records

_log = log.get(__name__)


def diagnose(cfg: Config, key: StationKey, *, force: bool = False) -> str | None:
    """Why the database cannot be used, or None when it opens and its checks pass.

    Raises what is not damage: a database busy in another process, or (unless forced) one
    written by a newer dockagent, which an upgrade opens and a rebuild would strip.
    """
    try:
        store = integrity.open_store(
            cfg.data_path, cfg.staging_path, create=False, key=key, whole=True
        )
    except StoreTooNew as exc:
        if not force:
            raise
        return exc.message
    except AgentError as exc:
        if exc.exit_code != EX_DATAERR:
            raise
        return exc.message
    except DatabaseError as exc:  # damage met after the open's own checks
        if classify(exc) is ErrorKind.RETRYABLE:
            raise
        return str(exc)
    try:
        recovery.check_not_behind(store, cfg.staging_path)
    except AgentError as exc:
        return exc.message
    finally:
        store.close()
    return None


def rebuild(cfg: Config, key: StationKey, now: str, *, force: bool = False) -> RebuildReport:
    damage = diagnose(cfg, key, force=force)
    if damage is None and not force:
        # Also what finishes a rebuild killed after its database took the place (its sidecars
        # and the chain head are written by recovery, as every writing command does). A
        # station that has taken nothing in has no database for recovery, and needs none.
        if not integrity.nothing_yet(cfg.data_path, cfg.staging_path):
            _recover(cfg, key, now)
        raise UsageError(
            problem="the database opens and the head of its chain verifies: nothing to rebuild "
            "(`dockagent verify` checks everything; `dockagent rebuild --force` rebuilds anyway)"
        )
    report = RebuildReport(damage=damage or "rebuilt on request (--force)")
    staging, db = cfg.staging_path, cfg.db_path
    kept = damaged.keep(db, re.sub(r"[^0-9T]", "", now[:19]) + "Z")
    report.moved_aside = list(kept.names)
    crashpoints.hit("rebuild.kept")
    found = chain.gather(staging, _salvage(kept), key, report)
    chain.check_links(found, staging, report)
    rule = rows.SinkRule(held_sinks(cfg), tuple(d.name for d in destinations(cfg) if d.name))
    restored = rows.file_rows(found, staging, now, report, rule)
    aside = unsealed.plan(staging, {r.staged_path for r in restored.files}, found, report)

    store = Store.create_replacement(cfg.data_path)
    try:
        with store.transaction():
            tables.fill(store, found, restored, now, report)
            audit.record_action(
                store,
                key,
                cfg.station_id,
                "store.rebuilt",
                report.audit_details(),
                now,
                write_files=False,
            )
        crashpoints.hit("rebuild.built")
        unsealed.move(aside, cfg.data_path / f"unsealed-{kept.stamp}")
        crashpoints.hit("rebuild.set_aside")
        damaged.let_go(db, kept)
        report.moved_aside = list(kept.names)
        store.replace_live()
    finally:
        store.close()
    crashpoints.hit("rebuild.replaced")
    _recover(cfg, key, now, head_from_chain=True)
    _log.info(
        "store.rebuilt",
        records=report.records,
        files=report.files,
        sessions=report.sessions,
        problems=len(report.problems),
    )
    return report


def _salvage(kept: damaged.Kept) -> list[RecordRow]:
    """The records the damaged database still holds, read from its kept names."""
    db = kept.base
    if not db.exists() or db.stat().st_size == 0:
        return []
    salvaged, stopped = salvage_records(db, db.parent)
    if stopped:
        _log.warning("store.salvage_stopped", reason=stopped, records=len(salvaged))
    return salvaged


def _recover(cfg: Config, key: StationKey, now: str, *, head_from_chain: bool = False) -> None:
    """Recovery on the database in place: the sidecars of salvaged and audit records, the
    chain head. head_from_chain: the rebuilt chain's head is recorded even when it is lower
    than the one staging recorded (a lost tail is named among the problems, not hidden)."""
    store = Store.open(cfg.data_path, create=False)
    try:
        recovery.recover(
            store, Sealer(store, key, cfg.station_id, cfg.staging_path), cfg.staging_path, now
        )
        head = store.chain_head()
        if head_from_chain and head is not None:
            chainfiles.write_head(cfg.staging_path, chainfiles.Head(*head))
    finally:
        store.close()
