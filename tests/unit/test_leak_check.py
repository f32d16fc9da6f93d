"""The leak check after the suite can fail: each kind of leak it must find, it finds."""

from __future__ import annotations

import base64
import os
import random
import shutil
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support import leak_check


def _station(root: Path) -> tuple[Path, bytes, bytes]:
    data = root / "st" / "data"
    staged = data / "staging" / "CAM1" / "2026"
    staged.mkdir(parents=True, mode=0o700)
    for p in (data / "staging", data / "staging" / "CAM1", staged):
        p.chmod(0o700)
    (data / "dockagent.db").write_bytes(b"")
    content = random.Random(7).randbytes(4096)
    video = staged / "a.mp4"
    video.write_bytes(content)
    video.chmod(0o600)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (data / "station.key").write_bytes(pem)
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return data, content, raw


def _run(root: Path, tmp: Path) -> int:
    marker = root / ".started"
    marker.touch()
    os.utime(marker, (0, 0))
    try:
        return leak_check.main(
            ["--root", str(root), "--since-file", str(marker), "--tmp", str(tmp)]
        )
    finally:
        # The leaks planted here must not be found again by the leak check after the suite.
        shutil.rmtree(root)
        shutil.rmtree(tmp)


def test_a_clean_tree_passes(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    root, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    _station(root)
    (root / "st" / "cli.log").write_text('{"event": "file.sealed", "sha256": "ab"}\n')
    assert _run(root, tmp) == 0, capsys.readouterr().out


def test_recording_bytes_in_a_log_raw_hex_or_base64_are_found(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    root, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    _, content, _ = _station(root)
    piece = content[1001:1401]
    for i, form in enumerate((piece, piece.hex().encode(), base64.b64encode(piece[3:]))):
        (root / "st" / f"daemon{i}.log").write_bytes(b'{"x": "' + form + b'"}\n')
    assert _run(root, tmp) == 1
    out = capsys.readouterr().out
    assert "daemon0.log: recording bytes" in out
    assert "daemon1.log: recording bytes, encoded" in out
    assert "daemon2.log: recording bytes, encoded" in out


def test_key_material_in_a_log_is_found(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    root, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    _, _, raw = _station(root)
    (root / "st" / "cli.log").write_text(f"key {raw.hex()}\n")
    assert _run(root, tmp) == 1
    assert "key material" in capsys.readouterr().out


def test_open_staging_modes_and_evidence_in_tmp_are_found(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    root, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    data, content, _ = _station(root)
    (root / "st" / "cli.log").write_text("ok\n")
    (data / "staging" / "CAM1" / "2026" / "a.mp4").chmod(0o644)
    # What the group may pass and read is not a problem; the same mode on evidence is.
    (data / "staging").chmod(0o710)
    (data / "staging" / "CAM1").chmod(0o710)
    (tmp / "stray.bin").write_bytes(b"header" + content[200:600])
    assert _run(root, tmp) == 1
    out = capsys.readouterr().out
    assert "a.mp4 is 644: staging must be private" in out
    assert "CAM1 is 710: staging must be private" in out
    assert f"{data / 'staging'} is" not in out
    assert "stray.bin: recording bytes under" in out


def test_the_header_of_copies_sealed_to_the_central_key_is_not_content(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """Every age file starts with the same line: another sealed copy (a `.log` of the camera's,
    staged as ciphertext) is no leak for it; the sealed payload still is one."""
    root, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    data, _, _ = _station(root)
    header = b"age-encryption.org/v1\n-> X25519 c2hhcmU\nd3JhcHBlZA\n--- bWFj\n"
    payload = random.Random(8).randbytes(2048)
    sealed = data / "staging" / "CAM1" / "2026" / "b.mp4"
    sealed.write_bytes(header + payload)
    sealed.chmod(0o600)
    other = data / "staging" / "CAM1" / "2026" / "c.log"
    other.write_bytes(header.replace(b"c2hhcmU", b"b3RoZXI") + random.Random(9).randbytes(900))
    other.chmod(0o600)
    (root / "st" / "daemon.log").write_bytes(b'{"x": "' + payload[300:700] + b'"}\n')
    assert _run(root, tmp) == 1
    out = capsys.readouterr().out
    assert "daemon.log: recording bytes" in out
    assert "c.log" not in out
