"""Configuration: strict loading, one clear line naming the key, exit code 78."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.core import config
from agent.core.errors import EX_CONFIG, ConfigError
from agent.core.model import WipePolicy

REPO = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, text: str, **env: str) -> config.Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(path, {"DOCKAGENT_DATA_DIR": str(tmp_path / "d"), **env})


def test_example_config_works_with_only_the_data_dir_variable(tmp_path: Path) -> None:
    cfg = config.load(REPO / "config.example.toml", {"DOCKAGENT_DATA_DIR": str(tmp_path)})
    assert cfg.data_dir == str(tmp_path)
    assert cfg.ingest.wipe_policy is WipePolicy.AFTER_CONFIRM
    assert cfg.key_path == tmp_path / "station.key"


def test_embedded_defaults_without_a_file(tmp_path: Path) -> None:
    cfg = config.load(None, {"DOCKAGENT_DATA_DIR": str(tmp_path)})
    assert cfg.source == "<embedded defaults>"
    assert cfg.storage.copy_chunk_bytes == 1 << 20


def test_data_dir_precedence(tmp_path: Path) -> None:
    text = f'data_dir = "{tmp_path / "from-file"}"\n'
    path = tmp_path / "c.toml"
    path.write_text(text)
    state = str(tmp_path / "state")
    assert config.load(path, {"STATE_DIRECTORY": state}).data_dir == str(tmp_path / "from-file")
    assert config.load(None, {"STATE_DIRECTORY": f"{state}:/other"}).data_dir == state
    over = str(tmp_path / "override")
    env = {"STATE_DIRECTORY": state, "DOCKAGENT_DATA_DIR": over}
    assert config.load(path, env).data_dir == over


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('station_id = "A"\nbogus = 1\n', "c.toml:2: bogus: unknown key"),
        (
            '[storage]\nreserve_bytes = "lots"\n',
            "c.toml:2: storage.reserve_bytes: must be an integer",
        ),
        ("[storage]\nreserve_bytes = true\n", "storage.reserve_bytes: must be an integer"),
        ('[ingest]\nwipe_policy = "sometimes"\n', "ingest.wipe_policy: must be one of never"),
        ("[ingest]\nunknown = 1\n", "c.toml:2: ingest.unknown: unknown key"),
        ('[keys]\nsigning_key = "relative.key"\n', "keys.signing_key: must be an absolute path"),
        ('[log]\nlevel = "loud"\n', "log.level: must be one of"),
        (
            '[ingest]\ncamera_timezone = "Mars/Olympus"\n',
            "ingest.camera_timezone: unknown time zone",
        ),
        ('station_id = "bad id!"\n', "station_id: must be"),
        ("storage = 3\n", "storage: must be a table"),
        ("[storage\n", "not valid TOML"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert needle in info.value.message
    assert "\n" not in info.value.message
    assert info.value.exit_code == EX_CONFIG == 78


def test_relative_or_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data_dir: must be an absolute path"):
        config.load(None, {"DOCKAGENT_DATA_DIR": "relative/dir"})
    with pytest.raises(ConfigError, match=r"data_dir: not set.*DOCKAGENT_DATA_DIR"):
        config.load(None, {})
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        config.load(None, {"DOCKAGENT_DATA_DIR": str(afile)})


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text("x")
    os.chmod(key, 0o640)
    with pytest.raises(ConfigError, match=r"keys.signing_key: .*readable by others \(mode 0640\)"):
        _load(tmp_path, f'[keys]\nsigning_key = "{key}"\n')
    os.chmod(key, 0o600)
    assert _load(tmp_path, f'[keys]\nsigning_key = "{key}"\n').key_path == key


def test_cli_exits_78_with_the_key_named(station) -> None:  # type: ignore[no-untyped-def]
    station.configure("[storage]\ncopy_chunk_bytes = 12\n")
    proc = station.run("status")
    assert proc.returncode == 78
    assert "storage.copy_chunk_bytes: must be between" in proc.stderr
