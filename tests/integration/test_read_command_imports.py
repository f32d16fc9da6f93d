"""What the commands that only look import: none of the libraries that writing, uploading,
time-stamping, drawing progress bars or rendering tracebacks need.

Each of those cost `status`, `queue`, `ledger`, `report` and `doctor` tens of milliseconds at
every start, whatever they then read (README "Start-up", under "Benchmarks"). Held here without timing, from the
interpreter's own list of what each run imported (PYTHONPROFILEIMPORTTIME, as `python -X
importtime`), on a station that holds evidence.
"""

from __future__ import annotations

import base64
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station

# Libraries a command that only looks never needs: rich and pygments (progress bars, structlog's
# tracebacks), requests and urllib3 (uploads), sqlite-utils and what it pulls (writes and
# migrations), rfc3161-client and x509 (asking for and checking tokens), asyncio (structlog's
# stdlib module, loaded only when something is logged), pyudev and watchdog (the daemon).
LIBRARIES = (
    "rich",
    "pygments",
    "requests",
    "urllib3",
    "sqlite_utils",
    "click",
    "dateutil",
    "structlog",
    "asyncio",
    "rfc3161_client",
    "cryptography.x509",
    "pyudev",
    "watchdog",
    "uvicorn",
    "starlette",
)
# The agent's own modules of writers and of the daemon.
WRITERS = (
    "agent.custody.recovery",
    "agent.ingest.session",
    "agent.ingest.offload",
    "agent.runtime.daemon",
    "agent.runtime.lock",
    "agent.sync.pool",
    "agent.sync.tus_client",
)
# Reading station.pub needs no key format of cryptography's (the private key does).
KEY_FORMATS = "cryptography.hazmat.primitives.serialization"


def _imported(stderr: str) -> set[str]:
    """The modules a run imported, from its `import time: self | cumulative | name` lines."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Station:
    root = tmp_path_factory.mktemp("reads")
    station = Station(root / "station")
    station.root.mkdir()
    station.configure(
        'station_id = "READS"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
    )
    camera = root / "cam"
    write_camera(CameraSpec(serial="READ001", days=1, files_per_day=3), camera)
    proc = station.run("import", str(camera))
    assert proc.returncode == 0, proc.stderr
    return station


TODAY = datetime.now(UTC).date().isoformat()


def _pem_around(der: bytes) -> bytes:
    """A PEM "PUBLIC KEY" around any DER: what a hand-edited station.pub may hold."""
    body = base64.b64encode(b"\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00" + der)
    return b"-----BEGIN PUBLIC KEY-----\n" + body + b"\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("status", "--json"),
        ("queue",),
        ("ledger",),
        ("ledger", "--since", TODAY),
        ("report", "compliance", "--since", TODAY),
        ("doctor",),
    ],
    ids=" ".join,
)
def test_a_command_that_only_looks_imports_no_writer_library(
    held: Station, command: tuple[str, ...]
) -> None:
    proc = held.run(*command, PYTHONPROFILEIMPORTTIME="1")
    # doctor exits 1 or 2 where a check is yellow or red (no server, the clock unknown here).
    assert proc.returncode in ((0, 1, 2) if command[0] == "doctor" else (0,)), proc.stderr
    if command[0] == "status":
        assert "READ001" in proc.stdout  # the camera the station took in
    imported = _imported(proc.stderr)
    assert "agent.store" in imported  # the list is the run's own, which read the store
    forbidden = set(LIBRARIES) | set(WRITERS)
    if command[0] != "doctor":  # doctor checks the private key itself
        forbidden.add(KEY_FORMATS)
    assert sorted(imported & forbidden) == []


def test_the_public_key_read_without_key_formats_is_the_one_cryptography_reads(
    tmp_path: Path,
) -> None:
    """station.pub is parsed by the agent's own reading of an Ed25519 SubjectPublicKeyInfo
    (agent.custody.keys); any other PEM goes to cryptography, which names what is wrong."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.core.errors import StationKeyError
    from agent.custody import keys

    key = keys.load_or_create(tmp_path / "station.key")
    public = keys.load_public(tmp_path / keys.PUBLIC_NAME)
    assert public.key_id == key.key_id
    assert public.public.public_bytes_raw() == key.public.public_bytes_raw()
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "ec.pub").write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(StationKeyError, match="is not an Ed25519 key"):
        keys.load_public(tmp_path / "ec.pub")
    (tmp_path / "bad.pub").write_bytes(
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(StationKeyError, match="is not a readable PEM public key"):
        keys.load_public(tmp_path / "bad.pub")


@given(st.binary(max_size=200) | st.builds(_pem_around, st.binary(max_size=60)))
@settings(max_examples=200, deadline=None)
def test_a_station_pub_of_any_bytes_is_a_key_or_a_station_key_error(data: bytes) -> None:
    from agent.core.errors import StationKeyError
    from agent.custody import keys

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / keys.PUBLIC_NAME
        path.write_bytes(data)
        try:
            public = keys.load_public(path)
        except StationKeyError:
            return
        assert len(public.public.public_bytes_raw()) == 32
