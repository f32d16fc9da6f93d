"""`dockagent doctor`: each fault injected turns its own check red, with a fix that says what to do.

A healthy station first (real import, key, database, synchronised clock injected), then one
fault at a time: a key readable by others, a damaged database, staging on a full tmpfs, an
unsynchronised station clock, a central server that is down or presents a certificate from
another CA; and yellow for recent refusals, red for a file unconfirmed for days. The exit code
is the worst check: 0 green, 1 yellow, 2 red.
"""

from __future__ import annotations

import json
import os
import sqlite3
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.tus_servers import free_port
from tests.support.volumes import tmpfs

SYNCED = {"DOCKAGENT_TEST_STATION_CLOCK": "synced"}


def doctor(station: Station, *args: str, **env: str) -> tuple[int, dict[str, dict[str, str]]]:
    proc = station.run("doctor", "--json", *args, **{**SYNCED, **env})
    assert proc.returncode in (0, 1, 2), proc.stderr
    data = json.loads(proc.stdout)
    assert data["exit_code"] == proc.returncode
    return proc.returncode, {c["check"]: c for c in data["checks"]}


def _imported(station: Station, tmp_path: Path, config: str = "") -> None:
    station.configure(
        'station_id = "DOC"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        + config
    )
    camera = tmp_path / "cam"
    write_camera(CameraSpec(serial="DOC001", days=1, files_per_day=3), camera)
    proc = station.run("import", str(camera))
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def healthy(station: Station, tmp_path: Path) -> Station:
    _imported(station, tmp_path)
    return station


def test_a_healthy_station_is_green_where_it_can_be(healthy: Station) -> None:
    code, checks = doctor(healthy)
    for name in ("config", "key", "database", "staging", "clock", "server", "refusals"):
        assert checks[name]["status"] == "green", checks[name]
    assert checks["unconfirmed"]["status"] == "green"
    assert "DOC001" in checks["unconfirmed"]["detail"]
    assert checks["confirmations"]["status"] == "green"
    # No TSA configured: said, not judged (README "Trusted time").
    assert checks["timestamps"]["status"] == "green"
    assert checks["timestamps"]["detail"].startswith("off ([custody] tsa_url is not set)")
    # No central key configured: the copies are the camera's bytes, and doctor says so.
    assert checks["encryption"]["status"] == "green"
    assert checks["encryption"]["detail"].startswith("not encrypted")
    # Units are not installed in the test machine's / and systemd is not PID 1 here.
    assert checks["install"]["status"] == "red"
    assert "scripts/install" in checks["install"]["fix"]
    assert checks["service"]["status"] == "yellow"
    assert code == 2
    text = healthy.run("doctor", **SYNCED)
    lines = text.stdout.splitlines()
    assert len(lines) == len(checks) + 1  # one line per check, and the summary
    assert lines[0].startswith("GREEN  config")
    assert any(line.startswith("RED    install") and " -- fix: " in line for line in lines)
    assert lines[-1] == "doctor: 1 red, 1 yellow, 11 green (exit 2)"


def test_a_key_readable_by_others_is_red_with_chmod(healthy: Station) -> None:
    key = healthy.data_dir / "station.key"
    os.chmod(key, 0o644)
    code, checks = doctor(healthy)
    assert checks["key"]["status"] == "red"
    assert "mode 0644" in checks["key"]["detail"]
    assert checks["key"]["fix"] == f"chmod 600 {key}"
    assert checks["config"]["status"] == "green"  # judged apart: the other checks still run
    assert checks["database"]["status"] == "green"
    assert code == 2


