"""The camera pulled out mid-copy (its FUSE server killed): that file is not sealed, the
files before it are, nothing is wiped, and the next dock finishes the camera."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, build_image
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows
from tests.support.volumes import mount_fat

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]


def test_unplug_mid_copy_then_redock(station: Station, tmp_path: Path) -> None:
    station.configure(station.config_text.replace('"never"', '"after_seal"'))
    image = tmp_path / "cam.img"
    spec = CameraSpec(
        serial="UNPLUG01",
        days=1,
        files_per_day=6,
        file_size=512 << 10,
        large_files=3,
        large_size=96 << 20,
    )
    manifest = build_image(spec, image, "fat32")
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mount_fat(image, mnt) as mounted:
        proc = station.start("import", str(mounted.path), "--json", pipe=True, text=True)
        # Wait until a large file is being copied (a temp file of >= 8 MiB in staging).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            parts = list(station.staging.rglob("*.part")) if station.staging.exists() else []
            if any(p.stat().st_size >= 8 << 20 and _written(p) >= 8 << 20 for p in parts):
                break
            time.sleep(0.02)
        else:
            proc.kill()
            pytest.fail("the import never reached a large file")
        mounted.unplug()
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, out + err
    summary = json.loads(out)
    reasons = " ".join(p["reason"] for p in summary["problems"])
    assert "camera disconnected" in reasons
    states = {bytes(r["camera_path"]): r for r in rows(station.data_dir)}
    sealed = [p for p, r in states.items() if r["state"] == "sealed"]
    not_sealed = [p for p, r in states.items() if r["state"] != "sealed"]
    assert sealed and not_sealed
    for path in sealed:  # the files before the unplug are held with the camera's hash
        assert states[path]["sha256"] == expected[path]
    assert not any(r["wiped_at"] for r in states.values())
    assert not list(station.staging.rglob("*.part"))
    # Docked again: the same image, a new mount.
    with mount_fat(image, mnt, readonly=False) as mounted:
        again = station.run("import", str(mounted.path), "--json", timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
    assert_all_sealed(station.data_dir, "UNPLUG01", expected)
    assert station.run("verify").returncode == 0


def _written(path: Path) -> int:
    """Bytes actually written to a preallocated temp file (its allocated blocks lie)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            # posix_fallocate gives the full size at once; look for the first zero megabyte
            # from the end instead of trusting st_size.
            size = fh.tell()
            pos = size - (1 << 20)
            while pos > 0:
                fh.seek(pos)
                if fh.read(4096).strip(b"\0"):
                    return pos
                pos -= 1 << 20
    except FileNotFoundError:
        return 0
    return 0
