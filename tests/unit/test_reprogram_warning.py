"""The reprogram warning of a handover reads what a camera's last vendor unlock kept: hostile.

Whatever the kept JSON holds (any text, any shape, a badge of any length or bytes), reading it
never raises, a warning appears only for a badge other than the new holder's, and the badge it
shows is escaped and bounded.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core.model import display_name
from agent.reporting.handovers import reprogram_warning
from agent.store import Store

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


def _store_with_unlock(tmp_path: Path, unlock: str) -> Store:
    store = Store.open(tmp_path, create=True)
    store.open_session(
        {"device_serial": "CAM1", "source": "/x", "docked_at": "2026-12-01T08:00:00Z"}
    )
    store.open_session(
        {"device_serial": "CAM1", "source": "/x", "docked_at": "2026-12-02T08:00:00Z",
         "unlock": unlock}
    )  # fmt: skip
    return store


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(unlock=st.text(min_size=1, max_size=300) | _JSON.map(json.dumps))
def test_any_kept_unlock_is_read_without_raising(tmp_path_factory: object, unlock: str) -> None:
    directory = tmp_path_factory.mktemp("store")  # type: ignore[attr-defined]
    store = _store_with_unlock(directory, unlock)
    try:
        warning = reprogram_warning(store, "CAM1", "002000", enrolled=True)
    finally:
        store.close()
    if warning is not None:
        assert warning.on_camera != "002000" and len(warning.on_camera) <= 4 * 64 + 10
        assert warning.on_camera.isprintable()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(badge=st.text(min_size=1, max_size=5000))
def test_a_badge_the_camera_gave_is_shown_escaped_and_bounded(
    tmp_path_factory: object, badge: str
) -> None:
    directory = tmp_path_factory.mktemp("store")  # type: ignore[attr-defined]
    unlock = json.dumps({"record": {"officer_id": badge}})
    store = _store_with_unlock(directory, unlock)
    try:
        warning = reprogram_warning(store, "CAM1", "002000", enrolled=False)
    finally:
        store.close()
    if badge == "002000":
        assert warning is None
        return
    assert warning is not None and not warning.refused
    assert warning.on_camera == display_name(badge[:64])
    # Nothing that moves the cursor or hides text (controls, format characters, line or
    # paragraph separators); a no-break space is shown as the space it is.
    hiding = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
    assert not any(unicodedata.category(c) in hiding for c in warning.on_camera)
    assert "\n" not in warning.message()
    assert warning.read_at == "2026-12-02T08:00:00Z"  # the newest unlock, not an older dock
