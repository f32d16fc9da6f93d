"""agent.camera.scan on a directory tree: every entry is listed or named as a problem.

Regular files become candidates under their exact raw names; links are never followed, FIFOs
never opened, trees deeper than the limit not walked, and each of those is reported with its
reason: nothing on a volume is skipped silently.
"""

from __future__ import annotations

import os
import resource
import tracemalloc
from pathlib import Path

import pytest

from agent.camera import profile, scan, volume
from agent.camera.listing import Listing
from agent.core.model import FileKind, ScanResult

RECORDING = b"CAM00001_100234_20261127080000_0001.MP4"


def _scan(root: Path, capacity: int = 0) -> ScanResult:
    with volume.open_root(str(root)) as fd:
        return scan.scan_volume(fd, profile.load("generic"), capacity)


def _names(result: ScanResult) -> list[bytes]:
    return [c.rel_path for c in result.candidates]


def _problems(result: ScanResult) -> dict[bytes, str]:
    return {p.rel_path: p.reason for p in result.problems}


def _write(root: Path, rel: bytes, data: bytes = b"data") -> None:
    path = os.path.join(os.fsencode(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    cam = tmp_path / "cam"
    cam.mkdir()
    return cam


def test_recordings_and_other_files_are_listed_in_order(root: Path) -> None:
    _write(root, b"DEVICE.INF", b"serial=CAM00001\n")
    _write(root, b"RECORD/20261127/" + RECORDING, b"v" * 100)
    _write(root, b"RECORD/20261127/CAM00001_100234_20261127080000_0001.IMP")
    _write(root, b"NOTES.TXT")
    result = _scan(root)
    assert _names(result) == sorted(
        [
            b"DEVICE.INF",
            b"NOTES.TXT",
            b"RECORD/20261127/" + RECORDING,
            b"RECORD/20261127/CAM00001_100234_20261127080000_0001.IMP",
        ]
    )
    assert result.problems == ()
    by_name = {c.rel_path: c for c in result.candidates}
    video = by_name[b"RECORD/20261127/" + RECORDING]
    assert (video.kind, video.size, video.wipeable, video.important) == (
        FileKind.VIDEO,
        100,
        True,
        True,  # its .IMP marker lies beside it
    )
    assert video.recorded_start == "2026-11-27T08:00:00"
    assert not by_name[b"DEVICE.INF"].wipeable and not by_name[b"NOTES.TXT"].wipeable
    assert result.dirs == 3


def test_hostile_names_are_listed_as_their_exact_bytes(root: Path) -> None:
    hostile = [
        b"RECORD/\xff\xfe not utf-8.MP4",
        b"RECORD/new\nline.MP4",
        b"RECORD/\x1b[31mred\x1b[0m.MP4",
        b"RECORD/\xe2\x80\xaeevil.4PM",  # U+202E right-to-left override
        b"RECORD/-rf",
        b"RECORD/" + b"L" * 255,
        b"RECORD/ leading and trailing space ",
    ]
    for rel in hostile:
        _write(root, rel)
    result = _scan(root)
    assert _names(result) == sorted(hostile)
    assert result.problems == ()


def test_symbolic_links_are_reported_and_never_followed(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "SECRET.MP4").write_bytes(b"not the camera's")
    _write(root, b"RECORD/" + RECORDING)
    os.symlink(outside / "SECRET.MP4", root / "RECORD" / "LINK.MP4")
    os.symlink(outside, root / "RECORD" / "DIRLINK")
    os.symlink("/nonexistent", root / "DANGLING")
    result = _scan(root)
    assert _names(result) == [b"RECORD/" + RECORDING]
    problems = _problems(result)
    for rel in (b"RECORD/LINK.MP4", b"RECORD/DIRLINK", b"DANGLING"):
        assert problems[rel] == "a symbolic link: not read"
    assert len(problems) == 3


def test_a_fifo_is_reported_and_not_opened(root: Path) -> None:
    (root / "RECORD").mkdir()
    os.mkfifo(root / "RECORD" / "PIPE.MP4")  # opening it for reading would block forever
    _write(root, b"RECORD/" + RECORDING)
    result = _scan(root)
    assert _names(result) == [b"RECORD/" + RECORDING]
    assert _problems(result) == {b"RECORD/PIPE.MP4": "a FIFO: not read"}


def test_a_tree_deeper_than_the_limit_is_reported_not_walked(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(scan.MAX_DEPTH + 1):  # made relative to descriptors: no PATH_MAX
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        with os.fdopen(os.open("DEEP.MP4", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "wb"):
            pass
    finally:
        os.close(fd)
    _write(root, b"TOP.MP4")
    result = _scan(root)
    assert _names(result) == [b"TOP.MP4"]
    deepest = b"/".join([b"d"] * (scan.MAX_DEPTH + 1))
    assert _problems(result) == {deepest: f"deeper than {scan.MAX_DEPTH} levels; not walked"}
    assert result.dirs == scan.MAX_DEPTH + 1  # the root and MAX_DEPTH levels below it


def test_a_file_larger_than_the_volume_is_reported_not_listed(root: Path) -> None:
    _write(root, b"RECORD/" + RECORDING, b"v" * 10)
    with open(root / "SPARSE.MP4", "wb") as fh:
        fh.truncate(1 << 30)
    result = _scan(root, capacity=1 << 20)
    assert _names(result) == [b"RECORD/" + RECORDING]
    reason = _problems(result)[b"SPARSE.MP4"]
    assert reason.startswith(f"claims {1 << 30} bytes, more than the whole volume")


def test_siblings_are_walked_with_descriptors_for_the_path_only(tmp_path: Path) -> None:
    """Every sibling directory used to be opened before any was walked: 200 of them under a
    limit of 20 spare descriptors left most of them (and their files) unlisted."""
    for i in range(200):
        _write(tmp_path, b"D%03d/deep/file" % i)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    spare = len(os.listdir("/proc/self/fd")) + 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (spare, hard))
    try:
        result = _scan(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.problems == ()
    assert len(result.candidates) == 200 and result.dirs == 401


def test_a_directory_replaced_after_it_was_listed_is_not_walked(tmp_path: Path) -> None:
    """The walk opens a child after listing its parent: a directory swapped in between (here
    by a real rename) is named as a problem, never walked in place of the one listed."""
    _write(tmp_path, b"RECORD/a.MP4")
    _write(tmp_path, b"OTHER/b.MP4")
    with volume.open_root(str(tmp_path)) as fd:
        listed = os.stat("RECORD", dir_fd=fd, follow_symlinks=False)
        os.rename(tmp_path / "RECORD", tmp_path / "OLD")
        os.rename(tmp_path / "OTHER", tmp_path / "RECORD")
        walk = scan._Walk(fd, profile.load("generic"), 0, frozenset())
        assert walk._open_child(fd, b"RECORD", b"RECORD", listed) == -1
    assert [p.reason for p in walk.problems] == [
        "directory replaced while the volume was walked; not walked"
    ]


def test_a_directory_of_many_files_is_listed_in_bounded_memory_per_file(tmp_path: Path) -> None:
    """A camera with tens of thousands of clips in one day's folder (Python allocations,
    tracemalloc): the listing the dock keeps takes under 200 bytes a file, and the scan's peak
    under 400. Each file's whole stat_result and every classification of the directory held at
    once took ~2 KiB; Candidate objects, ~560 bytes a file for the whole dock (issue 17)."""
    day = tmp_path / "cam" / "RECORD" / "20261127"
    day.mkdir(parents=True)
    count = 20_000
    for i in range(count):
        (
            day / f"CAM00001_100234_20261127{i // 3600 % 24:02d}{i // 60 % 60:02d}"
            f"{i % 60:02d}_{i % 10000:04d}.MP4"
        ).touch()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        result = _scan(tmp_path / "cam")
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.candidates) == count
    assert (held - before) / count < 200, f"{(held - before) / count:.0f} bytes per file kept"
    assert (peak - before) / count < 400, f"{(peak - before) / count:.0f} bytes per file at peak"


def test_files_beside_subdirectories_are_listed_in_path_order(root: Path) -> None:
    """The walk merges a directory's files with its subdirectories by name (a subdirectory
    as `name/`): the listing is in path order, so a file is found again by bisection."""
    paths = [
        b"A/b.MP4",
        b"A/a/x.MP4",
        b"A/a.b/y.MP4",
        b"A/a.c",
        b"A/a0",
        b"A/0.MP4",
        b"Z.TXT",
        b"A.TXT",
        b"A/a/deeper/z.MP4",
        b"A/a/zz.MP4",
    ]
    for rel in paths:
        _write(root, rel)
    result = _scan(root)
    assert _names(result) == sorted(paths)
    listing = result.candidates
    assert isinstance(listing, Listing)
    for index, rel in enumerate(sorted(paths)):
        assert listing.find(rel) == index
    assert listing.find(b"A/a") is None and listing.find(b"A/zzz") is None
