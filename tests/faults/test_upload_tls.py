"""TLS between the agent and the central server: verified always, mutual when configured.

Certificates are made here with trustme and explicit dates; the fault proxy terminates TLS in
front of a real @tus/server. An expired server certificate, a wrong host name, an unknown CA, a
missing or a rogue client certificate: nothing is confirmed, purged or wiped, and each file is
kept for a later attempt (a certificate problem is the server's or the configuration's, not the
file's). With the right certificates, mutual TLS and a bearer token, the queue drains; the token
never appears in the logs.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.fault_proxy import FaultProxy
from tests.support.tus_servers import TusServer, sync_config

NOW = datetime.now(UTC).replace(microsecond=0)
TOKEN = "s3cret-bearer-token-do-not-log"
SPEC = CameraSpec(serial="TLS01", days=1, files_per_day=2, file_size=200_000, other_files=0)


@dataclass
class Pki:
    dir: Path
    ca: trustme.CA
    client_ca: trustme.CA

    def write(self, name: str, data: bytes) -> str:
        path = self.dir / name
        path.write_bytes(data)
        os.chmod(path, 0o600)
        return str(path)

    def server_context(self, cert: trustme.LeafCert, *, mutual: bool = True) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(ctx)
        if mutual:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.client_ca.configure_trust(ctx)
        return ctx

    def agent_settings(self, client: trustme.LeafCert | None) -> dict[str, object]:
        settings: dict[str, object] = {
            "ca_bundle": self.write("ca.pem", self.ca.cert_pem.bytes()),
            "bearer_token_file": self.write("token", TOKEN.encode() + b"\n"),
        }
        if client is not None:
            chain = b"".join(blob.bytes() for blob in client.cert_chain_pems)
            settings["client_cert"] = self.write("client.pem", chain)
            settings["client_key"] = self.write("client.key", client.private_key_pem.bytes())
        return settings


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    (tmp_path / "pki").mkdir()
    return Pki(tmp_path / "pki", trustme.CA(), trustme.CA())


def _valid(pki: Pki) -> trustme.LeafCert:
    return pki.ca.issue_cert(
        "127.0.0.1", not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=30)
    )


def _client(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert(
        "station-01.dockagent.test",
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=30),
    )


def _faulty(pki: Pki, case: str) -> tuple[ssl.SSLContext, trustme.LeafCert | None]:
    client = _client(pki.client_ca)
    if case == "expired-server-cert":
        cert = pki.ca.issue_cert(
            "127.0.0.1", not_before=NOW - timedelta(days=60), not_after=NOW - timedelta(days=1)
        )
        return pki.server_context(cert), client
    if case == "wrong-host-name":
        cert = pki.ca.issue_cert(
            "evidence.example.org",
            not_before=NOW - timedelta(days=1),
            not_after=NOW + timedelta(days=30),
        )
        return pki.server_context(cert), client
    if case == "unknown-ca":
        stranger = trustme.CA().issue_cert(
            "127.0.0.1", not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=30)
        )
        return pki.server_context(stranger), client
    if case == "missing-client-cert":
        return pki.server_context(_valid(pki)), None
    if case == "rogue-client-cert":
        return pki.server_context(_valid(pki)), _client(trustme.CA())
    raise AssertionError(case)


CASES = [
    "expired-server-cert",
    "wrong-host-name",
    "unknown-ca",
    "missing-client-cert",
    "rogue-client-cert",
]


@pytest.mark.parametrize("case", CASES)
def test_tls_fault_confirms_nothing_and_drains_once_fixed(
    station: Station, server: TusServer, pki: Pki, tmp_path: Path, case: str
) -> None:
    write_camera(SPEC, tmp_path / "cam")
    context, client = _faulty(pki, case)
    common = {"confirm_level": "verified", "retry_attempts": 2, "purge_grace_s": 0}
    with FaultProxy(server.port, tls=context, require_token=TOKEN) as bad:
        station.configure(
            sync_config(
                bad.endpoint, wipe_policy="after_confirm", **common, **pki.agent_settings(client)
            )
        )
        assert station.run("import", str(tmp_path / "cam")).returncode == 0
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 75, proc.stdout + proc.stderr
        report = json.loads(proc.stdout)
        assert not report["confirmed"] and not report["held"]
        assert not [e for e in bad.exchanges if e.method in ("POST", "PATCH")]
        for row in rows(station.data_dir):
            assert row["state"] == "sealed" and row["next_attempt_at"], row
            assert (station.staging / str(row["staged_path"])).exists()
        if case in ("expired-server-cert", "wrong-host-name", "unknown-ca"):
            assert all("TLS" in r["last_error"] for r in rows(station.data_dir))
        assert TOKEN not in proc.stdout + proc.stderr
        again = station.run("import", str(tmp_path / "cam"), "--json")
        assert json.loads(again.stdout)["wipe"]["state"] == "not wiped"

    with FaultProxy(server.port, tls=pki.server_context(_valid(pki)), require_token=TOKEN) as good:
        station.configure(
            sync_config(
                good.endpoint,
                wipe_policy="after_confirm",
                **common,
                **pki.agent_settings(_client(pki.client_ca)),
            )
        )
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert good.tls_failures == 0
        assert set(good.tokens_seen) == {f"Bearer {TOKEN}"}
        assert TOKEN not in proc.stdout + proc.stderr
    for row in rows(station.data_dir):
        assert row["state"] == "confirmed" and row["sink_ref"].startswith("https://127.0.0.1:")
        assert server.plain_sha256(str(row["sink_ref"]), station.identity) == row["sha256"]
