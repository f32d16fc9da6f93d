"""The staging layout: the names staging makes, what each name in it is, and its walks."""

from __future__ import annotations

from pathlib import Path

from agent.custody import staging
from agent.custody.staging import EntryKind


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_names_come_from_the_row_id_never_from_the_camera_name() -> None:
    assert staging.staged_name(7, b"RECORD/20261127/A0001.MP4") == "00000007.mp4"
    # A hostile name gives nothing but a short, checked extension (or none).
    assert staging.staged_name(8, b"../../etc/passwd") == "00000008.bin"
    assert staging.staged_name(9, b"x.\xff\xfe") == "00000009.bin"
    assert staging.staged_name(10, b"clip.toolongext") == "00000010.bin"
    assert staging.staged_rel("CAM-1", 7, b"A.WAV") == "CAM-1/00000007.wav"


def test_sidecar_receipt_audit_and_head_names(tmp_path: Path) -> None:
    root = staging.staging_root(tmp_path)
    assert root == tmp_path / "staging"
    rel = "CAM1/00000007.mp4"
    assert staging.sidecar_path(root, rel) == root / "CAM1/00000007.mp4.custody.json"
    assert staging.receipt_path(root, rel) == root / "CAM1/00000007.mp4.upload.json"
    assert staging.audit_sidecar_path(root, 12) == root / "_chain/0000000012.audit.json"
    assert staging.head_path(root) == root / "_chain/head.json"


def test_each_name_in_a_camera_directory_is_classified(tmp_path: Path) -> None:
    directory = tmp_path / "CAM1"
    got = {
        name: (e.kind, e.file_id, e.staged)
        for name in (
            "00000007.mp4",
            "00000007.mp4.custody.json",
            "00000007.mp4.upload.json",
            ".00000008.mp4.0a1b2c3d4e5f.part",
            "notes.txt",
        )
        for e in [staging.classify(directory, name)]
    }
    assert got == {
        "00000007.mp4": (EntryKind.COPY, 7, "00000007.mp4"),
        "00000007.mp4.custody.json": (EntryKind.SIDECAR, 7, "00000007.mp4"),
        "00000007.mp4.upload.json": (EntryKind.RECEIPT, 7, "00000007.mp4"),
        ".00000008.mp4.0a1b2c3d4e5f.part": (
            EntryKind.TEMP,
            None,
            ".00000008.mp4.0a1b2c3d4e5f.part",
        ),
        "notes.txt": (EntryKind.OTHER, None, "notes.txt"),
    }
    assert staging.classify(directory, "00000007.mp4").rel == "CAM1/00000007.mp4"


def test_walks_skip_the_chain_directory_and_keep_name_order(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    for rel in (
        "CAM2/00000003.mp4",
        "CAM2/00000003.mp4.custody.json",
        "CAM1/00000002.wav.custody.json",
        "CAM1/00000002.wav",
        "CAM1/00000009.mp4.upload.json",  # a receipt whose copy was purged
        "_chain/0000000002.audit.json",
        "_chain/0000000001.audit.json",
        "_chain/head.json",
    ):
        _touch(root / rel)
    _touch(root / "stray-file")  # not a directory: no camera's
    assert staging.camera_dirs(root) == [root / "CAM1", root / "CAM2"]
    assert [e.rel for e in staging.all_entries(root)] == [
        "CAM1/00000002.wav",
        "CAM1/00000002.wav.custody.json",
        "CAM1/00000009.mp4.upload.json",
        "CAM2/00000003.mp4",
        "CAM2/00000003.mp4.custody.json",
    ]
    assert staging.file_sidecars(root) == [
        root / "CAM1/00000002.wav.custody.json",
        root / "CAM2/00000003.mp4.custody.json",
    ]
    assert staging.audit_sidecars(root) == [
        root / "_chain/0000000001.audit.json",
        root / "_chain/0000000002.audit.json",
    ]
    # The newest id any name carries, a receipt's too: rows cover every one of them.
    assert staging.newest_staged(root) == (9, "00000009.mp4.upload.json")


def test_an_absent_staging_tree_walks_as_empty(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    assert staging.camera_dirs(root) == []
    assert list(staging.all_entries(root)) == []
    assert staging.audit_sidecars(root) == []
    assert staging.newest_staged(root) == (0, "")


def test_temp_files_of_the_data_directory_and_of_every_staging_directory(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    _touch(tmp_path / ".station.key.abcdef012345.part")
    _touch(tmp_path / "station.key")
    _touch(root / "CAM1" / ".00000001.mp4.abcdef012345.part")
    _touch(root / "CAM1" / "00000001.mp4")
    _touch(root / "_chain" / ".head.json.abcdef012345.part")
    _touch(root / "CAM2" / "00000002.mp4")
    found = dict(staging.temp_files(root))
    assert found == {
        tmp_path: [".station.key.abcdef012345.part"],
        root / "CAM1": [".00000001.mp4.abcdef012345.part"],
        root / "_chain": [".head.json.abcdef012345.part"],
    }
    # A temp name carries no row: the newest id is the published copy's.
    assert staging.newest_staged(root) == (2, "00000002.mp4")
