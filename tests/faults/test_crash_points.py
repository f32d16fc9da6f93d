"""kill -9 at every step of the pipeline and at random moments: nothing lost, nothing twice.

Each crash is a real SIGKILL of the real CLI process (at a named crash point, or from outside
after a random delay). After a plain re-run, every file of the camera must be sealed exactly
once with the hash of its camera bytes, no temporary file may be left, wiped files must be
held, and `verify` must pass.

Each crash runs with the station's copies sealed to a central key or plain
(tests/support/sealed_mode.py): with DOCKAGENT_TEST_SEAL unset, by a fixed split, so that one
run covers both modes in the time of one: at each step one of its two kills (the 1st or the
3rd time the step is reached) is sealed, alternately, and every second random moment is.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from agent.core import crashpoints
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows
from tests.support.sealed_mode import alternate

CONFIG = """station_id = "CRASH"
[storage]
reserve_bytes = 0
copy_chunk_bytes = 262144
[ingest]
wipe_policy = "after_seal"
"""

SPEC = CameraSpec(
    serial="CRASH01", days=2, files_per_day=4, file_size=1 << 20, large_files=1, large_size=6 << 20
)


def _check_recovered(station: Station, cam: Path, expected: dict[bytes, str]) -> None:
    proc = station.run("import", str(cam))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_all_sealed(station.data_dir, SPEC.serial, expected)
    held = rows(station.data_dir, "SELECT * FROM files WHERE wipeable=1")
    for row in held:  # after_seal: every recording was wiped from the camera, and is held
        assert row["wiped_at"], row["camera_name"]
        assert not (cam / row["camera_name"]).exists(), row["camera_name"]
    temp = [p for p in station.data_dir.rglob("*") if p.name.endswith(".part")]
    assert not temp
    status = station.json("status")
    assert status["states"]["copying"] == 0 and status["states"]["discovered"] == 0
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout


@pytest.fixture
def camera(tmp_path: Path) -> tuple[Path, dict[bytes, str]]:
    cam = tmp_path / "cam"
    manifest = write_camera(SPEC, cam)
    return cam, {e[0]: e[2] for e in manifest.entries}


def _kills() -> list[object]:
    """(step, nth, sealed) of every kill: the 1st and the 3rd time each step is reached (a
    step reached once per run, `import.*`, only the 1st: a 3rd never comes, and that run was a
    plain import like any other), each in one of the two modes, alternately."""
    kills: list[object] = []
    for i, step in enumerate(crashpoints.STEPS):
        for j, nth in enumerate((1,) if step.startswith("import.") else (1, 3)):
            sealed = alternate(i + j)
            mode = "sealed" if sealed else "plain"
            kills.append(pytest.param(step, nth, sealed, id=f"{step}-{nth}-{mode}"))
    return kills


@pytest.mark.parametrize(("step", "nth", "sealed"), _kills())
def test_kill_at_each_step(station: Station, camera, step: str, nth: int, sealed: bool) -> None:  # type: ignore[no-untyped-def]
    cam, expected = camera
    station.sealed = sealed
    station.configure(CONFIG)
    crashed = station.run("import", str(cam), DOCKAGENT_CRASH_AT=f"{step}:{nth}")
    assert crashed.returncode == -signal.SIGKILL, (step, crashed.returncode, crashed.stderr)
    _check_recovered(station, cam, expected)


def test_kill_at_twenty_random_moments(tmp_path: Path) -> None:
    spec = CameraSpec(
        serial=SPEC.serial,
        days=2,
        files_per_day=5,
        file_size=2 << 20,
        large_files=1,
        large_size=24 << 20,
        seed=7,
    )
    # How long an undisturbed import takes on this machine.
    probe = Station(tmp_path / "probe")
    probe.root.mkdir()
    probe.configure(CONFIG)
    write_camera(spec, tmp_path / "probe-cam")
    started = time.monotonic()
    assert probe.run("import", str(tmp_path / "probe-cam")).returncode == 0
    duration = time.monotonic() - started
    rng = random.Random(20261128)
    kills = 0
    round_ = 0
    while kills < 20 and round_ < 60:
        round_ += 1
        # A fresh station and camera each round, so every kill lands in a first import.
        station = Station(tmp_path / f"station{round_}", sealed=alternate(round_))
        station.root.mkdir()
        station.configure(CONFIG)
        cam = tmp_path / f"cam{round_}"
        expected = {e[0]: e[2] for e in write_camera(spec, cam).entries}
        proc = station.start("import", str(cam))
        time.sleep(rng.uniform(0.0, duration * 0.8))
        proc.send_signal(signal.SIGKILL)
        if proc.wait() == -signal.SIGKILL:
            kills += 1
        _check_recovered(station, cam, expected)
    # Kills that landed after the import had finished do not count: 20 must land mid-run.
    assert kills == 20, f"only {kills} of {round_} imports were still running when killed"
