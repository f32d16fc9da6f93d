"""The "nothing lost" checker can fail: each kind of loss or forgery it must catch, it catches.

A checker that passes on anything proves nothing; these tests break a good station in one way
each and assert the checker names it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.nothing_lost import (
    Manifest,
    check,
    directory_sink_objects,
)

SPEC = CameraSpec(serial="CAMCHK01", days=1, files_per_day=4, file_size=32 * 1024, large_files=0)


@pytest.fixture
def synced(station: Station, tmp_path: Path) -> tuple[Station, Path, Manifest, Path]:
    cam = tmp_path / "cam"
    write_camera(SPEC, cam)
    manifest = Manifest.of_camera(SPEC.serial, cam)
    sink = tmp_path / "sink"
    station.configure(
        station.config_text + f'[sync]\nkind = "directory"\ndirectory_root = "{sink}"\n'
    )
    assert station.run("import", str(cam)).returncode == 0
    proc = station.run("sync", "--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return station, cam, manifest, sink


def _problems(station: Station, cam: Path | None, manifest: Manifest, sink: Path) -> list[str]:
    return check(
        manifest,
        station.data_dir,
        cameras={SPEC.serial: cam},
        sink=directory_sink_objects(sink),
    ).problems


def test_a_good_station_passes_and_every_file_is_everywhere(synced) -> None:  # type: ignore[no-untyped-def]
    station, cam, manifest, sink = synced
    report = check(
        manifest, station.data_dir, cameras={SPEC.serial: cam}, sink=directory_sink_objects(sink)
    )
    assert report.problems == []
    n = len(manifest.files)
    assert n > 5
    assert (report.at_sink, report.held, report.on_camera) == (n, n, n)
    # Each file's record and its sink's confirmation, and the sync by hand, signed.
    assert report.records == 2 * n + 1


def test_a_file_gone_from_every_place_is_reported_lost(synced) -> None:  # type: ignore[no-untyped-def]
    station, cam, manifest, sink = synced
    victim = manifest.files[0]
    row = rows(station.data_dir, "SELECT * FROM files WHERE sha256=?", (victim.sha256,))[0]
    (cam / victim.name.decode()).unlink()
    (station.staging / row["staged_path"]).unlink()
    for obj in directory_sink_objects(sink, station.identity)[0]:
        if obj.sha256 == victim.sha256:
            Path(obj.where).unlink()
    problems = _problems(station, cam, manifest, sink)
    assert any(p.startswith("LOST:") for p in problems), problems
    assert any("trusted but its staged copy" in p for p in problems), problems


def test_a_zero_length_staged_copy_behind_a_sealed_row_fails(synced) -> None:  # type: ignore[no-untyped-def]
    station, cam, manifest, sink = synced
    row = rows(station.data_dir, "SELECT * FROM files ORDER BY id LIMIT 1")[0]
    (station.staging / row["staged_path"]).write_bytes(b"")
    problems = _problems(station, cam, manifest, sink)
    assert any("trusted but its staged copy" in p for p in problems), problems


def test_a_file_reported_sealed_does_not_count_as_safe_on_the_camera(synced) -> None:  # type: ignore[no-untyped-def]
    station, cam, manifest, _sink = synced
    victim = manifest.files[1]
    row = rows(station.data_dir, "SELECT * FROM files WHERE sha256=?", (victim.sha256,))[0]
    (station.staging / row["staged_path"]).unlink()
    report = check(
        manifest,
        station.data_dir,
        cameras={SPEC.serial: cam},
        sink=([], []),
        reported_held=[(SPEC.serial, victim.name)],
    )
    assert any(p.startswith("LOST:") and repr(victim.name) in p for p in report.problems)


def test_unknown_and_duplicate_sink_objects_fail(synced) -> None:  # type: ignore[no-untyped-def]
    station, cam, manifest, sink = synced
    objects = directory_sink_objects(sink)[0]
    stray = Path(objects[0].where).with_name("f" * 64 + ".mp4")
    stray.write_bytes(b"not evidence")
    twin = Path(objects[0].where).with_name("twin-" + Path(objects[0].where).name)
    twin.write_bytes(Path(objects[0].where).read_bytes())
    problems = _problems(station, cam, manifest, sink)
    assert any("unknown object" in p for p in problems), problems
    assert any("uploaded twice" in p for p in problems), problems


def test_an_edited_or_removed_record_breaks_the_chain(synced) -> None:  # type: ignore[no-untyped-def]
    station, cam, manifest, sink = synced
    conn = sqlite3.connect(station.data_dir / "dockagent.db", isolation_level=None)
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute("DROP TRIGGER records_no_delete")
    conn.execute("UPDATE records SET body = replace(body, '\"size\":', '\"size\":1') WHERE seq=2")
    conn.execute("DELETE FROM records WHERE seq=3")
    conn.close()
    problems = _problems(station, cam, manifest, sink)
    assert any("record 2: hash does not match" in p for p in problems), problems
    assert any("signature does not verify" in p for p in problems), problems
    assert any("record 3 missing" in p for p in problems), problems


def test_a_sidecar_that_differs_from_its_record_fails(synced) -> None:  # type: ignore[no-untyped-def]
    station, cam, manifest, sink = synced
    row = rows(station.data_dir, "SELECT * FROM files ORDER BY id LIMIT 1")[0]
    side = station.staging / (row["staged_path"] + ".custody.json")
    side.write_bytes(side.read_bytes().replace(b'"signature": "', b'"signature": "A'))
    problems = _problems(station, cam, manifest, sink)
    assert any("sidecar differs" in p for p in problems), problems
