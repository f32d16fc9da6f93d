"""Staging on a real 64 MiB tmpfs and a 200 MiB camera: stop cleanly, copy nothing partial."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows
from tests.support.volumes import tmpfs

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]


def test_staging_full_stops_before_copying_and_rerun_completes(tmp_path: Path) -> None:
    cam = tmp_path / "cam"
    manifest = write_camera(
        CameraSpec(
            serial="FULL01",
            days=2,
            files_per_day=10,
            file_size=1 << 20,
            large_files=3,
            large_size=64 << 20,
        ),
        cam,
    )
    assert manifest.total_bytes >= 200 << 20
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    with tmpfs(tmp_path / "station", 64 << 20):
        station = Station(tmp_path / "station")
        station.configure(
            'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "after_seal"\n'
        )
        proc = station.run("import", str(cam))
        assert proc.returncode == 75, proc.stdout + proc.stderr
        assert "nothing was copied and nothing was wiped" in proc.stderr
        assert f"the camera needs {manifest.total_bytes}" in proc.stderr
        staged = [p for p in station.staging.rglob("*") if p.is_file()]
        assert staged == []
        assert all(r["state"] == "discovered" for r in rows(station.data_dir))
        on_camera = {p.relative_to(cam).as_posix().encode() for p in cam.rglob("*") if p.is_file()}
        assert on_camera == set(expected)  # nothing wiped
        session = rows(station.data_dir, "SELECT * FROM sessions")[-1]
        assert session["outcome"] == "failed" and "needs" in session["wipe_detail"]
        # Space is freed (the tmpfs grows), and a plain re-run completes.
        subprocess.run(["mount", "-o", "remount,size=512m", str(station.root)], check=True)
        again = station.run("import", str(cam))
        assert again.returncode == 0, again.stdout + again.stderr
        assert_all_sealed(station.data_dir, "FULL01", expected)
        assert station.run("verify").returncode == 0
