"""Session rows out of the store: typed, asked for by name, outcomes as SessionOutcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.core.model import SessionOutcome
from agent.store import SessionRow, Store


def _open(store: Store, serial: str, docked_at: str, **more: object) -> int:
    return store.open_session(
        {"device_serial": serial, "source": "/cam", "docked_at": docked_at, **more}
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path, create=True)


def test_a_session_comes_back_with_its_columns_and_outcome(store: Store) -> None:
    sid = _open(store, "CAM1", "2024-03-10T20:00:00.000+00:00", officer_id="100001")
    row = store.session(sid)
    assert isinstance(row, SessionRow)
    assert (row.id, row.device_serial, row.officer_id, row.outcome) == (
        sid,
        "CAM1",
        "100001",
        SessionOutcome.RUNNING,
    )
    assert row.ended_at is None and row.undocked_at is None and row.files_found == 0
    store.update_session(sid, {"outcome": SessionOutcome.COMPLETE, "files_sealed": 3})
    again = store.session(sid)
    assert again.outcome is SessionOutcome.COMPLETE and again.files_sealed == 3


def test_an_outcome_this_version_does_not_know_is_shown_as_the_row_says(store: Store) -> None:
    sid = _open(store, "CAM1", "t")
    store.conn.execute("UPDATE sessions SET outcome='removed' WHERE id=?", (sid,))
    outcome = store.session(sid).outcome
    assert outcome == "removed" and str(outcome) == "removed"
    assert outcome not in set(SessionOutcome)
    assert SessionOutcome.read("complete") is SessionOutcome.COMPLETE


def test_writes_name_sessions_columns_and_outcomes_only(store: Store) -> None:
    with pytest.raises(ValueError, match="not a sessions column"):
        _open(store, "CAM1", "t", outcom="complete")
    sid = _open(store, "CAM1", "t")
    with pytest.raises(TypeError, match="SessionOutcome"):
        store.update_session(sid, {"outcome": "complete"})
    assert store.session(sid).outcome is SessionOutcome.RUNNING


def test_named_queries_return_the_sessions_they_name(store: Store) -> None:
    a = _open(store, "CAM1", "2024-03-01T00:00:00.000+00:00")
    b = _open(store, "CAM2", "2024-03-02T00:00:00.000+00:00")
    c = _open(store, "CAM1", "2024-03-03T00:00:00.000+00:00")
    store.mark_undocked(b, "2024-03-02T01:00:00.000+00:00")
    assert [s.id for s in store.all_sessions()] == [a, b, c]
    assert [s.id for s in store.sessions_of_camera("CAM1")] == [a, c]
    assert [s.id for s in store.sessions_before("2024-03-03T00:00:00.000+00:00")] == [a, b]
    assert [s.id for s in store.docked_sessions()] == [a, c]
    assert store.interrupt_running_sessions("2024-03-04T00:00:00.000+00:00") == 3
    assert {s.outcome for s in store.all_sessions()} == {SessionOutcome.INTERRUPTED}


def test_a_session_without_a_health_record_is_in_the_ledger_rows(store: Store) -> None:
    bare = _open(store, "CAM1", "2024-03-01T00:00:00.000+00:00")
    checked = _open(store, "CAM2", "2024-03-02T00:00:00.000+00:00")
    store.open_health(checked, "CAM2", "2024-03-02T00:00:00.000+00:00", "now")
    store.update_health(checked, "now", clock_drift_s=-90, readiness="ready")
    rows = store.ledger_rows()
    assert [(r.session.id, r.health is None) for r in rows] == [(bare, True), (checked, False)]
    health = rows[1].health
    assert health is not None and (health.clock_drift_s, health.readiness) == (-90, "ready")
    assert [r.session.id for r in store.ledger_rows(camera="CAM2")] == [checked]
    assert [r.session.id for r in store.ledger_rows(since="2024-03-02")] == [checked]


def test_a_docks_drift_trend_reads_the_docks_since_the_clock_took_and_at_most_a_window(
    store: Store,
) -> None:
    """Every dock's clock checks read its camera's last dock and the docks since its clock last
    took a correction, the newest `limit` of them; the camera's whole history (1,700 docks a
    camera in the 2-hour soak) was read twice at every dock."""
    ids = []
    for day in range(300):
        at = f"2025-{1 + day // 28:02d}-{1 + day % 28:02d}T08:00:00.000+00:00"
        sid = _open(store, "CAM1", at)
        store.open_health(sid, "CAM1", at, "now")
        store.update_health(sid, "now", clock_drift_s=day, clock_correction="")
        ids.append(sid)
    other = _open(store, "CAM2", "2026-01-01T00:00:00.000+00:00")
    store.open_health(other, "CAM2", "2026-01-01T00:00:00.000+00:00", "now")
    now = _open(store, "CAM1", "2026-02-01T00:00:00.000+00:00")

    window = store.trend_history("CAM1", now, 200)
    assert [r.session_id for r in window] == ids[100:]  # oldest first, the newest 200
    last = store.last_health("CAM1", now)
    assert last is not None and last.session_id == ids[-1]
    assert store.last_health("CAM1", ids[0]) is None

    store.update_health(ids[250], "now", correction_check="took")
    store.update_health(ids[120], "now", correction_check="took")
    assert [r.session_id for r in store.trend_history("CAM1", now, 200)] == ids[250:]
    # before a session: only the docks that came before it
    assert [r.session_id for r in store.trend_history("CAM1", ids[200], 200)] == ids[120:200]
    assert store.trend_history("CAM3", now, 200) == []
