"""One simulated camera of the soak: a directory that docks again and again under the same
serial, with new recordings (yesterday's shift) before every dock.

It writes only below its own directory; the station wipes what it has confirmed from there.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
from dataclasses import asdict
from datetime import date, datetime, timedelta
from pathlib import Path

from scripts.simulator.cameras import KIB, MIB, CameraSpec, write_camera
from tests.support.volumes import sha256_file

BIG_FILE = 64 * MIB  # the recording an undock-while-copying session is pulled out of
LOGS = (b"LOG/SYSTEM.LOG", b"LOG/BATTERY.CSV")


def _names(root: Path) -> list[bytes]:
    """Every file below root, as raw '/'-separated relative names."""
    base = os.fsencode(root)
    return sorted(
        os.path.relpath(os.path.join(dirpath, name), base)
        for dirpath, _dirs, names in os.walk(base)
        for name in names
    )


class Camera:
    """One simulated camera (a directory): the same serial docks again and again, and records
    new files between docks; the station wipes what it has confirmed."""

    def __init__(
        self, serial: str, officer: str, root: Path, seed: int, rotate_logs: bool = False
    ) -> None:
        self.serial = serial
        # False (the default, and the harder case): SYSTEM.LOG and BATTERY.CSV grow at every
        # dock for the whole run. True: like a real camera, each round starts new logs.
        self.rotate_logs = rotate_logs
        self.officer = officer
        self.root = root
        self.rng = random.Random(f"{seed}:{serial}")
        self.rounds = 0
        self.used: set[bytes] = set()  # every recording name it ever held
        # Hashes by (name, size, mtime, ctime): a rotated log can come back with the size and
        # the (even-second) mtime of an earlier one but other bytes; its ctime is new.
        self.hashes: dict[tuple[bytes, int, int, int], str] = {}
        self.skipped = 0

    def record_new(self, big: bool) -> None:
        """Write this round's recordings (yesterday's shift) and append to its logs."""
        self.rounds += 1
        spec = CameraSpec(
            serial=self.serial,
            officer_id=self.officer,
            days=1,
            files_per_day=self.rng.randint(2, 6),
            file_size=96 * KIB,
            other_files=0,
            large_files=1 if big else 0,
            large_size=BIG_FILE,
            audio_every=4,
            photo_every=5,
            first_day=date.today() - timedelta(days=1),
            docked_at=datetime.now().replace(microsecond=0),
            seed=self.rng.randrange(1 << 30),
        )
        fresh = self.root.parent / f".new-{self.serial}-{self.rounds}"
        shutil.rmtree(fresh, ignore_errors=True)
        try:
            write_camera(spec, fresh)
        except ValueError:  # no video to make large in this plan: a round without one
            shutil.rmtree(fresh, ignore_errors=True)
            write_camera(CameraSpec(**{**asdict(spec), "large_files": 0}), fresh)
        if not self.root.exists():
            os.rename(fresh, self.root)
            self.used.update(n for n in _names(self.root) if n.startswith(b"RECORD/"))
            return
        for name in _names(fresh):
            src, dst = fresh / os.fsdecode(name), self.root / os.fsdecode(name)
            if name.startswith(b"RECORD/"):
                if name in self.used or dst.exists():
                    self.skipped += 1
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.rename(src, dst)  # keeps the camera's mtime
                self.used.add(name)
            elif name in LOGS and self.rotate_logs:
                os.replace(src, dst)
            elif name in LOGS:
                lines = src.read_bytes().splitlines(keepends=True)
                if name.endswith(b".CSV"):
                    lines = lines[1:]  # the header is there already
                with open(dst, "ab") as fh:
                    fh.write(b"".join(lines))
        shutil.rmtree(fresh)

    def scan(self) -> dict[bytes, tuple[int, str]]:
        """Like Manifest.scan (regular files, raw names), hashing only what changed."""
        found: dict[bytes, tuple[int, str]] = {}
        base = os.fsencode(self.root)
        for dirpath, _dirs, names in os.walk(base):
            for name in names:
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    rel = os.path.relpath(full, base)
                    key = (rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                    if key not in self.hashes:
                        self.hashes[key] = sha256_file(full)
                except FileNotFoundError:
                    continue  # wiped by the station while we looked
                found[rel] = (st.st_size, self.hashes[key])
        return found

    def recordings_left(self) -> int:
        return sum(1 for name in self.scan() if name.startswith(b"RECORD/"))
