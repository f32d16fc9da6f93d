"""Power loss under staging and the database: only what the agent made durable survives.

The station's data directory (staging, dockagent.db and its WAL, the key) is a power-cut layer
(tests/support/powercut_fs.py): after a cut only what was fsynced, and named in a fsynced
directory, is still there. The camera and the directory sink stay outside the layer. Each test
runs the real CLI as a process, kills it (at a named crash point, or together with the layer at
a random moment), cuts the power, restarts the agent on the same layer (`import` again, which
recovers), and then `verify` must pass and the independent checker must find every camera file
in a safe place: every file the agent had reported sealed or wiped (its JSON log on stderr)
held at the station or the sink, and no zero-length or unsynced copy behind a trusted row.
The tests look at the station only through the CLI and tests/support/nothing_lost.py; they
never repair what a cut left, and the camera is never on a power-cut layer.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import mmap
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.core import crashpoints, durable
from agent.core.model import display_name
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.central_key import central_identity, encrypt_to
from tests.support.cli import start_cli
from tests.support.nothing_lost import Manifest, assert_nothing_lost, directory_sink_objects
from tests.support.powercut_fs import PowerCutFS
from tests.support.volumes import tmpfs

pytestmark = [pytest.mark.fuse, pytest.mark.usefixtures("fuse")]

# Ten files: small ones in batches before and after one 8 MiB recording, which takes the
# large-file path (reader, hasher and an O_DIRECT writer) through the layer.
SPEC = CameraSpec(
    serial="POWER01",
    days=1,
    files_per_day=6,
    file_size=96 * 1024,
    large_files=1,
    large_size=8 << 20,
)
CONFIG = """station_id = "POWER"
[storage]
reserve_bytes = 0
copy_chunk_bytes = 262144
[ingest]
wipe_policy = "after_seal"
[sync]
kind = "directory"
directory_root = "{sink}"
purge_grace_s = 0
"""
# Events after which the agent has told the world a file is held.
HELD_EVENTS = ("file.sealed", "file.wiped")


@dataclass
class Rig:
    """A station whose data directory is the power-cut layer, a camera and a sink beside it."""

    station: Station
    layer: PowerCutFS
    cam: Path
    sink: Path
    manifest: Manifest
    reported_held: set[tuple[str, bytes]] = field(default_factory=set)
    identity: Path | None = None  # the central key, where copies are encrypted to it

    def start(self, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
        """The CLI as a process, its JSON log going to a file beside the station."""
        log = self.station.root / f"log-{time.monotonic_ns()}.jsonl"
        proc = start_cli(
            args, env=self.station.env(**env), log=self.station.cli_log, stderr_log=log
        )
        return proc, log

    def run(self, *args: str, **env: str) -> int:
        proc, log = self.start(*args, **env)
        code = proc.wait(timeout=300)
        self.collect(log)
        return code

    def collect(self, log: Path) -> None:
        """Remember every file the agent said it sealed or wiped (the checker's reported_held)."""
        names = {display_name(f.name): f.name for f in self.manifest.files}
        for line in log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a traceback, or a line torn by the kill
            if isinstance(event, dict) and event.get("event") in HELD_EVENTS:
                self.reported_held.add((event["device_serial"], names[event["file"]]))

    def wait_for(self, proc: subprocess.Popen[bytes], log: Path, event: str, nth: int) -> None:
        """Until the agent has logged `event` nth times (or has exited)."""
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if text.count(f'"event": "{event}"') >= nth:
                return
            time.sleep(0.002)

    def kill_together(self, proc: subprocess.Popen[bytes], log: Path) -> bool:
        """The power goes out while the agent runs: the layer first (nothing more reaches the
        disk), then the agent. True if the agent was still running."""
        running = proc.poll() is None
        self.layer.kill()
        proc.kill()
        proc.wait()
        self.collect(log)
        return running

    def recover_and_check(self, *, sync: bool = False) -> dict[str, object]:
        """Restart on the same layer: import (recovery first), optionally sync, verify, check.
        Returns the import's summary."""
        proc = self.station.run("import", str(self.cam), "--json")
        assert proc.returncode == 0, self._why(proc)
        summary: dict[str, object] = json.loads(proc.stdout)
        if sync:
            proc = self.station.run("sync", "--once")
            assert proc.returncode == 0, self._why(proc)
        proc = self.station.run("verify")
        assert proc.returncode == 0, self._why(proc)
        assert_nothing_lost(
            self.manifest,
            self.station.data_dir,
            cameras={SPEC.serial: self.cam},
            sink=directory_sink_objects(self.sink, self.identity),
            reported_held=self.reported_held,
            identity=self.identity,
        )
        return summary

    def _why(self, proc: subprocess.CompletedProcess[str]) -> str:
        return (
            f"{proc.args[3:]} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}\n"
            f"after {self.layer.cuts} cuts (last kept {self.layer.last_kept}); "
            f"layer: {self.layer.output()[-2000:]}"
        )


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """Fresh rigs on demand (one per round), all unmounted at the end."""
    layers: list[PowerCutFS] = []

    def make(name: str = "rig", encrypted: bool = False) -> Rig:
        root = tmp_path / name
        station = Station(root / "station")
        station.root.mkdir(parents=True)
        sink = root / "sink"
        identity = central_identity(root / "central.key") if encrypted else None
        extra = encrypt_to(identity) if identity is not None else ""
        station.configure(CONFIG.format(sink=sink) + extra)
        layer = PowerCutFS(root / "layer" / "backing", station.data_dir, root / "layer" / "state")
        layer.start()
        layers.append(layer)
        cam = root / "cam"
        write_camera(SPEC, cam)
        manifest = Manifest.of_camera(SPEC.serial, cam)
        return Rig(station, layer, cam, sink, manifest, identity=identity)

    yield make
    for layer in layers:
        layer.stop()


# ---- the layer itself ----------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_the_layer_keeps_only_what_was_synced(tmp_path: Path) -> None:
    layer = PowerCutFS(tmp_path / "backing", tmp_path / "mnt", tmp_path / "state")
    layer.start()
    mnt = layer.mountpoint
    try:
        (mnt / "named-never-synced").write_bytes(b"lost bytes")
        for name, data in (("synced", b"kept"), ("old-name", b"renamed"), ("doomed", b"back")):
            (mnt / name).write_bytes(data)
            _fsync(mnt / name)
        (mnt / "via-syncfs").write_bytes(b"synced before")
        _fsync(mnt / "via-syncfs")
        (mnt / "dir").mkdir()
        _fsync(mnt)  # the names so far are durable; contents only where synced
        (mnt / "synced").write_bytes(b"overwritten, never synced")
        (mnt / "old-name").rename(mnt / "new-name")
        (mnt / "doomed").unlink()
        (mnt / "dir" / "inside").write_bytes(b"x")
        _fsync(mnt / "dir" / "inside")  # synced, but its directory never was
        (mnt / "unnamed").write_bytes(b"synced, name never durable")
        _fsync(mnt / "unnamed")
        (mnt / "via-syncfs").write_bytes(b"a syncfs does not reach a FUSE server")
        fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert ctypes.CDLL(None, use_errno=True).syncfs(fd) == 0
        finally:
            os.close(fd)
        layer.cut()
        got = {p.name: p.read_bytes() for p in mnt.iterdir() if p.is_file()}
        assert got == {
            "named-never-synced": b"",  # zero-length, as on ext4 after a crash
            "synced": b"kept",  # the last synced content
            "old-name": b"renamed",  # the rename was never made durable
            "doomed": b"back",  # nor the unlink
            "via-syncfs": b"synced before",
        }
        assert list((mnt / "dir").iterdir()) == []
        # Made durable properly, it survives: file fsync, then the directory's.
        (mnt / "dir" / "whole").write_bytes(b"evidence")
        _fsync(mnt / "dir" / "whole")
        _fsync(mnt / "dir")
        layer.cut()
        assert (mnt / "dir" / "whole").read_bytes() == b"evidence"
        assert layer.cuts == 2
    finally:
        layer.stop()


def test_the_agent_does_not_trust_syncfs_or_fallocate_on_the_layer(tmp_path: Path) -> None:
    """What the copier meets there: syncfs covers nothing, fallocate is not offered (the
    agent copies unreserved), O_DIRECT is accepted (Linux 6.x). On tmpfs the batch fast path
    stays."""
    layer = PowerCutFS(tmp_path / "backing", tmp_path / "mnt", tmp_path / "state")
    layer.start()
    try:
        fd = os.open(layer.mountpoint / "f", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            assert durable.fs_type(fd) == 0x65735546  # FUSE_SUPER_MAGIC
            assert not durable.syncfs_covers(fd)
            assert not durable.sync_filesystem(layer.mountpoint)
            durable.reserve(fd, 1 << 20)  # EOPNOTSUPP: no reservation, no error
            assert os.fstat(fd).st_size == 0
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
            except OSError as exc:  # a kernel without FUSE direct I/O: the copier writes buffered
                assert exc.errno == errno.EINVAL
            with mmap.mmap(-1, 1 << 16) as buf:  # page-aligned, as O_DIRECT needs
                buf.write(b"d" * (1 << 16))
                assert os.write(fd, buf) == 1 << 16
        finally:
            os.close(fd)
    finally:
        layer.stop()
    with tmpfs(tmp_path / "tmpfs", 1 << 20) as fast:
        fd = os.open(fast, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert durable.syncfs_covers(fd)
        finally:
            os.close(fd)
        assert durable.sync_filesystem(fast)


# ---- crash, then cut ---------------------------------------------------------------------------

# Every crash point an import reaches (agent/core/crashpoints.py; sync has none), some at more than
# one moment. For a fresh station the publishes run: the station key (1), batch 1's staged
# copies (2-5) and sidecars (6-9), the 8 MiB copy (10) and its sidecar (11), batch 3 (12-21).
CRASHES = [
    "import.session_opened",
    "import.registered",
    "copy.claimed:1",
    "copy.claimed:6",
    "copy.first_chunk:1",
    "copy.first_chunk:5",  # the 8 MiB file: reader, hasher, O_DIRECT writer
    "staging.temp_synced:1",
    "staging.temp_synced:3",
    "staging.temp_synced:18",
    "staging.linked:1",
    "staging.linked:10",
    "staging.linked:18",
    "copy.published:1",
    "copy.published:5",
    "copy.staged:1",
    "copy.staged:6",
    "seal.committed:1",
    "seal.committed:7",
    "seal.sidecar_written:1",
    "seal.sidecar_written:7",
    "wipe.intent:1",
    "wipe.intent:4",
    "wipe.unlinked:1",
    "wipe.unlinked:4",
]


# The same cuts with every copy encrypted to a central key as it is copied (README "Evidence
# sealed to the central key"): the encrypting pass, its publish and its seal.
SEALED_CRASHES = [
    "copy.first_chunk:5",
    "staging.temp_synced:3",
    "staging.linked:10",
    "copy.published:5",
    "copy.staged:6",
    "seal.committed:7",
    "wipe.unlinked:1",
]


def test_every_crash_point_is_followed_by_a_power_cut() -> None:
    """A step added to agent/core/crashpoints.py gets its power cut here too."""
    assert {crash.partition(":")[0] for crash in CRASHES} == set(crashpoints.STEPS)


@pytest.mark.parametrize(
    ("crash_at", "encrypted"),
    [(c, False) for c in CRASHES] + [(c, True) for c in SEALED_CRASHES],
    ids=[*CRASHES, *(f"{c}-encrypted" for c in SEALED_CRASHES)],
)
def test_crash_then_power_cut(make_rig: Callable[..., Rig], crash_at: str, encrypted: bool) -> None:
    rig = make_rig(encrypted=encrypted)
    code = rig.run("import", str(rig.cam), DOCKAGENT_CRASH_AT=crash_at)
    assert code == -signal.SIGKILL, f"{crash_at} was not reached (exit {code})"
    if crash_at.startswith("wipe."):
        assert rig.reported_held, "files were sealed before the wipe began"
    rig.layer.cut()
    rig.recover_and_check()
    assert rig.layer.cuts == 1


# ---- cuts with no crash point: the agent and the layer go down together ------------------------


# The power goes out a random 0-20 ms after the agent logged the n-th such event: random
# moments spread over the whole run (purely random delays mostly hit start-up or exit).
IMPORT_CUTS = [
    ("session.opened", 1),
    ("file.sealed", 1),  # batch 1 sealed; the 8 MiB copy under way
    ("file.sealed", 4),
    ("file.sealed", 5),  # the 8 MiB file sealed; batch 3 next
    ("file.sealed", 8),
    ("file.wiped", 2),
]
SYNC_CUTS = [
    ("upload.started", 1),
    ("upload.confirmed", 2),
    ("upload.confirmed", 6),
    ("upload.confirmed", 9),  # the last uploads, then the purge
]
JITTER_S = 0.02


def test_power_cut_while_importing(make_rig: Callable[..., Rig]) -> None:
    rng = random.Random(20261207)
    # First an import that finished, then a cut: a completed import is wholly durable.
    first = make_rig("clean")
    assert first.run("import", str(first.cam)) == 0
    first.layer.cut()
    assert len(first.reported_held) == len(first.manifest.files)
    summary = first.recover_and_check()
    assert summary["files_sealed"] == 0, "a completed import was not durable"
    mid_run = 0
    for round_, (event, nth) in enumerate(IMPORT_CUTS):
        rig = make_rig(f"round{round_}")
        proc, log = rig.start("import", str(rig.cam))
        rig.wait_for(proc, log, event, nth)
        time.sleep(rng.uniform(0.0, JITTER_S))
        mid_run += rig.kill_together(proc, log)
        rig.layer.cut()
        if round_ % 2:
            # The power fails again while the agent recovers from the first cut.
            proc, log = rig.start("import", str(rig.cam))
            rig.wait_for(proc, log, "session.opened", 1)
            time.sleep(rng.uniform(0.0, JITTER_S))
            rig.kill_together(proc, log)
            rig.layer.cut()
        rig.recover_and_check()
    assert mid_run == len(IMPORT_CUTS), "an import finished before its cut"


def test_power_cut_while_uploading_and_purging(make_rig: Callable[..., Rig]) -> None:
    rng = random.Random(20261208)
    first = make_rig("clean")
    assert first.run("import", str(first.cam)) == 0
    assert first.run("sync", "--once") == 0
    first.layer.cut()  # after a finished sync: confirmed, purged, and the sink holds them
    first.recover_and_check(sync=True)
    mid_run = 0
    for round_, (event, nth) in enumerate(SYNC_CUTS):
        rig = make_rig(f"round{round_}")
        assert rig.run("import", str(rig.cam)) == 0
        proc, log = rig.start("sync", "--once")
        rig.wait_for(proc, log, event, nth)
        time.sleep(rng.uniform(0.0, JITTER_S))
        mid_run += rig.kill_together(proc, log)
        rig.layer.cut()
        rig.recover_and_check(sync=True)
    assert mid_run == len(SYNC_CUTS), "a sync finished before its cut"


def test_power_cut_of_station_and_sink_together(
    make_rig: Callable[..., Rig], tmp_path: Path
) -> None:
    """The directory sink on a disk that loses power with the station (a NAS on the same
    circuit): what the sink confirmed, and the station purged, must still be at the sink."""
    rig = make_rig()
    sink_layer = PowerCutFS(
        tmp_path / "nas" / "backing", tmp_path / "nas" / "mnt", tmp_path / "nas" / "state"
    )
    sink_layer.start()
    try:
        rig.sink = sink_layer.mountpoint / "evidence"
        rig.station.configure(CONFIG.format(sink=rig.sink))
        assert rig.run("import", str(rig.cam)) == 0
        assert rig.run("sync", "--once") == 0  # confirmed and, with no grace, purged
        sink_layer.kill()
        rig.layer.cut()
        sink_layer.cut()
        rig.recover_and_check(sync=True)
        assert len(directory_sink_objects(rig.sink)[0]) == len(rig.manifest.files)
    finally:
        sink_layer.stop()
