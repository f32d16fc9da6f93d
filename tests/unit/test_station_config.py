"""agent.core.config.station as a unit: the station's own configuration is recorded at first
use, another one is refused (exit 77) unless the override is allowed, and a sink's identity is
its kind and where it is."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.core.config import load
from agent.core.config import station as station_config
from agent.core.errors import ForeignConfig

NOBODY = 65534


def _config(path: Path, data: Path, extra: str = "") -> Path:
    path.write_text(f'station_id = "S-1"\ndata_dir = "{data}"\n{extra}')
    return path


def test_the_first_configuration_is_the_station_s_and_another_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    own = load(_config(tmp_path / "own.toml", data), {})
    assert station_config.adopt_or_check(own, foreign_allowed=False) is None
    recorded = (data / "station-config").read_text()
    assert recorded == f"{(tmp_path / 'own.toml').resolve()}\n"
    assert station_config.adopt_or_check(own, foreign_allowed=False) is None  # the same again

    sink = tmp_path / "elsewhere"
    other_path = _config(tmp_path / "other.toml", data, f'[sync]\ndirectory_root = "{sink}"\n')
    other = load(other_path, {})
    with pytest.raises(ForeignConfig) as refused:
        station_config.adopt_or_check(other, foreign_allowed=False)
    assert refused.value.exit_code == 77
    assert str(other_path.resolve()) in refused.value.message
    assert "--foreign-config" in refused.value.message
    # Root (these tests run as root) may override it; the station's file is given back.
    allowed = station_config.adopt_or_check(other, foreign_allowed=True)
    assert allowed == str((tmp_path / "own.toml").resolve())
    assert (data / "station-config").read_text() == recorded  # never re-recorded

    # The sink each names: the station's own is read from its file, not from `other`.
    assert station_config.sink_of(other).endpoint == str(sink.resolve())
    station_sink = station_config.station_sink(other)
    assert station_sink == station_config.sink_of(own)
    assert station_sink.fingerprint != station_config.sink_of(other).fingerprint


def test_a_record_that_names_no_configuration_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "station-config").write_bytes(b"x" * 5000)
    own = load(_config(tmp_path / "own.toml", data), {})
    with pytest.raises(ForeignConfig, match="does not name a configuration"):
        station_config.adopt_or_check(own, foreign_allowed=True)


def test_only_root_or_the_data_directory_s_owner_may_override(tmp_path: Path) -> None:
    """A user who may write the data directory but is neither root nor its owner (the service
    user) is refused even with --foreign-config: checked in a child that drops to nobody."""
    base = Path(tempfile.mkdtemp(prefix="dockagent-foreign-", dir="/var/tmp"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 - nobody must reach the record
        data = base / "data"
        data.mkdir()
        os.chmod(data, 0o777)  # noqa: S103 - writable by nobody, owned by root
        own = load(_config(base / "own.toml", data), {})
        station_config.adopt_or_check(own, foreign_allowed=False)
        os.chmod(data / "station-config", 0o644)  # nobody reads it, as the group does
        other = load(_config(base / "other.toml", data, "[sync]\npurge_grace_s = 0\n"), {})
        pid = os.fork()
        if pid == 0:  # the child: nobody, who is not the directory's owner
            code = 1
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                station_config.adopt_or_check(other, foreign_allowed=True)
            except ForeignConfig as exc:
                code = 0 if "only root may" in exc.message else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The owner (the service user root switches to) may.
        assert station_config.may_override(data)
    finally:
        shutil.rmtree(base)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=6000))
def test_any_bytes_in_the_record_are_a_path_or_a_refusal(tmp_path: Path, data: bytes) -> None:
    """The record is read bounded and never raises but ForeignConfig, whatever it holds."""
    (tmp_path / "station-config").write_bytes(data)
    try:
        named = station_config.recorded(tmp_path)
    except ForeignConfig:
        return
    assert named is not None and 0 < len(named) <= 4096 and named == named.strip()
