"""Trusted time (README "Trusted time"): RFC 3161 tokens over the chain head from a real TSA
(`openssl ts -reply` on loopback, tests/support/tsa_server.py), kept beside the chain, checked
by `verify`; a swapped or untrusted token is named; a station offline from its TSA catches up."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import rfc3161_client

from agent.core import config as config_mod
from agent.store import Store
from agent.sync.stamping import Stamper
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import rows
from tests.support.tsa_server import Authority, TsaServer


def _spec(serial: str) -> CameraSpec:
    return CameraSpec(
        serial=serial, days=1, files_per_day=2, file_size=4096, large_files=0, other_files=0
    )


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "tsa-a", "Alpha")


@pytest.fixture
def tsa(authority: Authority) -> Iterator[TsaServer]:
    with TsaServer(authority) as server:
        yield server


def _configure(station: Station, url: str, anchor: Path) -> None:
    station.configure(
        station.config_text + f'\n[custody]\ntsa_url = "{url}"\ntsa_trust_anchor = "{anchor}"\n'
    )


def _import(station: Station, tmp_path: Path, serial: str) -> dict[str, object]:
    cam = tmp_path / serial
    write_camera(_spec(serial), cam)
    proc = station.run("import", str(cam), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout))


def _head(station: Station) -> dict[str, object]:
    return rows(station.data_dir, "SELECT seq, record_hash FROM records ORDER BY seq DESC")[0]


def _token(station: Station, seq: int) -> Path:
    return station.staging / "_chain" / "tsa" / f"{seq:010d}.tsr"


def _two_stamped_sessions(station: Station, tmp_path: Path) -> tuple[int, int]:
    first = _import(station, tmp_path, "CAMTSA01")
    one = int(str(_head(station)["seq"]))
    assert first["tsa_token_seq"] == one
    second = _import(station, tmp_path, "CAMTSA02")
    two = int(str(_head(station)["seq"]))
    assert second["tsa_token_seq"] == two > one
    return one, two


def test_each_session_is_stamped_verify_names_the_coverage_and_each_bad_token(
    station: Station, tsa: TsaServer, authority: Authority, tmp_path: Path
) -> None:
    _configure(station, tsa.url, authority.ca)
    one, two = _two_stamped_sessions(station, tmp_path)
    for seq in (one, two):
        assert _token(station, seq).stat().st_mode & 0o777 == 0o640
    # Anyone can check a token without dockagent: its imprint is the record's hash.
    head = _head(station)
    check = subprocess.run(
        ["openssl", "ts", "-verify", "-digest", str(head["record_hash"]), "-in",
         str(_token(station, two)), "-CAfile", str(authority.ca)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0 and "Verification: OK" in check.stdout, check.stderr
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout
    assert f"{one:010d}.tsr" in verify.stdout and f"covers records 1-{one}" in verify.stdout
    assert f"covers records {one + 1}-{two}" in verify.stdout
    status = station.json("status")["trusted_time"]
    assert status["covered_upto"] == two and status["uncovered"] is None

    # The token over record `one` put where record `two`'s belongs.
    shutil.copyfile(_token(station, one), _token(station, two))
    swapped = station.run("verify", "--json")
    assert swapped.returncode == 4, swapped.stdout
    report = json.loads(swapped.stdout)
    assert [(p["kind"], p["seq"]) for p in report["problems"]] == [("tsa_imprint_mismatch", two)]
    assert [(t["first"], t["last"]) for t in report["timestamps"]["tokens"]] == [(1, one)]
    assert report["timestamps"]["uncovered"] == {"first": one + 1, "last": two}

    # A token over the right record, signed by a TSA under another CA.
    stranger = Authority(tmp_path / "tsa-b", "Beta")
    body = rows(station.data_dir, "SELECT body FROM records WHERE seq=?", (two,))[0]["body"]
    query = (
        rfc3161_client.TimestampRequestBuilder()
        .data(str(body).encode())
        .hash_algorithm(rfc3161_client.HashAlgorithm.SHA256)
        .build()
    )
    _token(station, two).write_bytes(stranger.reply(query.as_bytes()))
    untrusted = station.run("verify")
    assert untrusted.returncode == 4, untrusted.stdout
    assert f"FAIL tsa_untrusted: record {two}:" in untrusted.stdout
    assert f"covers records 1-{one}" in untrusted.stdout  # the good one still counts


def test_a_reply_from_an_untrusted_tsa_is_not_kept(
    station: Station, tsa: TsaServer, tmp_path: Path
) -> None:
    stranger = Authority(tmp_path / "tsa-b", "Beta")
    _configure(station, tsa.url, stranger.ca)  # the server's TSA is not the one trusted
    summary = _import(station, tmp_path, "CAMTSA01")
    assert summary["tsa_token_seq"] is None
    assert not (station.staging / "_chain" / "tsa").exists() or not any(
        (station.staging / "_chain" / "tsa").iterdir()
    )
    assert "tsa.refused" in station.cli_log.read_text()


def test_a_station_offline_from_its_tsa_shows_the_gap_and_catches_up(
    station: Station, tsa: TsaServer, authority: Authority, tmp_path: Path
) -> None:
    _configure(station, tsa.url, authority.ca)
    tsa.stop()
    summary = _import(station, tmp_path, "CAMTSA01")
    assert summary["tsa_token_seq"] is None
    head = int(str(_head(station)["seq"]))
    waiting = station.json("status")["trusted_time"]["uncovered"]
    assert (waiting["first"], waiting["last"]) == (1, head) and waiting["since"]
    proc = station.run("doctor", "--json")
    doctor = {c["check"]: c for c in json.loads(proc.stdout)["checks"]}
    assert f"records 1-{head} not yet covered by a token" in doctor["timestamps"]["detail"]

    # The daemon's idle step (agent.sync.stamping.Stamper.tick), on the monotonic clock given.
    cfg = config_mod.load(station.config_path, station.env())
    store = Store.open(station.data_dir, create=False)
    try:
        stamper = Stamper(cfg, store)
        stamper.session_ended = True
        assert stamper.tick(now=1000.0) is None  # still away: asked again after a pause
        tsa.start()
        assert stamper.tick(now=1001.0) is None and tsa.requests == 0  # pausing: nothing sent
        back = 1000.0 + stamper.pause
        assert stamper.tick(now=back) == head  # back: the gap is covered
        stamper.session_ended = True  # due, but every record is covered: nothing is sent
        assert stamper.tick(now=back + 30) is None and tsa.requests == 1
        assert station.json("status")["trusted_time"]["uncovered"] is None
        # A record added outside a dock session (an audit record) waits for the interval.
        assert station.run("devices", "enroll", "CAMTSA09").returncode == 0
        assert stamper.tick(now=back + 60) is None and tsa.requests == 1
        assert stamper.tick(now=back + 3600) == head + 1
    finally:
        store.close()
    verify = station.run("verify")
    assert verify.returncode == 0, verify.stdout
    assert f"covers records 1-{head}" in verify.stdout
    assert f"covers record {head + 1}" in verify.stdout
