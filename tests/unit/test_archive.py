"""The archive of purged copies' sidecars: exact bytes back, torn ends cut, hostile lines bounded."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.custody import archive, staging

SIDE = b'{\n "body": {\n  "seq": 7\n },\n "record_hash": "ab"\n}\n'


def _staged(root: Path, names: dict[str, bytes]) -> None:
    cam = root / "CAM1"
    cam.mkdir(parents=True, exist_ok=True)
    for name, data in names.items():
        (cam / name).write_bytes(data)


def test_sidecars_move_whole_and_the_copy_directory_keeps_only_what_is_staged(
    tmp_path: Path,
) -> None:
    root = tmp_path / "staging"
    odd = b"\xff\xfe not UTF-8 \n"
    _staged(
        root,
        {
            "00000007.mp4.custody.json": SIDE,
            "00000007.mp4.upload.json": odd,
            "00000007.mp4.0000000009.confirmed.json": b"{}\n",
            "00000008.mp4": b"still staged",
            "00000008.mp4.custody.json": SIDE,
        },
    )
    moved = archive.archive_sidecars(root, ["CAM1/00000007.mp4"], "2026-12-07T05:00:00+00:00")
    assert moved == 3
    assert sorted(p.name for p in (root / "CAM1").iterdir()) == [
        "00000008.mp4",
        "00000008.mp4.custody.json",
    ]
    (path,) = staging.archives(root)
    assert path.name == "2026-12-07.sidecars"
    got = {e.name: e.data for e in archive.read(path, root)}
    assert got == {
        "CAM1/00000007.mp4.custody.json": SIDE,
        "CAM1/00000007.mp4.upload.json": odd,
        "CAM1/00000007.mp4.0000000009.confirmed.json": b"{}\n",
    }
    assert path.stat().st_mode & 0o777 == 0o600
    assert archive.find(root, {"CAM1/00000007.mp4.custody.json"}) == {
        "CAM1/00000007.mp4.custody.json": SIDE
    }


def test_a_torn_end_is_skipped_by_readers_and_cut_by_the_next_append(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    archive.append(root, "2026-12-07", [("CAM1/00000001.mp4.custody.json", SIDE)])
    path = staging.archive_path(root, "2026-12-07")
    whole = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"name": "CAM1/00000002.mp4.custody.json", "te')
    assert [e.name for e in archive.read(path, root)] == ["CAM1/00000001.mp4.custody.json"]
    archive.append(root, "2026-12-07", [("CAM1/00000003.mp4.custody.json", SIDE)])
    assert path.read_bytes() == whole + archive.line_of("CAM1/00000003.mp4.custody.json", SIDE)


def test_a_line_longer_than_any_sidecar_is_named_not_loaded(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    path = staging.archive_path(root, "2026-12-07")
    path.parent.mkdir(parents=True)
    good = archive.line_of("CAM1/00000001.mp4.custody.json", SIDE)
    path.write_bytes(b"x" * (3 * archive.MAX_LINE) + b"\n" + good)
    found = list(archive.read(path, root))
    assert [e.problem for e in found] == ["a line longer than any sidecar", ""]
    assert found[1].data == SIDE


@settings(max_examples=300, deadline=None)
@given(line=st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_any_line_is_a_sidecar_or_a_named_problem(line: bytes) -> None:
    entry = archive.parse("x:1", line + b"\n")
    if entry.problem:
        assert entry.name == "" and entry.data == b""
    else:
        directory, _, name = entry.name.partition("/")
        assert directory and not directory.startswith((".", "_")) and "/" not in name


@settings(max_examples=100, deadline=None)
@given(
    name=st.text(min_size=1, max_size=40),
    data=st.binary(max_size=300),
)
def test_only_names_of_a_staged_copys_sidecars_are_taken(name: str, data: bytes) -> None:
    entry = archive.parse("x:1", archive.line_of(name, data))
    taken = not entry.problem
    directory, slash, base = name.partition("/")
    if taken:
        assert entry.data == data
        assert slash and ".." not in directory and "/" not in base
        assert base.endswith((".custody.json", ".upload.json", ".confirmed.json"))
