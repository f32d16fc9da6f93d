"""agent.core.durable: the one way evidence and sidecars reach the disk.

A published file has exactly the bytes written, is private, never overwrites what is there,
and leaves no temp file behind, published or not; directories are made private, and one whose
name could not be made durable is not left behind to stage evidence into.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from agent.core import durable


def _entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_write_file_publishes_exactly_the_bytes_privately(tmp_path: Path) -> None:
    path = durable.write_file(tmp_path, "a.custody.json", b'{"seq": 1}')
    assert path == tmp_path / "a.custody.json"
    assert path.read_bytes() == b'{"seq": 1}'
    assert stat.S_IMODE(path.stat().st_mode) == durable.FILE_MODE == 0o600
    assert _entries(tmp_path) == ["a.custody.json"]


def test_write_file_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "sealed.mp4").write_bytes(b"the evidence")
    with pytest.raises(FileExistsError):
        durable.write_file(tmp_path, "sealed.mp4", b"something else")
    assert (tmp_path / "sealed.mp4").read_bytes() == b"the evidence"
    assert _entries(tmp_path) == ["sealed.mp4"]  # the temp file is gone too


def test_replace_file_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    durable.write_file(tmp_path, "head.json", b"old")
    durable.replace_file(tmp_path, "head.json", b"new, and longer")
    assert (tmp_path / "head.json").read_bytes() == b"new, and longer"
    assert _entries(tmp_path) == ["head.json"]


def test_a_temp_file_not_published_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), durable.TempFile(tmp_path, "copy.mp4", 1 << 20) as tmp:
        assert durable.is_temp_name(tmp.temp_name)
        tmp.write_all(b"half a copy")
        raise RuntimeError("the camera went away")
    assert _entries(tmp_path) == []


def test_publish_trims_the_reservation_to_the_bytes_written(tmp_path: Path) -> None:
    with durable.TempFile(tmp_path, "copy.mp4", 1 << 20) as tmp:
        tmp.write_all(memoryview(b"x" * 1000))
        path = tmp.publish(1000)
    assert path.stat().st_size == 1000
    assert path.read_bytes() == b"x" * 1000
    assert _entries(tmp_path) == ["copy.mp4"]


def test_temp_names_are_hidden_and_marked() -> None:
    assert durable.is_temp_name(".00000001_A.MP4.3f2a9c1b0d4e.part")
    assert not durable.is_temp_name("00000001_A.MP4")
    assert not durable.is_temp_name("00000001_A.MP4.part")  # not hidden: a camera's name
    assert not durable.is_temp_name(".hidden")


def test_make_dirs_makes_every_missing_parent_private(tmp_path: Path) -> None:
    target = tmp_path / "staging" / "CAM1" / "2026"
    durable.make_dirs(target)
    for directory in (tmp_path / "staging", tmp_path / "staging" / "CAM1", target):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    durable.make_dirs(target)  # already there: nothing to do, no error


def test_ensure_private_dir_narrows_a_wider_directory(tmp_path: Path) -> None:
    wide = tmp_path / "staging"
    wide.mkdir()
    os.chmod(wide, 0o755)  # noqa: S103 - widened on purpose: the agent must narrow it
    durable.ensure_private_dir(wide)
    assert stat.S_IMODE(wide.stat().st_mode) == 0o700


def test_a_directory_whose_name_could_not_be_synced_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(path: Path | str) -> None:
        raise OSError(errno.EIO, "injected", str(path))

    monkeypatch.setattr(durable, "fsync_dir", failing_fsync)
    with pytest.raises(OSError) as raised:
        durable.make_dirs(tmp_path / "staging" / "CAM1")
    assert raised.value.errno == errno.EIO
    # Left in place, files would be sealed into a directory whose own name may vanish.
    assert _entries(tmp_path) == []
