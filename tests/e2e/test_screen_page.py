"""The bay status screen, as the station's display shows it: Debian's chromium (headless,
driven through chromium-driver) loads the page `dockagent screen` serves while a real daemon
takes cameras in.

Two cameras are docked through the daemon's `fake` source into configured bays: one still
copying (an exFAT image read at 2 MiB/s through a block-I/O cgroup, as the rack test does), one
taken in and confirmed whose faded battery makes it not ready; a keyboard-class device is
refused. The page in English shows both tiles with their bay numbers, the copy's progress
advancing between two reads of the page, the verdict with its reason and the refusal alarm; a
second screen configured for zh_CN shows Chinese labels and Beijing time. Screenshots are kept
under the test's tmp dir and under the basetemp (screen-artifacts/).
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from scripts.bench_cameras import Camera, ReadThrottle, attached
from scripts.simulator.cameras import MIB, CameraSpec, build_image
from tests.conftest import Station
from tests.support.daemon import DaemonProcess, dock_camera, wait_until
from tests.support.evidence import rows
from tests.support.volumes import mount_fat

pytestmark = [pytest.mark.fuse, pytest.mark.slow, pytest.mark.usefixtures("fuse")]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PORT = "pci-0000:00:14.0-usb-0:{n}:1.0-scsi-0:0:0:0"
COPYING, DONE = "SCRCOPY1", "SCRDONE1"


def _served(url: str) -> dict[str, object]:
    """The page's document and headers, and what a write to it is answered."""
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        answer = conn.getresponse()
        served: dict[str, object] = {"csp": answer.getheader("Content-Security-Policy")}
        served["body"] = answer.read().decode()
        conn.request("POST", "/state", body=b"{}")
        write = conn.getresponse()
        write.read()
        served["post"] = write.status
    finally:
        conn.close()
    return served


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _screen(station: Station, config: Path, port: int) -> Iterator[str]:
    proc = station.start("--config", str(config), "screen", "--port", str(port))
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "dockagent screen exited"
                assert time.monotonic() < deadline, "dockagent screen did not listen"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) in (0, -15)


@contextmanager
def _browser(profile: Path) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,800",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    # The station's display: a viewport of exactly 1280x800 (the window size counts the frame).
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        yield driver
    finally:
        driver.quit()


# The page redraws its tiles at every refresh: a tile's parts are read in one script run.
_READ_TILE = """
const tile = document.querySelector('section.tile[data-serial="' + arguments[0] + '"]');
if (!tile) return null;
const out = {state: tile.dataset.state};
for (const name of ["bay", "activity", "detail", "verdict", "reasons", "officer"]) {
  const part = tile.querySelector("." + name);
  out[name] = part ? part.innerText : "";
}
return out;
"""


def _tile(driver: WebDriver, serial: str) -> dict[str, str]:
    """The text of each part of a camera's tile, as the page shows it."""
    parts = driver.execute_script(_READ_TILE, serial)
    assert parts is not None, f"no tile for {serial}"
    return dict(parts)


def _wait_tile(driver: WebDriver, serial: str, state: str, timeout: float = 30) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        parts = driver.execute_script(_READ_TILE, serial)
        if parts is not None and parts["state"] == state:
            return dict(parts)
        assert time.monotonic() < deadline, f"{serial} never showed {state}: {parts}"
        time.sleep(0.2)


def _copied_bytes(detail: str) -> float:
    match = re.match(r"([\d,.]+) MB", detail)
    assert match, detail
    return float(match.group(1).replace(",", ""))


def _keep(driver: WebDriver, name: str, tmp_path: Path, basetemp: Path) -> Path:
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty image
    kept = basetemp / "screen-artifacts"
    kept.mkdir(exist_ok=True)
    shutil.copy(shot, kept / name)
    return shot


def _config(spool: Path, language: str, zone: str) -> str:
    bays = ", ".join(f'"{n}=pci-0000:00:14.0-usb-0:{n}"' for n in (1, 2, 3, 4))
    return (
        'station_id = "T"\n[storage]\nreserve_bytes = 0\n[ingest]\nwipe_policy = "never"\n'
        f'[devices]\nsources = ["fake"]\nfake_spool = "{spool}"\nrequire_enrollment = false\n'
        f'[station]\nlanguage = "{language}"\ntimezone = "{zone}"\n'
        f"[screen]\nbays = [{bays}]\n"
    )


