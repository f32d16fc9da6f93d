"""Staging on a real tmpfs smaller than the camera: the files that fit are sealed, the others
stay queued with the reason, nothing is partial, and a camera of which nothing fits is refused."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows
from tests.support.volumes import tmpfs

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]


def test_staging_full_copies_what_fits_and_rerun_completes(tmp_path: Path) -> None:
    """64 MiB of staging, a 200 MiB camera of 20 small files and three of 64 MiB: the small
    files are sealed (the whole camera used to be refused, exit 75); the large ones stay
    discovered with reason and kind staging_full, exit 3, nothing wiped."""
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
    large = {e.rel_path for e in manifest.entries if e.size >= 64 << 20}
    assert len(large) == 3
    with tmpfs(tmp_path / "station", 64 << 20):
        station = Station(tmp_path / "station")
        station.configure(
            'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "after_seal"\n'
        )
        proc = station.run("import", str(cam))
        assert proc.returncode == 3, proc.stdout + proc.stderr
        small = {p: sha for p, sha in expected.items() if p not in large}
        assert_all_sealed(station.data_dir, "FULL01", small)
        for row in rows(station.data_dir):
            if bytes(row["camera_path"]) in large:
                assert row["state"] == "discovered", row
                assert row["reason_kind"] == "staging_full" and "staging full" in row["reason"]
        assert proc.stdout.count("NOT SEALED") == 3 and "staging full" in proc.stdout
        on_camera = {p.relative_to(cam).as_posix().encode() for p in cam.rglob("*") if p.is_file()}
        assert on_camera == set(expected)  # nothing wiped
        session = rows(station.data_dir, "SELECT * FROM sessions")[-1]
        assert session["outcome"] == "incomplete" and session["wipe_state"] == "not wiped"
        # Space is freed (the tmpfs grows), and a plain re-run completes.
        subprocess.run(["mount", "-o", "remount,size=512m", str(station.root)], check=True)
        again = station.run("import", str(cam))
        assert again.returncode == 0, again.stdout + again.stderr
        assert_all_sealed(station.data_dir, "FULL01", expected)
        assert station.run("verify").returncode == 0


def test_staging_full_of_every_file_stops_before_copying(tmp_path: Path) -> None:
    """Staging is inside its reserve (the reserve is the whole tmpfs): the camera is refused
    before any byte is copied (exit 75), every row stays discovered, nothing is wiped."""
    cam = tmp_path / "cam"
    manifest = write_camera(
        CameraSpec(serial="FULL02", days=1, files_per_day=3, file_size=8 << 20), cam
    )
    with tmpfs(tmp_path / "station", 64 << 20):
        station = Station(tmp_path / "station")
        station.configure(
            'station_id = "T"\n[storage]\nreserve_bytes = 67108864\n'
            '[ingest]\nwipe_policy = "after_seal"\n'
        )
        proc = station.run("import", str(cam))
        assert proc.returncode == 75, proc.stdout + proc.stderr
        assert "nothing was copied and nothing was wiped" in proc.stderr
        needs = re.search(r"the camera needs (\d+)", proc.stderr)
        assert needs is not None, proc.stderr
        # Sealed copies need room for age's header and tags too (tests/support/sealed_mode.py).
        if station.sealed:
            assert int(needs[1]) > manifest.total_bytes, proc.stderr
        else:
            assert int(needs[1]) == manifest.total_bytes, proc.stderr
        assert [p for p in station.staging.rglob("*") if p.is_file()] == []
        assert all(r["state"] == "discovered" for r in rows(station.data_dir))
        assert len([p for p in cam.rglob("*") if p.is_file()]) == len(manifest.entries)
        session = rows(station.data_dir, "SELECT * FROM sessions")[-1]
        assert session["outcome"] == "failed" and "needs" in session["wipe_detail"]
