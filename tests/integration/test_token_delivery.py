"""RFC 3161 tokens carried to every sink with the records (README "Trusted time").

A real TSA (`openssl ts -reply` on loopback, tests/support/tsa_server.py) stamps the chain after
each import; the station has two sinks, a NAS directory and a central @tus/server on loopback,
which is down when the tokens are made. Each sink ends up holding every token byte for byte,
with what it covers, and the central side checks each one with `openssl ts -verify` against the
chain head hash sent beside it, without dockagent; a token is sent to a sink once.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.tsa_server import Authority, TsaServer
from tests.support.tus_servers import TusServer, free_port, tus_node_server

EX_TEMPFAIL = 75


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "tsa", "Central")


@pytest.fixture
def tsa(authority: Authority) -> Iterator[TsaServer]:
    with TsaServer(authority) as server:
        yield server


def _config(nas: Path, endpoint: str, tsa: TsaServer, anchor: Path) -> str:
    return (
        'station_id = "TEST-STATION"\n[storage]\nreserve_bytes = 0\n'
        '[sync]\nheld_when = ["nas"]\npurge_grace_s = 3600\n'
        f'[[sync.sinks]]\nname = "nas"\nkind = "directory"\ndirectory_root = "{nas}"\n'
        f'[[sync.sinks]]\nname = "central"\nkind = "tus"\nendpoint = "{endpoint}"\n'
        f'[custody]\ntsa_url = "{tsa.url}"\ntsa_trust_anchor = "{anchor}"\n'
    )


def _import(station: Station, tmp_path: Path, serial: str) -> int:
    cam = tmp_path / serial
    spec = CameraSpec(serial=serial, days=1, files_per_day=2, file_size=4096, other_files=0)
    write_camera(spec, cam)
    proc = station.run("import", str(cam), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seq = json.loads(proc.stdout)["tsa_token_seq"]
    assert isinstance(seq, int)
    return seq


def _verifies(token: Path, digest: str, anchor: Path) -> bool:
    """What the central side runs on what it received: openssl ts -verify, no dockagent."""
    check = subprocess.run(
        ["openssl", "ts", "-verify", "-digest", digest, "-in", str(token), "-CAfile", str(anchor)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return check.returncode == 0 and "Verification: OK" in check.stdout


def _central_tokens(server: TusServer) -> dict[int, tuple[bytes, dict[str, str]]]:
    """The token uploads the tus server stored: chain head seq -> (bytes, metadata)."""
    found: dict[int, tuple[bytes, dict[str, str]]] = {}
    for info in server.store_dir.glob("*.json"):
        meta = json.loads(info.read_text())["metadata"]
        if meta.get("kind") == "tsa_token":
            seq = int(meta["chain_head_seq"])
            assert seq not in found, f"token {seq} stored twice"
            found[seq] = (info.with_suffix("").read_bytes(), meta)
    return found


def _hash(station: Station, seq: int) -> str:
    return str(
        rows(station.data_dir, "SELECT record_hash FROM records WHERE seq=?", (seq,))[0][
            "record_hash"
        ]
    )


def test_every_sink_gets_every_token_once_and_a_sink_down_gets_them_when_back(
    station: Station, tsa: TsaServer, authority: Authority, tmp_path: Path
) -> None:
    nas, port = tmp_path / "nas", free_port()
    # The central server's port held bound but not listening while it is down: connections are
    # refused, and no other server on this machine can take the port meanwhile.
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", port))
    station.configure(_config(nas, f"http://127.0.0.1:{port}/files", tsa, authority.ca))
    seqs = [_import(station, tmp_path, "TOKCAM01"), _import(station, tmp_path, "TOKCAM02")]
    kept = {s: (station.staging / "_chain" / "tsa" / f"{s:010d}.tsr").read_bytes() for s in seqs}

    # The central server is down: the NAS gets each token, the central server waits for them.
    proc = station.run("sync", "--once", "--json")
    assert proc.returncode == EX_TEMPFAIL, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["tokens"] == {"nas": {"delivered": 2}, "central": {"waiting": 2}}
    assert "central" in report["tokens_failed"]
    assert station.json("status")["trusted_time"]["undelivered"] == {"central": 2}
    for seq in seqs:
        token = nas / "TEST-STATION" / "tokens" / f"{seq:010d}.tsr"
        assert token.read_bytes() == kept[seq]
        sidecar = json.loads(token.with_suffix(".json").read_text())
        assert sidecar["chain_head_hash"] == _hash(station, seq)
        assert (sidecar["covers_first_seq"], sidecar["covers_last_seq"]) == ("1", str(seq))
        assert _verifies(token, sidecar["chain_head_hash"], authority.ca)
    first_sidecar = json.loads(
        (nas / "TEST-STATION" / "tokens" / f"{seqs[0]:010d}.json").read_text()
    )
    assert first_sidecar["first_new_seq"] == "1"
    # No dot file left behind: each was written under a temp name and renamed.
    assert sorted(p.name for p in (nas / "TEST-STATION" / "tokens").iterdir()) == sorted(
        f"{s:010d}.{ext}" for s in seqs for ext in ("json", "tsr")
    )

    # The central server comes back: it gets both tokens, each once, byte for byte.
    holder.close()
    with tus_node_server(tmp_path / "central", port=port) as server:
        proc = station.run("sync", "--once", "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout)["tokens"]["central"] == {"delivered": 2}
        again = station.run("sync", "--once", "--json")
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads(again.stdout)["tokens_delivered"] == {}
        central = _central_tokens(server)
    assert station.json("status")["trusted_time"]["undelivered"] == {}
    assert sorted(central) == seqs
    for seq, (data, meta) in central.items():
        assert data == kept[seq]
        assert meta["filetype"] == "application/timestamp-reply"
        assert meta["filename"] == f"TEST-STATION-{seq:010d}.tsr"
        assert meta["chain_head_hash"] == _hash(station, seq)
        head = json.loads(base64.b64decode(meta["custody_record"]))
        assert head["record_hash"] == meta["chain_head_hash"]
        stored = tmp_path / f"central-{seq}.tsr"
        stored.write_bytes(data)
        assert _verifies(stored, meta["chain_head_hash"], authority.ca)
    # A token over another record does not verify against this head: the check is real.
    assert not _verifies(tmp_path / f"central-{seqs[0]}.tsr", _hash(station, seqs[1]), authority.ca)
