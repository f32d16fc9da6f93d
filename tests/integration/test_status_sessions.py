"""`dockagent status` shows the latest dock sessions, as many as --limit says and only those
docked from --since: a station's history of months is not a screenful."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station

DOCKS = 10


def _dock_ten(station: Station, tmp_path: Path) -> list[dict[str, object]]:
    """Ten cameras docked one after another; their sessions, oldest first (as status lists)."""
    for n in range(DOCKS):
        spec = CameraSpec(serial=f"CAMSES{n:02d}", days=1, files_per_day=1, file_size=4096)
        cam = tmp_path / f"cam{n}"
        write_camera(spec, cam)
        proc = station.run("import", str(cam))
        assert proc.returncode == 0, proc.stderr
    sessions = station.json("status", "--limit", "100")["sessions"]
    assert [s["device_serial"] for s in sessions] == [f"CAMSES{n:02d}" for n in range(DOCKS)]
    return list(sessions)


def test_limit_and_since_choose_the_sessions_shown(station: Station, tmp_path: Path) -> None:
    ten_docks = _dock_ten(station, tmp_path)
    # --limit 3: the three latest of the ten.
    shown = station.json("status", "--limit", "3")["sessions"]
    assert [s["session_id"] for s in shown] == [s["session_id"] for s in ten_docks[-3:]]
    # --since the fourth latest dock (an instant with its zone): that one and the three after.
    since = datetime.fromisoformat(str(ten_docks[6]["docked_at"])).isoformat()
    shown = station.json("status", "--since", since)["sessions"]
    assert [s["device_serial"] for s in shown] == ["CAMSES06", "CAMSES07", "CAMSES08", "CAMSES09"]
    both = station.json("status", "--since", since, "--limit", "2")["sessions"]
    assert [s["device_serial"] for s in both] == ["CAMSES08", "CAMSES09"]
    # From a day to come: no session, and still exit 0.
    assert station.json("status", "--since", "2999-01-01")["sessions"] == []
