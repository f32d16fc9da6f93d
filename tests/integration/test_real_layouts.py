"""Each shipped camera profile end to end: a simulated camera in its model's layout, on the
medium it would be (a FAT32 or exFAT image through FUSE, or the directory a FUSE MTP mount
shows), taken in by the real pipeline with the station's clock injected.

Every file is sealed as the simulator's manifest says (kind, start, segment, channel,
importance, partner); the camera's clock is measured or bounded and, from a synchronised
station, corrected by the profile's method; after the simulated firmware's restart, the next
dock finds the correction within the method's error; readiness judges the battery from the
profile's source. Small cameras, few files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.camera import profile
from agent.health.clock_dock import UnlockReadings
from scripts.simulator.cameras import CameraSpec, Manifest, build_image, write_camera
from scripts.simulator.firmware import restart
from tests.conftest import Station
from tests.support.docking import DockingStation, inject_station_clock
from tests.support.evidence import assert_all_sealed, rows
from tests.support.volumes import mount_fat

DAY = date(2024, 3, 9)
SEALED = ("sealed", "uploading", "confirmed")


@pytest.fixture
def dockstation(tmp_path: Path) -> Iterator[DockingStation]:
    config = tmp_path / "config.toml"
    config.write_text(
        'station_id = "LAYOUTS"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        "[devices]\nrequire_enrollment = false\n"
    )
    station = DockingStation.open(tmp_path / "data", config)
    yield station
    station.close()


def small(**fields: Any) -> CameraSpec:
    base: dict[str, Any] = {
        "files_per_day": 8,
        "file_size": 4096,
        "other_files": 1,
        "days": 1,
        "first_day": DAY,
        "split_every": 3,
        "important_every": 4,
        "photo_every": 5,
        "audio_every": 7,
    }
    base.update(fields)
    return CameraSpec(**base)


def assert_sealed_as_manifest(data_dir: Path, session_id: int, manifest: Manifest) -> None:
    """Every file of the manifest sealed in this session with its hash and classification,
    read from the database and the custody records independently of the agent's code."""
    # A file's channel and partner are kept beside its row (file_classes).
    held = {
        bytes(r["camera_path"]): r
        for r in rows(
            data_dir,
            "SELECT f.*, coalesce(c.channel, '') AS channel, c.partner_of AS partner_of "
            "FROM files f LEFT JOIN file_classes c ON c.file_id = f.id WHERE f.session_id=?",
            (session_id,),
        )
    }
    expected = manifest.expectations()
    seen = 0
    for entry in manifest.entries:
        exp = expected[entry.rel_path]
        if exp.ignored:
            assert entry.rel_path not in held, f"{entry.rel_path!r} is ignored, not evidence"
            continue
        row = held[entry.rel_path]
        seen += 1
        where = entry.rel_path.decode()
        assert row["state"] in SEALED, (where, row["state"], row["reason"])
        assert row["sha256"] == entry.sha256, where
        got = (
            row["kind"],
            row["recorded_start"],
            row["segment"],
            row["channel"],
            bool(row["important"]),
        )
        assert got == (exp.kind, exp.start, exp.segment, exp.channel, exp.important), where
        partner = bytes(row["partner_of"]).decode() if row["partner_of"] is not None else ""
        assert partner == exp.partner_of, where
        record = rows(
            data_dir, "SELECT body FROM records WHERE kind='file' AND file_id=?", (row["id"],)
        )
        body = json.loads(record[0]["body"])
        assert body["sha256"] == entry.sha256
        assert body.get("channel", "") == exp.channel, where
        assert body.get("partner_of", "") == exp.partner_of, where
    assert seen == len(held), "no file sealed that the camera does not hold"


def health(data_dir: Path, session_id: int) -> dict[str, Any]:
    found = rows(data_dir, "SELECT * FROM session_health WHERE session_id=?", (session_id,))
    assert len(found) == 1
    return found[0]


def reasons(row: dict[str, Any], area: str) -> list[dict[str, str]]:
    return [r for r in json.loads(row["readiness_reasons"]) if r["area"] == area]


def fault_codes(data_dir: Path, session_id: int) -> list[str]:
    return [
        r["code"] for r in rows(data_dir, "SELECT * FROM faults WHERE session_id=?", (session_id,))
    ]


def station_utc(true_local: datetime) -> datetime:
    return true_local.astimezone().astimezone(UTC)


# ---- generic: TIME.TXT, SYSTEM.LOG, BATTERY.CSV on a FAT32 card ----------------------------