def test_a_damaged_database_is_red_with_how_to_restore(healthy: Station) -> None:
    db = healthy.data_dir / "dockagent.db"
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    page = 4096
    data = bytearray(db.read_bytes())
    assert len(data) > 4 * page
    for offset in range(2 * page, len(data), page):  # every page but the first two
        data[offset + 16 : offset + 400] = b"\xa5" * 384
    db.write_bytes(bytes(data))
    code, checks = doctor(healthy)
    assert checks["database"]["status"] == "red"
    assert "damaged" in checks["database"]["detail"] or "malformed" in checks["database"]["detail"]
    assert "restore dockagent.db from backup" in checks["database"]["fix"]
    assert checks["unconfirmed"]["status"] == "yellow"
    assert "not checked" in checks["unconfirmed"]["detail"]
    assert code == 2


def test_staging_below_its_reserve_is_red(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "station", 4 << 20):
        station = Station(tmp_path / "station")
        station.configure('station_id = "FULL"\n[storage]\nreserve_bytes = 8388608\n')
        assert station.run("key", "show").returncode == 0
        code, checks = doctor(station)
    assert checks["staging"]["status"] == "red"
    assert "reserve 8.0 MiB" in checks["staging"]["detail"]
    assert "imports copy nothing" in checks["staging"]["detail"]
    assert "free space" in checks["staging"]["fix"]
    assert code == 2


def test_an_unsynchronised_station_clock_is_red(healthy: Station) -> None:
    _, checks = doctor(healthy, DOCKAGENT_TEST_STATION_CLOCK="unsynced")
    assert checks["clock"]["status"] == "red"
    assert "not synchronised" in checks["clock"]["detail"]
    assert "timedatectl set-ntp true" in checks["clock"]["fix"]


# ---- the central server --------------------------------------------------------------------


class _TusOptions(BaseHTTPRequestHandler):
    """Just enough of a tus 1.0.0 server for OPTIONS (tus 1.0.0 "OPTIONS")."""

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Tus-Resumable", "1.0.0")
        self.send_header("Tus-Version", "1.0.0")
        self.send_header("Tus-Extension", "creation,termination,checksum,expiration")
        self.send_header("Tus-Checksum-Algorithm", "sha1,sha256")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


class _TusWithoutChecksums(_TusOptions):
    """A tus server that offers creation and no checksum: it can confirm `complete` only."""

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self.send_header("Tus-Resumable", "1.0.0")
        self.send_header("Tus-Version", "1.0.0")
        self.send_header("Tus-Extension", "creation,termination")
        self.end_headers()


