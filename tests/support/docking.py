"""Dock simulated cameras in-process with an injected station clock (health and ledger tests).

The real pipeline (Importer) on a real store and key, but the station's time is given by the
test: a dock at a chosen true time, detected `latency_s` later. The CLI run as a process
(tests/conftest.py Station) can then read the same data directory.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.camera import profile
from agent.core import config as config_mod
from agent.core.config import Config
from agent.core.model import ImportSummary
from agent.custody import keys
from agent.custody.keys import StationKey
from agent.custody.seal import Sealer
from agent.health import clock
from agent.ingest.session import Importer
from agent.store import Store
from scripts.simulator.cameras import CameraSpec, write_camera


def station_time(true_local: datetime) -> str:
    """A naive local (true) time in the station's format: UTC ISO with milliseconds."""
    return true_local.astimezone().astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass
class DockingStation:
    config: Config
    store: Store
    key: StationKey
    sealer: Sealer

    @classmethod
    def open(cls, data_dir: Path, config_path: Path | None = None) -> DockingStation:
        env = {"DOCKAGENT_DATA_DIR": str(data_dir)}
        cfg = config_mod.load(config_path, env)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        store = Store.open(data_dir, create=True)
        key = keys.load_or_create(cfg.key_path)
        return cls(cfg, store, key, Sealer(store, key, cfg.station_id, cfg.staging_path))

    def dock(
        self,
        camera: Path,
        docked_at: datetime,
        latency_s: float = 0.4,
        profile_name: str = "generic",
        **how: Any,
    ) -> ImportSummary:
        """Import `camera` as if it was docked at true local time `docked_at`, read by the
        shipped profile `profile_name`; `how` goes to Importer.import_volume (e.g. what a
        vendor unlock read: readings=UnlockReadings(...))."""
        ticks = itertools.count()
        start = docked_at.astimezone() + timedelta(seconds=latency_s)

        def now() -> str:
            return (
                (start + timedelta(milliseconds=next(ticks)))
                .astimezone(UTC)
                .isoformat(timespec="milliseconds")
            )

        prof = profile.load(profile_name)
        importer = Importer(self.config, self.store, self.sealer, prof, now=now)
        return importer.import_volume(str(camera), **how)

    def close(self) -> None:
        self.store.close()


def make_camera(root: Path, name: str, **spec: object) -> tuple[Path, CameraSpec]:
    """A simulated camera directory (small files, no extra notes unless asked)."""
    fields: dict[str, object] = {
        "files_per_day": 3,
        "file_size": 4096,
        "other_files": 0,
        "days": 1,
    }
    fields.update(spec)
    cam_spec = CameraSpec(**fields)  # type: ignore[arg-type]
    path = root / name
    write_camera(cam_spec, path)
    return path, cam_spec


def insert_log_line(camera: Path, line: str) -> None:
    """Add a SYSTEM.LOG line just before the final USB_CONNECT (as the camera would have)."""
    log = camera / "LOG" / "SYSTEM.LOG"
    st = os.stat(log)
    lines = log.read_text().splitlines()
    lines.insert(len(lines) - 1, line)
    log.write_text("\n".join(lines) + "\n")
    os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns))


def inject_station_clock(monkeypatch: Any, *, synchronised: bool) -> None:
    """The station clock state this process trusts, as the CLI's composition root installs it
    from armed $DOCKAGENT_TEST_STATION_CLOCK; the kernel's again after the test."""
    monkeypatch.setattr(clock, "_installed", clock.FixedClock(synchronised))