@pytest.mark.fuse
def test_generic_camera_on_fat32_corrected_by_time_txt(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fuse: None
) -> None:
    inject_station_clock(monkeypatch, synchronised=True)
    docked = datetime(2024, 3, 9, 20, 0, 0)
    spec = small(serial="GEN01", clock_offset_s=-90.0, docked_at=docked)
    image, mnt = tmp_path / "gen.img", tmp_path / "mnt"
    mnt.mkdir()
    manifest = build_image(spec, image, "fat32")
    with mount_fat(image, mnt, readonly=False) as mounted:
        summary = dockstation.dock(mounted.path, docked)
        assert summary.complete, summary.problems
        assert_sealed_as_manifest(Path(dockstation.config.data_dir), summary.session_id, manifest)
        first = health(Path(dockstation.config.data_dir), summary.session_id)
        assert abs(first["clock_drift_s"] + 90) <= 2
        assert first["clock_correction"] == "written"
        assert (mounted.path / "TIME.TXT").read_text().startswith("2024-03-09 20:00:0")
        assert json.loads(first["battery"])["source"] == "log:generic-csv"
        assert first["battery_verdict"] in ("ok", "warning")
        # The camera restarts when it is unplugged, 3 s later: it takes TIME.TXT and deletes it.
        started = restart(mounted.path, "generic", docked + timedelta(seconds=3), -90.0)
    assert started.consumed and abs(started.clock_offset_s) <= 4

    nxt = docked + timedelta(days=1)
    second_spec = small(
        serial="GEN01",
        clock_offset_s=started.clock_offset_s,
        first_day=nxt.date(),
        docked_at=nxt,
    )
    cam2 = tmp_path / "gen2"
    write_camera(second_spec, cam2)
    log = cam2 / "LOG" / "SYSTEM.LOG"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([started.time_set_line(), *lines]) + "\n")
    again = dockstation.dock(cam2, nxt)
    second = health(Path(dockstation.config.data_dir), again.session_id)
    assert second["correction_check"] == "took", second["correction_check_detail"]
    assert abs(second["clock_drift_s"]) <= profile.load("generic").clock.max_error_s + 2
    assert "clock_not_set" not in fault_codes(Path(dockstation.config.data_dir), again.session_id)


# ---- novatek-cardv: TIMESET.txt, no log, no battery, on a FAT32 card --------------------


@pytest.mark.fuse
def test_novatek_camera_on_fat32_set_by_timeset_and_checked_at_the_next_dock(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fuse: None
) -> None:
    inject_station_clock(monkeypatch, synchronised=True)
    prof = profile.load("novatek-cardv")
    data = Path(dockstation.config.data_dir)
    # Two hours ahead, docked soon after its last clip: the clips prove it is ahead.
    docked = datetime(2024, 3, 9, 18, 30, 0)
    spec = small(
        layout="novatek-cardv", serial="NVT01", device_file=True, clock_offset_s=7200.0,
        docked_at=docked,
    )  # fmt: skip
    image, mnt = tmp_path / "nvt.img", tmp_path / "mnt"
    mnt.mkdir()
    manifest = build_image(spec, image, "fat32")
    with mount_fat(image, mnt, readonly=False) as mounted:
        summary = dockstation.dock(mounted.path, docked, profile_name="novatek-cardv")
        assert summary.complete, summary.problems
        assert_sealed_as_manifest(data, summary.session_id, manifest)
        first = health(data, summary.session_id)
        assert first["clock_drift_s"] is None  # no log: never one number
        assert "drift between +" in first["clock_detail"]
        assert first["clock_correction"] == "written", first["clock_correction_detail"]
        written = (mounted.path / "TIMESET.txt").read_bytes()
        assert len(written) == 19
        when = datetime.strptime(written.decode(), "%Y.%m.%d %H:%M:%S")
        assert abs((when - docked).total_seconds()) < 5  # the station's time, camera zone
        # No battery source: said, not held against the camera.
        assert json.loads(first["battery"])["source"] == "none"
        assert all(r["severity"] == "info" for r in reasons(first, "battery"))
        # Unplugged; at its start 4 s later the firmware reads TIMESET.txt and deletes it.
        started = restart(mounted.path, "novatek-cardv", docked + timedelta(seconds=4), 7200.0)
        assert started.consumed and not (mounted.path / "TIMESET.txt").exists()
    assert abs(started.clock_offset_s) <= prof.clock.max_error_s  # the truth, known to the test

    # Next shift, recorded with the corrected clock; docked in the evening.
    nxt = datetime(2024, 3, 10, 20, 0, 0)
    second_spec = small(
        layout="novatek-cardv", serial="NVT01", device_file=True, first_day=nxt.date(),
        clock_offset_s=started.clock_offset_s, docked_at=nxt, seed=2,
    )  # fmt: skip
    image2, mnt2 = tmp_path / "nvt2.img", tmp_path / "mnt2"
    mnt2.mkdir()
    manifest2 = build_image(second_spec, image2, "fat32")
    with mount_fat(image2, mnt2, readonly=False) as mounted:
        again = dockstation.dock(mounted.path, nxt, profile_name="novatek-cardv")
        assert again.complete, again.problems
        assert_sealed_as_manifest(data, again.session_id, manifest2)
        assert not (mounted.path / "TIMESET.txt").exists()  # nothing to correct now
    second = health(data, again.session_id)
    assert second["correction_check"] == "took", second["correction_check_detail"]
    assert "clock_not_set" not in fault_codes(data, again.session_id)
    assert second["clock_correction"] == "not written"  # the bounds prove no drift
    # Clock and battery say what they know without a warning; fusefat reports no free space,
    # which is the only warning left.
    assert [r["severity"] for r in reasons(second, "clock")] == ["info"]
    assert [r["severity"] for r in reasons(second, "battery")] == ["info"]
    warned = {r["area"] for r in json.loads(second["readiness_reasons"]) if r["severity"] != "info"}
    assert warned <= {"storage"}, second["readiness_reasons"]


