"""Cheap checks, at every open, that the database still holds what the station committed.

Store.open already refuses a file that is not a database or is shorter than its header says, an
empty or missing one where a store existed, and one of another data directory; PRAGMA
quick_check, whose cost grows with the database, only where `whole` asks for it (`rebuild`, a
full `verify`; the daemon reads it after it is ready, agent.runtime.store_check). Here, before any
command uses it: a missing database is not replaced by a fresh one when staging holds a chain;
the chain's head recorded beside staging must be in the database (else committed records were
lost: an old copy, a copy without its -wal); and the newest records must pass the one check of
a record (agent.custody.records.record_problems: hash, link and, where the key is at hand,
signature). Open stays cheap: the whole chain is `dockagent verify`'s job. Nothing here repairs
anything; every finding is an error naming `dockagent rebuild`. A station that has taken
nothing in yet (no database, no marker, nothing in staging) is not damaged: readers are shown
an empty store, and the data directory is left as it is for the first writer.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

from agent.core import log
from agent.core.errors import ChainDamaged, StoreBehind, StoreMissing
from agent.custody import chainfiles, keys
from agent.custody.keys import Verifier
from agent.custody.records import FIRST, link_after, record_problems
from agent.store import Store

_log = log.get(__name__)

# Records checked at open: enough to catch damage where the agent is writing, and a few
# milliseconds however long the chain is.
HEAD_RECORDS = 16


def open_store(
    data_dir: Path,
    staging_root: Path,
    *,
    create: bool,
    key: Verifier | None,
    whole: bool = False,
) -> Store:
    """Store.open, then the checks of this module (and with `whole`, Store.check_whole); the
    store is closed again if one fails."""
    db = data_dir / "dockagent.db"
    if not create and nothing_yet(data_dir, staging_root):
        return _empty_store()
    head = _outside_head(staging_root)
    lost = not db.exists() or db.stat().st_size == 0
    if head is not None and lost and not (data_dir / Store.MARKER).exists():
        raise StoreMissing(
            path=str(db),
            detail="empty" if db.exists() else "missing",
            marker=f"missing, and staging holds custody records up to {head.seq}",
        )
    store = Store.open(data_dir, create=create)
    try:
        if whole:
            store.check_whole()
        check_head(store, head, key)
    except BaseException:
        store.close()
        raise
    return store


def open_unchecked(data_dir: Path, staging_root: Path, *, whole: bool = True) -> Store:
    """The store for `dockagent verify`, which checks everything itself: as it is, or empty on a
    station that has taken nothing in yet. With `whole` (a full verify) every page is read
    first; an incremental verify leaves that to the full one and the daemon's daily check, as
    it costs a second per 300 MB of database."""
    if nothing_yet(data_dir, staging_root):
        return _empty_store()
    store = Store.open(data_dir, create=False)
    try:
        if whole:
            store.check_whole()
    except BaseException:
        store.close()
        raise
    return store


def nothing_yet(data_dir: Path, staging_root: Path) -> bool:
    """True on a station that never held a database: none, no marker naming one, and nothing in
    staging (a lost database leaves its marker, or evidence and sidecars in staging)."""
    db = data_dir / "dockagent.db"
    if (db.exists() and db.stat().st_size > 0) or (data_dir / Store.MARKER).exists():
        return False
    try:
        return not any(staging_root.iterdir())
    except FileNotFoundError:
        return True
    except PermissionError:
        return False  # a reader of the group may not list staging: there is something there


def _empty_store() -> Store:
    """An empty store in a scratch directory, removed with it: what a station that has taken
    nothing in holds, without creating its database on a reader's behalf (the first writer, the
    daemon or a technician command, does that under the writer's rules)."""
    scratch = Path(tempfile.mkdtemp(prefix="dockagent-empty-"))
    store = Store.open(scratch, create=True)
    weakref.finalize(store, shutil.rmtree, scratch, ignore_errors=True)
    return store


def station_key(path: Path) -> Verifier | None:
    """The station's public key for checking signatures at open, if it can be read (readers
    never create one, nor need the private key; a key problem is the doctor's and the writers'
    to report)."""
    return keys.load_verifier(path)


def _outside_head(staging_root: Path) -> chainfiles.Head | None:
    try:
        return chainfiles.read_head(staging_root)
    except ValueError as exc:
        _log.warning("chain.head_unreadable", reason=str(exc))
        return None


def check_head(store: Store, head: chainfiles.Head | None, key: Verifier | None) -> None:
    """Refuse a database behind the head recorded in staging, or whose newest records do not
    verify. `head` must be read before the database is asked (a record committed meanwhile
    then only makes the database newer, never falsely behind)."""
    db_head = store.chain_head()
    db_seq = db_head[0] if db_head else 0
    if head is not None:
        _check_outside_head(store, head, db_seq)
    _check_noted_head(store, db_seq)
    _check_newest_records(store, key)


def _check_outside_head(store: Store, head: chainfiles.Head, db_seq: int) -> None:
    """The head staging recorded must be in the database, as recorded."""
    if head.seq > db_seq:
        raise StoreBehind(
            path=str(store.path),
            detail=f"it ends at custody record {db_seq}, staging's chain head is record {head.seq}",
        )
    record = store.record(head.seq)
    if record is None or record.record_hash != head.record_hash:
        raise StoreBehind(
            path=str(store.path),
            detail=f"its custody record {head.seq} is not the one staging recorded",
        )


def _check_noted_head(store: Store, db_seq: int) -> None:
    """The head the database noted when it last appended must still be there."""
    noted = store.meta("chain_head_seq")
    if noted is not None and noted.isdigit() and int(noted) > db_seq:
        raise ChainDamaged(
            path=str(store.path), seq=int(noted), problem=f"the chain ended there, now at {db_seq}"
        )


def _check_newest_records(store: Store, key: Verifier | None) -> None:
    """The newest records, each by records.record_problems, linked one to the next (and the
    first of the chain to its start)."""
    recent = store.last_records(HEAD_RECORDS)
    expected = FIRST if recent and recent[0].seq == 1 else None
    for record in recent:
        problems = record_problems(record, key, expected=expected)
        if problems:
            raise ChainDamaged(path=str(store.path), seq=record.seq, problem=problems[0].detail)
        expected = link_after(record)
