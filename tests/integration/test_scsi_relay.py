"""The SCSI relay (dockagent-scsi@.service) as its unit runs it: one process per connection of
its socket, with the connection as standard input and output, inside the same umockdev testbed
as the agent's side, answering through real SG_IO ioctls to the simulated jl-dv16 camera.

What it proves: an unlock through the relay is the unlock (identity, charge, clock, the switch);
the relay sends a camera nothing that is not one of its dialect's commands, and nothing at all
to a device that no ums-unlock profile of the station's configuration allows (sysfs decides
what the device is, not the agent): each refusal reaches the agent as its reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.umockdev_run import umockdev_missing
from tests.support.umockdev_sg import SgRun, run_unlock, write_profile

NOW = "2026-12-07T06:03:09+00:00"
SPEC = {"dialect": "jl-dv16", "password": "123456", "inquiry": "dv16devicev1.00"}


@pytest.fixture(scope="module", autouse=True)
def _umockdev() -> None:
    missing = umockdev_missing()
    if missing:
        pytest.skip("; ".join(missing))


def _relay_config(tmp_path: Path, profile: str) -> Path:
    path = tmp_path / "relay-config.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[devices]\nprofiles = ["{profile}"]\nprofile_dir = "{tmp_path / "profiles"}"\n',
        "utf-8",
    )
    return path


def _run(tmp_path: Path, relay_profile: str = "jl-test", **probe: Any) -> SgRun:
    name = write_profile(tmp_path / "profiles", "jl-test", SPEC)
    plan = {"profile": name, "profile_dir": str(tmp_path / "profiles"), "synchronised": True}
    plan.update(now=NOW, **probe)
    config = _relay_config(tmp_path, relay_profile)
    return run_unlock(tmp_path / "bed", {"battery": 41}, plan, relay_config=config)


def test_a_camera_is_unlocked_through_the_relay(tmp_path: Path) -> None:
    run = _run(tmp_path)
    assert run.outcome["outcome"] == "unlocked", (run.outcome, run.stderr[-2000:])
    assert run.outcome["info"]["serial"] == "JL00001"
    assert run.outcome["info"]["battery_pct"] == 41
    assert run.camera["mass_storage"] is True and run.camera["clock"] is not None
    assert "123456" not in run.stderr


@pytest.mark.parametrize(
    "cdb",
    [
        # READ(10) of block 0: a standard command, not the dialect's
        "28000000000000000100",
        # the write opcode with a command outside the jl-dv16 table (07h)
        "fb820000000700000000000000000000",
        # a read of the device record with a length no record has
        "fd810000000300ff0000000000000000",
    ],
)
def test_the_relay_sends_no_command_outside_the_dialect(tmp_path: Path, cdb: str) -> None:
    run = _run(tmp_path, raw=[cdb])
    assert run.outcome["error"] == "DeviceCommandFailed", run.outcome
    assert "refused by the SCSI relay: jl-dv16 has no such command" in run.outcome["message"]
    assert run.camera["commands"] == []  # the camera heard nothing


def test_the_relay_refuses_a_device_no_profile_of_the_station_allows(tmp_path: Path) -> None:
    # The agent's profile names the camera's ids; the station's configuration (what the relay
    # reads) uses only the generic profile: the relay sends it nothing.
    run = _run(tmp_path, relay_profile="generic")
    assert run.outcome["error"] == "DeviceCommandFailed", run.outcome
    assert (
        "USB device 1f3a:5016 is not a camera any ums-unlock profile allows"
        in (run.outcome["message"])
    )
    assert run.camera["commands"] == []
    assert run.camera["mass_storage"] is False