def test_novatek_timeset_unread_and_a_clock_that_did_not_hold(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As directories (cheap): a camera that never restarted keeps TIMESET.txt, which the next
    dock reports and writes again fresh; one whose clock was reset by a flat battery after it
    took the correction (to the firmware's 2016-01-01) is proven off by the clips it recorded
    since, and set again."""
    inject_station_clock(monkeypatch, synchronised=True)
    data = Path(dockstation.config.data_dir)
    docked = datetime(2024, 3, 9, 18, 30, 0)
    cam = tmp_path / "nvt"
    write_camera(
        small(layout="novatek-cardv", serial="NVT02", device_file=True, clock_offset_s=7200.0,
              docked_at=docked),
        cam,
    )  # fmt: skip
    first = dockstation.dock(cam, docked, profile_name="novatek-cardv")
    assert health(data, first.session_id)["clock_correction"] == "written"

    # Docked again an hour later, not restarted: TIMESET.txt is still there.
    later = docked + timedelta(hours=1)
    again = dockstation.dock(cam, later, profile_name="novatek-cardv")
    row = health(data, again.session_id)
    assert row["correction_check"] == "did not take"
    assert "still on the camera" in row["correction_check_detail"]
    assert "clock_not_set" in fault_codes(data, again.session_id)
    assert row["clock_correction"] == "written"  # fresh: a stale one would set the old time
    when = datetime.strptime((cam / "TIMESET.txt").read_text(), "%Y.%m.%d %H:%M:%S")
    assert abs((when - later).total_seconds()) < 5

    # Restarted when unplugged: it takes the fresh time; then a flat battery resets its clock
    # to the firmware's 2016-01-01 at 06:00 before the next shift.
    started = restart(cam, "novatek-cardv", later + timedelta(seconds=5), 7200.0)
    assert started.consumed and abs(started.clock_offset_s) <= 62
    reset = (datetime(2016, 1, 1) - datetime(2024, 3, 10, 6, 0, 0)).total_seconds()
    nxt = datetime(2024, 3, 10, 20, 0, 0)
    cam2 = tmp_path / "nvt2"
    write_camera(
        small(layout="novatek-cardv", serial="NVT02", device_file=True, first_day=nxt.date(),
              clock_offset_s=reset, docked_at=nxt, seed=3),
        cam2,
    )  # fmt: skip
    third = dockstation.dock(cam2, nxt, profile_name="novatek-cardv")
    row = health(data, third.session_id)
    assert row["correction_check"] == "did not hold", row["correction_check_detail"]
    assert "clock_not_set" in fault_codes(data, third.session_id)
    # The clips prove it years behind: corrected again from this synchronised station.
    assert row["clock_correction"] == "written", row["clock_correction_detail"]
    assert (cam2 / "TIMESET.txt").read_text().startswith("2024.03.10 20:00:0")


# ---- android-dcam: the directory a FUSE MTP mount shows, through the CLI ------------------


def test_android_camera_taken_in_from_its_mtp_directory(station: Station, tmp_path: Path) -> None:
    # jmtpfs shows the phone's shared storage as a directory tree; this is that tree.
    docked = datetime.now().replace(microsecond=0) - timedelta(hours=1)
    storage = tmp_path / "mtp" / "Internal shared storage"
    manifest = write_camera(
        small(layout="android-dcam", serial="PHONE01", officer_id="4411",
              first_day=docked.date() - timedelta(days=1), docked_at=docked),
        storage,
    )  # fmt: skip
    proc = station.run("import", str(storage), "--profile", "android-dcam", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["device_serial"] == "PHONE01"  # from the names: the app writes no file
    assert summary["officer_id"] == "4411"
    assert [i["file"] for i in summary["ignored"]] == ["DCIM/Camera/.nomedia"]
    assert_sealed_as_manifest(station.data_dir, summary["session_id"], manifest)
    ignored = {p for p, e in manifest.expectations().items() if e.ignored}
    expected = {e.rel_path: e.sha256 for e in manifest.entries if e.rel_path not in ignored}
    assert_all_sealed(station.data_dir, "PHONE01", expected)
    row = health(station.data_dir, summary["session_id"])
    assert row["clock_drift_s"] is None
    assert "clock method none" in row["clock_detail"]
    assert row["clock_correction"] == "not written"
    assert not (storage / "TIME.TXT").exists() and not (storage / "TIMESET.txt").exists()
    assert [r["severity"] for r in reasons(row, "clock")] == ["info"]
    assert [r["severity"] for r in reasons(row, "battery")] == ["info"]
    assert row["readiness"] == "ready", row["readiness_reasons"]
    assert not fault_codes(station.data_dir, summary["session_id"])


def test_a_site_that_requires_a_battery_reading_holds_back_an_android_camera(
    station: Station, tmp_path: Path
) -> None:
    station.configure(station.config_text + "[health]\nbattery_reading_required = true\n")
    docked = datetime.now().replace(microsecond=0) - timedelta(hours=1)
    storage = tmp_path / "mtp"
    write_camera(
        small(layout="android-dcam", serial="PHONE02", first_day=docked.date() - timedelta(days=1),
              docked_at=docked, files_per_day=2),
        storage,
    )  # fmt: skip
    summary = station.json("import", str(storage), "--profile", "android-dcam")
    row = health(station.data_dir, summary["session_id"])
    assert row["readiness"] == "not ready"
    assert any("a battery reading is required" in r["text"] for r in reasons(row, "battery")), row[
        "readiness_reasons"
    ]


# ---- jl-dv16: the disk after the SCSI unlock, its readings handed in ----------------------


@pytest.mark.fuse
def test_jl_dv16_disk_on_fat32_with_the_unlock_readings(
    dockstation: DockingStation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fuse: None
) -> None:
    inject_station_clock(monkeypatch, synchronised=True)
    data = Path(dockstation.config.data_dir)
    docked = datetime(2024, 3, 9, 20, 0, 0)
    spec = small(layout="jl-dv16", serial="DV1601", clock_offset_s=-300.0, docked_at=docked)
    image, mnt = tmp_path / "dv.img", tmp_path / "mnt"
    mnt.mkdir()
    manifest = build_image(spec, image, "fat32")
    readings = UnlockReadings(
        battery_pct=15, clock_set=True, clock_detail="set over SCSI to 2024-03-09 20:00:00"
    )
    with mount_fat(image, mnt) as mounted:  # read-only: the station writes nothing on it
        summary = dockstation.dock(mounted.path, docked, profile_name="jl-dv16", readings=readings)
        assert summary.complete, summary.problems
        assert_sealed_as_manifest(data, summary.session_id, manifest)
    first = health(data, summary.session_id)
    assert abs(first["clock_drift_s"] + 300) <= 2  # its SYSTEM.LOG's USB_CONNECT
    assert first["clock_correction"] == "written"
    assert first["clock_correction_detail"] == "set over SCSI to 2024-03-09 20:00:00"
    battery = json.loads(first["battery"])
    assert (battery["source"], battery["charge_pct"]) == ("scsi", 15)
    assert any("charge 15 %" in r["text"] for r in reasons(first, "battery"))
    assert first["readiness"] == "warning"

    # Set at once: the next dock measures it within the method's error.
    nxt = docked + timedelta(days=1)
    cam2 = tmp_path / "dv2"
    write_camera(
        small(layout="jl-dv16", serial="DV1601", clock_offset_s=1.0, first_day=nxt.date(),
              docked_at=nxt, seed=4),
        cam2,
    )  # fmt: skip
    again = dockstation.dock(
        cam2, nxt, profile_name="jl-dv16", readings=UnlockReadings(battery_pct=90)
    )
    second = health(data, again.session_id)
    assert second["correction_check"] == "took", second["correction_check_detail"]
    assert second["clock_correction"] == "not written"  # nothing set at this dock
    assert json.loads(second["battery"])["charge_pct"] == 90
