"""The test hooks as the composition root reads them: inert unless armed, refused under systemd
and the wrapper, every value bounded; a hostile offset file cannot throw the wall clock off."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core import testhooks, wallclock
from agent.core.errors import ConfigError

NAMES = [*testhooks.HOOKS, testhooks.ARM, testhooks.WRAPPED, *testhooks.SYSTEMD_MARKERS]


def test_unarmed_hooks_are_named_and_inert() -> None:
    env = {
        testhooks.CRASH_AT: "copy.staged",
        testhooks.WALL_OFFSET_FILE: "/tmp/x",
        testhooks.STATION_CLOCK: "synced",
        testhooks.ARM: "yes",  # only "1" arms
    }
    hooks = testhooks.load(env)
    assert hooks == testhooks.Hooks(ignored=hooks.ignored)
    assert set(hooks.ignored) == {
        testhooks.CRASH_AT,
        testhooks.WALL_OFFSET_FILE,
        testhooks.STATION_CLOCK,
    }


def test_armed_hooks_are_parsed() -> None:
    hooks = testhooks.load(
        {
            testhooks.ARM: "1",
            testhooks.CRASH_AT: "seal.committed:3",
            testhooks.STALL_AT: "copy.first_chunk",
            testhooks.WALL_OFFSET_FILE: "/tmp/offset",
            testhooks.STATION_CLOCK: "unsynced",
        }
    )
    assert hooks.armed == (testhooks.ARM, *testhooks.HOOKS)
    assert hooks.crash_at == ("seal.committed", 3) and hooks.stall_at == ("copy.first_chunk", 1)
    assert hooks.wall_offset_file == "/tmp/offset" and hooks.station_synchronised is False


@pytest.mark.parametrize("marker", [*testhooks.SYSTEMD_MARKERS, testhooks.WRAPPED])
def test_arming_is_refused_under_systemd_and_the_wrapper(marker: str) -> None:
    with pytest.raises(ConfigError) as refused:
        testhooks.load({testhooks.ARM: "1", marker: "x"})
    assert marker in refused.value.message and refused.value.exit_code == 78
    # Unarmed, the same process runs as ever.
    assert testhooks.load({marker: "x", testhooks.CRASH_AT: "copy.staged"}).armed == ()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(NAMES), st.text(max_size=300), max_size=len(NAMES)))
def test_any_environment_gives_hooks_or_a_config_error(env: dict[str, str]) -> None:
    try:
        hooks = testhooks.load(env)
    except ConfigError as exc:
        assert env.get(testhooks.ARM) == "1"
        assert len(exc.message) < 400  # a value is never echoed back
        return
    if env.get(testhooks.ARM) != "1":
        assert hooks.armed == () and hooks.crash_at is None and hooks.stall_at is None
        assert hooks.wall_offset_file == "" and hooks.station_synchronised is None
    else:
        assert not any(env.get(m) for m in (*testhooks.SYSTEMD_MARKERS, testhooks.WRAPPED))


def test_a_megabyte_value_is_refused_in_bounded_time() -> None:
    long = "x" * (1 << 20)
    for name in testhooks.HOOKS:
        with pytest.raises(ConfigError) as refused:
            testhooks.load({testhooks.ARM: "1", name: long})
        assert long[:100] not in refused.value.message


@pytest.mark.parametrize(
    "text", ["nan", "inf", "-inf", "1e300", "9" * 200, "1" * (1 << 20), "\x00\x01", "12abc"]
)
def test_a_hostile_offset_file_leaves_the_wall_clock_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    path = tmp_path / "offset"
    path.write_text("60\n")
    monkeypatch.setattr(wallclock, "_OFFSET_CHECK_S", 0.0)
    clock = wallclock.WallClock(str(path))
    assert clock.offset() == 60
    tmp = tmp_path / "offset.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)
    offset = clock.offset()
    assert offset == 60 and math.isfinite(offset)
    assert 59 < (clock.now() - datetime.now(UTC)).total_seconds() < 61


def test_the_installed_wall_clock_is_the_real_one_until_the_root_installs_another() -> None:
    assert wallclock.injected_offset_file() == ""
    assert abs((wallclock.now() - datetime.now(UTC)).total_seconds()) < 1