@contextmanager
def _tls_server(
    cert: trustme.LeafCert, handler: type[BaseHTTPRequestHandler] = _TusOptions
) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/files/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _tus_station(
    station: Station, tmp_path: Path, endpoint: str, ca: trustme.CA, level: str = "checksummed"
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(ca.cert_pem.bytes())
    _imported(
        station,
        tmp_path,
        f'[sync]\nkind = "tus"\nendpoint = "{endpoint}"\nca_bundle = "{bundle}"\n'
        f'confirm_level = "{level}"\nconnect_timeout_s = 3\nread_timeout_s = 3\n',
    )


def test_a_reachable_server_with_valid_tls_lists_its_extensions(
    station: Station, tmp_path: Path
) -> None:
    ca = trustme.CA()
    with _tls_server(ca.issue_cert("localhost", "127.0.0.1")) as endpoint:
        _tus_station(station, tmp_path, endpoint, ca)
        _, checks = doctor(station)
    server = checks["server"]
    assert server["status"] == "green", server
    assert "TLS verified, tus 1.0.0" in server["detail"]
    assert "extensions: checksum, creation, expiration, termination" in server["detail"]
    assert "checksums: sha1, sha256" in server["detail"]


def test_a_server_certified_by_another_ca_is_red(station: Station, tmp_path: Path) -> None:
    trusted, rogue = trustme.CA(), trustme.CA()
    with _tls_server(rogue.issue_cert("localhost", "127.0.0.1")) as endpoint:
        _tus_station(station, tmp_path, endpoint, trusted)
        code, checks = doctor(station)
    server = checks["server"]
    assert server["status"] == "red"
    assert server["detail"].startswith("TLS with localhost:")
    assert "certificate" in server["detail"].lower()
    assert "ca_bundle" in server["fix"]
    assert code == 2


def test_an_unreachable_server_is_red(station: Station, tmp_path: Path) -> None:
    endpoint = f"https://localhost:{free_port()}/files/"  # nothing listens there
    _tus_station(station, tmp_path, endpoint, trustme.CA())
    _, checks = doctor(station)
    server = checks["server"]
    assert server["status"] == "red"
    assert f"{endpoint} is unreachable" in server["detail"]
    assert "network" in server["fix"]


@pytest.mark.parametrize(
    ("level", "status", "said"),
    [
        ("checksummed", "red", "confirm_level checksummed needs sha256 checksums"),
        ("verified", "yellow", "no upload has shown yet"),
        ("complete", "green", "extensions: creation, termination; checksums: none"),
    ],
)
def test_a_server_that_cannot_reach_confirm_level_is_said_before_any_upload(
    station: Station, tmp_path: Path, level: str, status: str, said: str
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    with _tls_server(cert, _TusWithoutChecksums) as endpoint:
        _tus_station(station, tmp_path, endpoint, ca, level)
        _, checks = doctor(station)
    assert rows(station.data_dir, "SELECT id FROM files WHERE upload_url IS NOT NULL") == []
    server = checks["server"]
    assert server["status"] == status, server
    assert said in server["detail"]
    if status != "green":
        assert "confirm_level = 'complete'" in server["fix"]


def test_wiping_on_a_second_copy_on_the_staging_disk_is_red(
    station: Station, tmp_path: Path
) -> None:
    # The shipped defaults: wipe_policy after_confirm, the directory sink below the data dir.
    station.configure('station_id = "DOC"\n[storage]\nreserve_bytes = 0\n')
    assert station.run("key", "show").returncode == 0
    code, checks = doctor(station)
    server = checks["server"]
    assert server["status"] == "red", server
    assert "on the same file system as staging" in server["detail"]
    assert "wipe_policy after_confirm" in server["detail"]
    assert "directory_root" in server["fix"]
    assert code == 2
    # The sink on a disk of its own (a tmpfs here, standing in for the evidence share).
    with tmpfs(tmp_path / "evidence", 1 << 20) as share:
        station.configure(
            'station_id = "DOC"\n[storage]\nreserve_bytes = 0\n'
            f'[sync]\ndirectory_root = "{share}"\n'
        )
        _, checks = doctor(station)
    assert checks["server"]["status"] == "green", checks["server"]
    assert checks["server"]["detail"] == f"directory sink {share} is writable"


# ---- refusals and unconfirmed files --------------------------------------------------------


def test_recent_refusals_are_yellow_and_days_old_unconfirmed_files_red(
    station: Station, tmp_path: Path
) -> None:
    _imported(station, tmp_path)
    station.configure(
        'station_id = "DOC"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        "[devices]\nrequire_enrollment = true\n"
    )
    stranger = tmp_path / "stranger"
    write_camera(CameraSpec(serial="STRANGER9", days=1, files_per_day=1), stranger)
    assert station.run("import", str(stranger)).returncode != 0  # not enrolled: refused
    code, checks = doctor(station)
    assert checks["refusals"]["status"] == "yellow"
    assert "1 device(s) refused in the last 24 h" in checks["refusals"]["detail"]
    assert "dockagent devices enroll SERIAL" in checks["refusals"]["fix"]
    assert code == 2  # (install is red on a test machine)

    oldest = min(r["discovered_at"] for r in rows(station.data_dir))
    aged = "2000-01-01T00:00:00.000+00:00"
    conn = sqlite3.connect(station.data_dir / "dockagent.db")
    with conn:
        conn.execute("UPDATE files SET discovered_at=? WHERE discovered_at=?", (aged, oldest))
    conn.close()
    _, checks = doctor(station)
    assert checks["unconfirmed"]["status"] == "red"
    assert "h ago" in checks["unconfirmed"]["detail"]
    assert "dockagent queue" in checks["unconfirmed"]["fix"]
