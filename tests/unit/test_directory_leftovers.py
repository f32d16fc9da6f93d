"""The directory sink's sweep of temp files a dead writer left: each content's are found, and
the archive directory is listed once per process, not once per upload (a busy day directory
holds two entries per file: listing it at every upload made a day's uploads quadratic)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.sync import directory
from agent.sync.directory import _Leftovers

A, B = "a" * 64, "b" * 64


def _plant(folder: Path) -> None:
    for name in (
        f".{A}.mp4.0123456789ab.part",
        f".{A}.json.ba9876543210.part",
        f".{A}.17.json.aaaaaaaaaaaa.part",
        f".{B}.jpg.bbbbbbbbbbbb.part",
        f"{B}.jpg",  # an archived object, never a leftover
        f"{B}.json",
    ):
        (folder / name).write_bytes(b"x")


def test_each_contents_leftovers_are_given_once(tmp_path: Path) -> None:
    _plant(tmp_path)
    leftovers = _Leftovers()
    assert sorted(leftovers.take(tmp_path, A)) == sorted(
        [
            f".{A}.mp4.0123456789ab.part",
            f".{A}.json.ba9876543210.part",
            f".{A}.17.json.aaaaaaaaaaaa.part",
        ]
    )
    assert leftovers.take(tmp_path, A) == []
    assert leftovers.take(tmp_path, B) == [f".{B}.jpg.bbbbbbbbbbbb.part"]


def test_a_directory_is_listed_once_for_any_number_of_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plant(tmp_path)
    calls: list[str] = []
    real = os.listdir

    def counting(path: str | os.PathLike[str]) -> list[str]:
        calls.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(directory.os, "listdir", counting)
    leftovers = _Leftovers()
    for n in range(5000):
        leftovers.take(tmp_path, f"{n:064x}")
    assert calls == [str(tmp_path)]


def test_the_table_of_directories_stays_bounded(tmp_path: Path) -> None:
    leftovers = _Leftovers()
    for day in range(3 * _Leftovers.KEEP):
        folder = tmp_path / f"{day:03d}"
        folder.mkdir()
        leftovers.take(folder, A)
    assert len(leftovers._by_dir) == _Leftovers.KEEP
