"""Evidence sealed to the central key: `[custody] encrypt_to` (README "Evidence sealed to the
central key").

A real FAT32 camera (fusefat) and exFAT camera (exfat-fuse) are imported by a station that
encrypts every copy to a central age key as it copies it: no 272-byte run of any camera file is
anywhere in staging, Debian's `age -d` with the central identity gives back bytes whose SHA-256
is the camera's, the records name both hashes, and `verify` passes (and names a changed byte of
the ciphertext). The directory sink and a real tus server receive the ciphertext only, and
confirm it by its own hash. A recipient that is not an age key stops every command (exit 78).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scripts.simulator.cameras import CameraSpec, build_image, write_camera
from tests.conftest import Station
from tests.support.central_key import (
    camera_windows,
    central_identity,
    decrypt,
    encrypt_to,
    plaintext_runs,
    recipient_of,
)
from tests.support.evidence import rows, sha256_file
from tests.support.tus_servers import sync_config, tus_node_server
from tests.support.volumes import mount_exfat, mount_fat

MIB = 1 << 20
# Small files in batches and one 9 MiB recording (the large-file path when not encrypted).
SPEC = CameraSpec(days=1, files_per_day=5, file_size=160 * 1024, large_files=1, large_size=9 * MIB)
BASE = 'station_id = "SEALED"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'


def _doctor_line(station: Station) -> dict[str, Any]:
    """doctor's `encryption` line (its exit code is the machine's: no units are installed)."""
    proc = station.run("doctor", "--json")
    checks = {c["check"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["encryption"]["status"] == "green"
    return dict(checks["encryption"])


def _camera_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _import(station: Station, source: Path) -> dict[str, Any]:
    proc = station.run("import", str(source), "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout))


def _records(station: Station) -> dict[int, dict[str, Any]]:
    found = rows(station.data_dir, "SELECT file_id, body FROM records WHERE kind='file'")
    return {r["file_id"]: json.loads(r["body"]) for r in found}


def _assert_sealed_to(
    station: Station, identity: Path, expected: dict[bytes, str], windows: set[bytes]
) -> None:
    """Every camera file is held once, as age ciphertext that decrypts to the camera's bytes;
    staging holds no run of them; row and record name both hashes."""
    held = rows(station.data_dir)
    assert {bytes(r["camera_path"]): r["sha256"] for r in held} == expected
    records = _records(station)
    for row in held:
        staged = station.staging / row["staged_path"]
        assert row["state"] == "sealed", row
        assert staged.read_bytes().startswith(b"age-encryption.org/v1\n")
        assert sha256_file(staged) == row["stored_sha256"] != row["sha256"]
        assert staged.stat().st_size == row["stored_size"] > row["size"]
        assert hashlib.sha256(decrypt(staged, identity)).hexdigest() == row["sha256"]
        body = records[row["id"]]
        assert (body["sha256"], body["size"]) == (row["sha256"], row["size"])
        assert body["encryption"] == "age"
        assert (body["stored_sha256"], body["stored_size"]) == (
            row["stored_sha256"],
            row["stored_size"],
        )
    assert plaintext_runs(station.staging, windows) == []


@pytest.mark.fuse
@pytest.mark.usefixtures("fuse")
@pytest.mark.parametrize("fs", ["fat32", "exfat"])
def test_a_real_camera_is_staged_only_as_ciphertext_the_central_key_opens(
    station: Station, tmp_path: Path, fs: str
) -> None:
    identity = central_identity(tmp_path / "central.key")
    station.configure(BASE + encrypt_to(identity))
    image = tmp_path / "cam.img"
    manifest = build_image(replace(SPEC, serial=f"SEAL{fs.upper()}"), image, fs)  # type: ignore[arg-type]
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount = mount_fat if fs == "fat32" else mount_exfat
    with mount(image, mnt) as mounted:
        windows = camera_windows(_camera_files(mounted.path))
        summary = _import(station, mounted.path)
    assert summary["files_sealed"] == len(expected) and summary["problems"] == []
    assert len(windows) > 1000
    _assert_sealed_to(station, identity, expected, windows)
    # The station holds no key that decrypts: no age identity anywhere in its data directory.
    secret = identity.read_bytes().split(b"AGE-SECRET-KEY-")[1][:20]
    for path in (p for p in station.data_dir.rglob("*") if p.is_file()):
        content = path.read_bytes()
        assert b"AGE-SECRET-KEY" not in content and secret not in content, path
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    line = _doctor_line(station)
    assert line["detail"].startswith("encrypted to 1 recipient (age)")
    assert recipient_of(identity)[:12] in line["detail"]


def test_verify_names_a_changed_byte_of_the_ciphertext(station: Station, tmp_path: Path) -> None:
    identity = central_identity(tmp_path / "central.key")
    station.configure(BASE + encrypt_to(identity))
    write_camera(CameraSpec(serial="SEALVER", days=1, files_per_day=2), tmp_path / "cam")
    _import(station, tmp_path / "cam")
    victim = rows(station.data_dir, "SELECT * FROM files ORDER BY size DESC LIMIT 1")[0]
    staged = station.staging / victim["staged_path"]
    data = bytearray(staged.read_bytes())
    data[-100] ^= 1
    staged.write_bytes(bytes(data))
    proc = station.run("verify", "--json")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    problems = json.loads(proc.stdout)["problems"]
    assert [p["kind"] for p in problems] == ["changed_bytes"]
    assert victim["stored_sha256"] in json.dumps(problems)


def test_two_recipients_each_decrypt(station: Station, tmp_path: Path) -> None:
    first = central_identity(tmp_path / "central.key")
    second = central_identity(tmp_path / "backup.key")
    station.configure(BASE + encrypt_to(first, second))
    manifest = write_camera(CameraSpec(serial="SEALTWO", days=1, files_per_day=2), tmp_path / "c")
    _import(station, tmp_path / "c")
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    for row in rows(station.data_dir):
        staged = station.staging / row["staged_path"]
        for identity in (first, second):
            plain = decrypt(staged, identity)
            assert hashlib.sha256(plain).hexdigest() == expected[bytes(row["camera_path"])]
    line = _doctor_line(station)
    assert line["detail"].startswith("encrypted to 2 recipients (age)")


def test_the_directory_sink_receives_ciphertext_only(station: Station, tmp_path: Path) -> None:
    identity = central_identity(tmp_path / "central.key")
    sink = tmp_path / "sink"
    station.configure(
        BASE + f'[sync]\nkind = "directory"\ndirectory_root = "{sink}"\n' + encrypt_to(identity)
    )
    manifest = write_camera(replace(SPEC, serial="SEALDIR"), tmp_path / "cam")
    windows = camera_windows(_camera_files(tmp_path / "cam"))
    _import(station, tmp_path / "cam")
    # What is to be sent is the ciphertext: the queue counts its bytes, not the camera's.
    queue = json.loads(station.run("queue", "--json").stdout)["files"]
    stored = {r["id"]: r["stored_size"] for r in rows(station.data_dir)}
    assert queue and all(i["upload_total"] == stored[i["file_id"]] for i in queue)
    proc = station.run("sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    for row in rows(station.data_dir):
        assert row["state"] == "confirmed" and row["confirm_level"] == "verified", row
        archived = Path(row["sink_ref"])
        # Named and confirmed by the ciphertext's hash, which the sink re-read and hashed.
        assert archived.name.split(".")[0] == row["stored_sha256"] == sha256_file(archived)
        plain = decrypt(archived, identity)
        assert hashlib.sha256(plain).hexdigest() == expected[bytes(row["camera_path"])]
    assert plaintext_runs(sink, windows) == []
    confirmations = rows(station.data_dir, "SELECT body FROM records WHERE kind='confirmation'")
    for rec in confirmations:
        body = json.loads(rec["body"])
        assert body["sha256"] in expected.values() and body["stored_sha256"] != body["sha256"]
    assert station.run("verify").returncode == 0


def test_a_tus_server_receives_ciphertext_only_and_checks_its_hash(
    station: Station, tmp_path: Path
) -> None:
    identity = central_identity(tmp_path / "central.key")
    manifest = write_camera(replace(SPEC, serial="SEALTUS"), tmp_path / "cam")
    windows = camera_windows(_camera_files(tmp_path / "cam"))
    expected = {e.rel_path: e.sha256 for e in manifest.entries}
    with tus_node_server(tmp_path / "tus") as server:
        station.configure(sync_config(server.endpoint) + encrypt_to(identity))
        _import(station, tmp_path / "cam")
        proc = station.run("sync", "--once")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for row in rows(station.data_dir):
            # The server answered the sha-512 of what it holds: the ciphertext's.
            assert row["state"] == "confirmed" and row["confirm_level"] == "verified", row
            url = row["sink_ref"]
            assert server.stored_sha256(url) == row["stored_sha256"]
            metadata = server.stored_metadata(url)
            assert metadata["sha256"] == row["stored_sha256"]
            plain = decrypt(server.stored_path(url), identity)
            assert hashlib.sha256(plain).hexdigest() == expected[bytes(row["camera_path"])]
        assert plaintext_runs(server.store_dir, windows) == []


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('["age1notakey"]', "is not a valid age X25519 recipient"),
        ('["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"]', "is not an age X25519 recipient"),
        ('"age1x"', "must be a list of strings"),
    ],
)
def test_a_recipient_that_is_not_an_age_key_is_a_configuration_error(
    station: Station, value: str, shown: str
) -> None:
    station.configure(BASE + f"[custody]\nencrypt_to = {value}\n")
    proc = station.run("status")
    assert proc.returncode == 78, proc.stdout + proc.stderr
    assert "encrypt_to" in proc.stderr and shown in proc.stderr


def test_rebuild_restores_the_ciphertext_hashes_from_the_signed_sidecars(
    station: Station, tmp_path: Path
) -> None:
    identity = central_identity(tmp_path / "central.key")
    sink = tmp_path / "sink"
    station.configure(
        BASE + f'[sync]\nkind = "directory"\ndirectory_root = "{sink}"\n' + encrypt_to(identity)
    )
    write_camera(CameraSpec(serial="SEALREB", days=1, files_per_day=3), tmp_path / "cam")
    _import(station, tmp_path / "cam")
    before = {r["id"]: (r["stored_sha256"], r["stored_size"]) for r in rows(station.data_dir)}
    assert all(sha for sha, _ in before.values())
    (station.data_dir / "dockagent.db").write_bytes(b"\0" * 4096)  # a damaged header
    assert station.run("status").returncode == 65
    proc = station.run("rebuild")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = {r["id"]: (r["stored_sha256"], r["stored_size"]) for r in rows(station.data_dir)}
    assert after == before
    assert station.run("verify").returncode == 0
    # The rebuilt queue uploads the ciphertext, confirmed by its own hash.
    proc = station.run("sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for row in rows(station.data_dir):
        assert row["state"] == "confirmed"
        assert sha256_file(Path(row["sink_ref"])) == row["stored_sha256"]
