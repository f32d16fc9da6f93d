"""Technician actions as signed audit records, in the same hash chain as the custody records.

One entry point, record_action(), for every technician action that changes state (enrol,
revoke, assign, retry, rebuild, any override): it names the operating-system user and the time,
and the chain makes a removed or edited entry detectable. Sealer.audit only signs; nothing but
record_action calls it. Details are metadata only: never evidence content, never key material.
Callers that change state do it in the same transaction as this call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.core import log
from agent.core.operator import current_operator
from agent.custody import staging
from agent.custody.keys import StationKey
from agent.custody.seal import Sealer
from agent.store import RecordRow, Store

_log = log.get(__name__)

_SCALARS = (str, int, bool, type(None))


def _checked(details: dict[str, Any]) -> dict[str, Any]:
    """Canonical JSON of a record allows strings, integers, booleans and null (seal.py)."""
    for key, value in details.items():
        if not isinstance(key, str):
            raise TypeError(f"audit detail key {key!r} is not a string")
        if isinstance(value, float) or not isinstance(value, _SCALARS):
            raise TypeError(f"audit detail {key} must be a string, integer, boolean or null")
    return dict(details)


def record_action(
    store: Store,
    key: StationKey,
    station_id: str,
    action: str,
    details: dict[str, Any],
    now: str,
    *,
    operator: str | None = None,
    write_files: bool = True,
) -> RecordRow:
    """Sign `action` (e.g. "device.assigned") with its details into the chain; returns the record.

    Joins the caller's transaction when there is one, so the state change and its audit
    record commit together or not at all. write_files: see Sealer.audit.
    """
    who = operator or current_operator()
    # The audit sidecar and the chain head go to staging (Config.staging_path), beside the store.
    sealer = Sealer(store, key, station_id, staging.staging_root(store.path.parent))
    record = sealer.sign_audit(action, _checked(details), who, now, write_files=write_files)
    _log.info("audit.recorded", action=action, operator=who, seq=record.seq)
    return record


def file_ids(ids: Iterable[int]) -> str:
    """The files an action touched, as one detail (details are scalars): ids in order, by commas."""
    return ",".join(str(i) for i in sorted(ids))


def audit_trail(store: Store) -> list[dict[str, Any]]:
    """Every audit record, oldest first: seq, action, operator, time and details."""
    return store.audit_records()