def test_the_bay_screen_shows_the_docked_cameras_progress_verdicts_and_alarms(
    station: Station, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    basetemp = tmp_path_factory.getbasetemp()
    done_spec = CameraSpec(
        serial=DONE,
        officer_id="200101",
        days=1,
        files_per_day=3,
        file_size=64 << 10,
        battery="faded",
        seed=2,
    )
    build_image(done_spec, tmp_path / "done.img", "fat32")
    copy_spec = CameraSpec(
        serial=COPYING,
        officer_id="200102",
        days=1,
        # Each file above half a copy batch (8 MiB, agent.ingest.copying): committed alone,
        # one every ~2 s at 2 MiB/s, so the page's count of bytes held moves while it copies.
        files_per_day=6,
        file_size=9 * MIB // 2,
        size_jitter=0,
        split_every=0,
        important_every=0,
        other_files=0,
        seed=3,
    )
    manifest = build_image(copy_spec, tmp_path / "copy.exfat", "exfat")
    copying = Camera(
        COPYING,
        tmp_path / "copy.exfat",
        tmp_path / "cams" / COPYING,
        len(manifest.entries),
        manifest.total_bytes,
    )
    spool, done_point = tmp_path / "spool", tmp_path / "done"
    done_point.mkdir()
    station.configure(_config(spool, "en", "UTC"))
    zh_config = tmp_path / "zh.toml"
    zh_config.write_text(_config(spool, "zh_CN", "Asia/Shanghai"))
    throttle = ReadThrottle()
    try:
        with (
            mount_fat(tmp_path / "done.img", done_point, readonly=True),
            attached([copying], throttle, 2 * MIB),
        ):
            daemon = DaemonProcess(station.env(), tmp_path / "daemon.log")
            try:
                daemon.wait_event("daemon.started")
                dock_camera(spool, DONE, done_point, port_path=PORT.format(n=2))
                wait_until(
                    lambda: bool(
                        rows(
                            station.data_dir,
                            "SELECT 1 FROM sessions JOIN session_health h ON h.session_id="
                            "sessions.id WHERE sessions.device_serial=? AND outcome='complete' "
                            "AND h.readiness != ''",
                            (DONE,),
                        )
                    ),
                    60,
                    "the done camera's verdict",
                )
                dock_camera(spool, "KBD0001", name="kbd", interfaces=":080650:030101:")
                daemon.wait_event("device.refused")
                dock_camera(
                    spool,
                    COPYING,
                    copying.mountpoint,
                    fs_type="exfat",
                    port_path=PORT.format(n=1),
                )
                with (
                    _screen(station, station.config_path, _free_port()) as url,
                    _browser(tmp_path / "chromium-en") as driver,
                ):
                    served = _served(url)
                    driver.get(url)
                    assert driver.title == "Bay status"
                    _wait_tile(driver, COPYING, "copying")
                    wait_until(
                        lambda: _copied_bytes(_tile(driver, COPYING)["detail"]) > 0,
                        30,
                        "a first file copied",
                    )
                    first = _tile(driver, COPYING)
                    _keep(driver, "screen-en-1.png", tmp_path, basetemp)
                    wait_until(
                        lambda: (
                            _copied_bytes(_tile(driver, COPYING)["detail"])
                            > _copied_bytes(first["detail"])
                        ),
                        20,
                        "the copy's progress",
                    )
                    second = _tile(driver, COPYING)
                    _keep(driver, "screen-en-2.png", tmp_path, basetemp)
                    done = _tile(driver, DONE)
                    alarms = driver.find_element(By.ID, "alarms").text
                    extent = driver.execute_script(
                        "const e = document.documentElement; return [e.scrollWidth, e.scrollHeight];"
                    )
                    clock = driver.find_element(By.ID, "clock").text
                with (
                    _screen(station, zh_config, _free_port()) as url,
                    _browser(tmp_path / "chromium-zh") as driver,
                ):
                    driver.get(url)
                    zh = _wait_tile(driver, DONE, "confirmed")
                    zh_copy = _tile(driver, COPYING)
                    zh_alarms = driver.find_element(By.ID, "alarms").text
                    zh_clock = driver.find_element(By.ID, "clock").text
                    zh_title = driver.title
                    _keep(driver, "screen-zh_CN.png", tmp_path, basetemp)
            finally:
                assert daemon.stop() == 0
    finally:
        throttle.remove()

    # The copying camera, in bay 1: its bytes advance between two looks, with rate and time left.
    assert first["bay"] == "1" and first["activity"] == "Copying"
    assert "200102" in first["officer"]
    assert second["state"] == "copying", second
    assert _copied_bytes(second["detail"]) > _copied_bytes(first["detail"]), (first, second)
    assert re.match(r"[\d.,]+ MB of [\d.,]+ MB · [\d.,]+ MB/s · .+ left$", first["detail"]), first
    # Nothing loaded from anywhere: no address in the page, and its policy allows this server only.
    assert not re.search(r"https?://|//[a-z]", str(served["body"])), served["body"]
    assert "default-src 'none'" in str(served["csp"]) and "connect-src 'self'" in str(served["csp"])
    assert served["post"] == 405  # read-only: nothing but GET and HEAD
    # The camera taken in, in bay 2: confirmed, not ready, and why.
    assert done["bay"] == "2" and done["state"] == "confirmed"
    assert done["activity"] == "Confirmed"
    assert done["verdict"] == "Not ready"
    assert "Battery:" in done["reasons"], done
    # Empty bays are shown too; the refused device is an alarm.
    assert "Device refused at" in alarms, alarms
    assert clock.endswith(" UTC")
    assert extent[0] <= 1280 and extent[1] <= 800, extent  # fits the display, no scrolling
    # In zh_CN: Chinese words, Beijing time (UTC+8) named.
    assert zh_title == "充电位状态"
    assert zh["activity"] == "已确认" and zh["verdict"] == "不可发放"
    assert "电池" in zh["reasons"]
    assert zh_copy["activity"] in ("正在复制", "正在封存", "正在上传", "已确认")
    assert "拒绝设备" in zh_alarms
    assert zh_clock.endswith("北京时间")
    shown = datetime.strptime(zh_clock[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    beijing = datetime.now(UTC) + timedelta(hours=8)
    assert abs((shown - beijing).total_seconds()) < 120, (zh_clock, beijing)
