"""The soak's own rules, without a run: its command line refuses bad arguments, and the
flatness rule passes steady figures and names one that grows."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.soak.__main__ import main
from tests.soak.cameras import Camera
from tests.soak.sampling import Sample, judge_resources
from tests.soak.station import Incarnation, TusControl
from tests.support.tus_servers import free_port

STEADY = {"peak_rss_kib": 60_000, "rss_kib": 58_000, "open_files": 20, "threads": 5}


@pytest.mark.parametrize(
    "args",
    [["--duration", "0"], ["--sessions", "0"], ["--cameras", "33"], ["--fault-rate", "1.5"]],
)
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("soak: ")


def _samples(grow: str = "", by: int = 0) -> list[Sample]:
    out = []
    for t in range(100):
        figures = dict(STEADY)
        if grow:
            figures[grow] += by * t // 100
        out.append(Sample(1, float(t), t, "soak", anon_kib=40_000, **figures))
    return out


def _judge(samples: list[Sample]) -> dict[str, object]:
    incarnations = [Incarnation(1, 4242, 0.0, 0, 0)]
    return judge_resources(samples, incarnations, 5.0, 5, 10.0, (None, None), cameras=4)


def test_steady_figures_are_flat() -> None:
    result = _judge(_samples())
    assert result["flat"] is True
    assert result["violations"] == []


def test_a_growing_number_of_open_files_is_not_flat() -> None:
    result = _judge(_samples("open_files", 40))
    assert result["flat"] is False
    violations = result["violations"]
    assert isinstance(violations, list) and len(violations) == 1
    assert violations[0].startswith("open_files: ")


def test_a_run_too_short_to_judge_is_not_flat() -> None:
    result = _judge(_samples()[:3])
    assert result["flat"] is False
    assert result["violations"] == ["no daemon process lived long enough to judge"]


def test_a_log_rotated_to_the_same_size_and_mtime_is_hashed_again(tmp_path: Path) -> None:
    """A camera that starts a new SYSTEM.LOG of the same length within the same even second
    holds other bytes: the soak's manifest must record them, not the earlier log's hash (it
    once did, and the checker then called the station's upload of the new log unknown)."""
    cam = Camera("SOAK000", "100001", tmp_path / "cam", seed=1, rotate_logs=True)
    log = tmp_path / "cam" / "LOG" / "SYSTEM.LOG"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"A" * 824)
    os.utime(log, ns=(1_796_663_614 * 10**9,) * 2)
    first = cam.scan()[b"LOG/SYSTEM.LOG"]
    time.sleep(0.01)  # a later ctime, as the next round's rename gives
    fresh = tmp_path / "new-SYSTEM.LOG"
    fresh.write_bytes(b"B" * 824)
    os.utime(fresh, ns=(1_796_663_614 * 10**9,) * 2)
    os.replace(fresh, log)
    second = cam.scan()[b"LOG/SYSTEM.LOG"]
    assert first[0] == second[0] == 824
    assert second[1] == hashlib.sha256(b"B" * 824).hexdigest() != first[1]


def test_the_soaks_server_port_is_never_one_a_test_run_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A test run beside a soak (in xdist workers or not) never binds the soak's port, which
    the soak's outages leave free for minutes at a time."""
    port = TusControl(Path("/nonexistent")).port
    taken: set[int] = set()
    for worker in ("", *(f"gw{n}" for n in range(16))):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        taken.add(free_port())
    assert 19000 <= port < 20000
    assert all(p >= 20000 for p in taken), taken
