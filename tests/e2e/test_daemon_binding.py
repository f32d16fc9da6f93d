"""The daemon binds an enrolled camera at its first dock and checks the binding at every dock.

`dockagent run` with the `fake` source (what udev would announce: the camera's USB ids and
serial, and where its volume is mounted) and `bind_cameras = true`. The camera is a FAT32
image mounted writable with fusefat. After its first dock it carries DOCKAGENT.BND; a second
volume announced with the same USB serial and DEVICE.INF but without that binding (a clone of
the camera's identity, not of its volume) is refused by the daemon, recorded as a refusal,
and nothing of it is read into custody.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.devices.fake import write_event
from scripts.simulator.cameras import CameraSpec, build_image, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera
from tests.support.evidence import rows
from tests.support.volumes import mount_fat

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

SERIAL = "BND0001"


def _config(spool: Path) -> str:
    return (
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = true\n'
        "bind_cameras = true\n"
    )


def test_the_daemon_binds_a_camera_and_refuses_a_volume_without_its_binding(
    station: Station, tmp_path: Path
) -> None:
    spec = CameraSpec(serial=SERIAL, days=1, files_per_day=3, file_size=32 << 10)
    build_image(spec, tmp_path / "cam.img", "fat32")
    spool, point = tmp_path / "spool", tmp_path / "cam"
    point.mkdir()
    station.configure(_config(spool))
    assert station.run("devices", "enroll", SERIAL).returncode == 0
    clone = tmp_path / "clone"
    write_camera(spec, clone)  # the same DEVICE.INF, the same files, no binding
    with mount_fat(tmp_path / "cam.img", point, readonly=False):
        daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
        try:
            daemon.wait_event("daemon.started")
            dock_camera(spool, SERIAL, point)
            daemon.wait_event("device.bound", timeout=60, device_serial=SERIAL)
            daemon.wait_event("device.taken_in", timeout=60)
            assert (point / "DOCKAGENT.BND").read_text("ascii").startswith("dockagent-binding 1")
            write_event(spool, "undock", action="removed", key=f"usb-{SERIAL}")
            daemon.wait_event("device.removed", timeout=30)
            dock_camera(spool, SERIAL, clone, name="clone")
            refused = daemon.wait_event("device.refused", timeout=60)
            assert "binding DOCKAGENT.BND: missing" in refused["reason"]
        finally:
            assert daemon.stop() == 0
    (session,) = rows(station.data_dir, "SELECT * FROM sessions")
    assert session["identity_check"].endswith("binding written")
    (refusal,) = rows(station.data_dir, "SELECT * FROM refusals")
    assert refusal["source"] == "fake" and "missing" in refusal["reason"]
    held = rows(station.data_dir, "SELECT session_id FROM files")
    assert {r["session_id"] for r in held} == {session["id"]}
