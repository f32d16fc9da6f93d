"""Configuration: strict loading, one clear line naming the key, exit code 78."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core import config
from agent.core.config import example, spec
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
        (
            '[devices]\nsources = ["usb"]\n',
            "c.toml:2: devices.sources: unknown source 'usb' (known: fake, mountwatch, udev)",
        ),
        ("[devices]\nprofiles = []\n", "devices.profiles: must name at least one camera profile"),
        (
            '[devices]\nsources = ["fake"]\n',
            "devices.fake_spool: must be an absolute path when the fake source is on",
        ),
        (
            "[health]\ncharge_warn_pct = 101\n",
            "health.charge_warn_pct: is a percentage: at most 100",
        ),
        (
            "[sync]\nmax_parallel_uploads = 0\n",
            "sync.max_parallel_uploads: must be between 1 and 16",
        ),
        (
            "[compliance]\nsegment_gap_s = 400\n",
            "c.toml:2: compliance.segment_gap_s: must not be above segment_window_s",
        ),
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


# ---- the declarations, the example and the reader agree ----------------------------------------


def test_committed_example_is_what_the_declarations_produce() -> None:
    committed = (REPO / "config.example.toml").read_text()
    assert committed == example.render(), (
        "config.example.toml is stale: run scripts/gen-config-example --output config.example.toml"
    )
    script = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-config-example")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert script.stdout == committed
    # scripts/install edits these lines of the example with sed, as they stand.
    lines = committed.splitlines()
    for line in ('station_id = "STATION-01"', 'data_dir = ""', 'metrics_path = ""'):
        assert line in lines


def test_the_example_shows_every_default_and_passes_every_check(tmp_path: Path) -> None:
    path = REPO / "config.example.toml"
    cfg = config.load(path, {"DOCKAGENT_DATA_DIR": str(tmp_path)})
    # Every default, but for what a station is shipped with: it speaks Chinese, while a file
    # without the key speaks the locale's language.
    shipped = dataclasses.replace(config.Config().station, language="zh_CN")
    assert config.Config().station.language == ""
    assert cfg == config.Config(data_dir=str(tmp_path), source=str(path), station=shipped)


def _too_low(low: int, high: int | None) -> str:
    if high is not None and low > 0:
        return f"must be between {low} and {high}"
    return "must not be negative" if low == 0 else f"must be at least {low}"


def _ranged() -> list[tuple[str, str, object, str]]:
    """(table, key, a value out of its declared range or choices, the refusal expected)."""
    cases: list[tuple[str, str, object, str]] = []
    for table, cls in spec.tables(config.Config):
        for decl in spec.declared(cls):
            low, high = decl.spec.low, decl.spec.high
            if decl.type in (int, float) and low is not None:
                cases.append((table, decl.name, low - 1, _too_low(low, high)))
            if decl.type is int and high is not None:
                too_high = (
                    "is a percentage: at most 100" if decl.spec.percent else "must be between"
                )
                cases.append((table, decl.name, high + 1, too_high))
            if decl.type == tuple[str, ...] and decl.choices:
                cases.append((table, decl.name, ["bogus"], f"unknown {decl.spec.item} 'bogus'"))
            elif decl.choices:
                cases.append((table, decl.name, "bogus", "must be one of"))
    return cases


@pytest.mark.parametrize(("table", "key", "value", "needle"), _ranged())
def test_every_declared_range_and_choice_is_enforced(
    tmp_path: Path, table: str, key: str, value: object, needle: str
) -> None:
    text = f"[{table}]\n{key} = {value!r}\n".replace("'", '"')
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert f"c.toml:2: {table}.{key}: {needle}" in info.value.message
    assert info.value.exit_code == 78


def test_a_declaration_fills_its_range_and_choices_into_the_example() -> None:
    text = example.render()
    assert "# Size of each read/write piece when copying off a camera (4096 to 67108864)." in text
    assert "# debug | info | warning | error\nlevel = " in text
    chunk = next(d for d in spec.declared(config.StorageConfig) if d.name == "copy_chunk_bytes")
    changed = dataclasses.replace(chunk, spec=dataclasses.replace(chunk.spec, high=1 << 24))
    assert "(4096 to 16777216)" in changed.doc
