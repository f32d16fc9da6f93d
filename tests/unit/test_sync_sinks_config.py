"""[[sync.sinks]] and held_when as read: which sinks' confirmations purge and wipe require, and
that a configuration without sinks is the single sink it always was."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.core import config
from agent.core.config import station

TWO = (
    '[[sync.sinks]]\nname = "nas"\ndirectory_root = "/srv/nas"\n'
    '[[sync.sinks]]\nname = "central"\nkind = "tus"\nendpoint = "https://ev.example/files"\n'
    'confirm_level = "checksummed"\n'
)


def _load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(path, {"DOCKAGENT_DATA_DIR": str(tmp_path / "d")})


def test_without_sinks_the_one_sink_of_sync_is_the_station_s(tmp_path: Path) -> None:
    cfg = _load(tmp_path, '[sync]\nkind = "tus"\nendpoint = "https://ev.example/files"\n')
    assert cfg.sync.sinks == ()
    (only,) = station.destinations(cfg)
    assert only.identity == station.sink_of(cfg) and only.name == ""
    assert station.held_sinks(cfg) is None  # any signed confirmation, as before
    assert station.described(cfg) == "tus sink https://ev.example/files"


@pytest.mark.parametrize(
    ("rule", "required"),
    [('"all"', ("nas", "central")), ('"any"', None), ('["central"]', ("central",))],
)
def test_held_when_names_the_sinks_purge_and_wipe_wait_for(
    tmp_path: Path, rule: str, required: tuple[str, ...] | None
) -> None:
    cfg = _load(tmp_path, f"[sync]\nheld_when = {rule}\n" + TWO)
    nas, central = station.destinations(cfg)
    assert (nas.name, nas.identity.kind, nas.identity.endpoint) == ("nas", "directory", "/srv/nas")
    assert (central.sync.kind, central.sync.confirm_level) == ("tus", "checksummed")
    assert station.required_names(cfg) == required
    by_name = {d.name: d.identity.fingerprint for d in (nas, central)}
    expected = None if required is None else tuple(sorted(by_name[n] for n in required))
    assert station.held_sinks(cfg) == expected


def test_held_when_all_is_the_default(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "[sync]\n" + TWO)
    assert station.required_names(cfg) == ("nas", "central")
