"""The daemon time-stamps the chain head when a dock session ends (README "Trusted time"):
`dockagent run` with the `fake` source, a camera directory docked, a real TSA (`openssl ts
-reply` on loopback, tests/support/tsa_server.py)."""

from __future__ import annotations

from pathlib import Path

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera
from tests.support.evidence import rows
from tests.support.tsa_server import Authority, TsaServer

SERIAL = "TSA0001"


def test_the_daemon_stamps_the_chain_head_after_a_dock_session(
    station: Station, tmp_path: Path
) -> None:
    authority = Authority(tmp_path / "tsa", "Alpha")
    spool, cam = tmp_path / "spool", tmp_path / "cam"
    write_camera(CameraSpec(serial=SERIAL, days=1, files_per_day=2, file_size=4096), cam)
    with TsaServer(authority) as tsa:
        station.configure(
            'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
            f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
            f'[custody]\ntsa_url = "{tsa.url}"\ntsa_trust_anchor = "{authority.ca}"\n'
        )
        daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
        try:
            daemon.wait_event("daemon.started")
            dock_camera(spool, SERIAL, cam)
            taken = daemon.wait_event("device.taken_in", timeout=60)
            stamped = daemon.wait_event("tsa.stamped", timeout=30)
        finally:
            assert daemon.stop() == 0
    sealed = rows(
        station.data_dir,
        "SELECT MAX(seq) AS seq FROM records WHERE kind='file' AND file_id IN "
        "(SELECT id FROM files WHERE session_id=?)",
        (taken["session_id"],),
    )[0]["seq"]
    # The token covers the whole session: taken at or after its last sealed record.
    assert stamped["seq"] >= sealed
    token = station.staging / "_chain" / "tsa" / f"{stamped['seq']:010d}.tsr"
    assert token.is_file()
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout
    assert f"covers records 1-{stamped['seq']}" in verify.stdout
