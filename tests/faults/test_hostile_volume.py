"""Hostile camera volumes: nothing outside the volume is read, nothing hangs, no raw control
bytes reach a log or a terminal, every regular file is sealed or reported with a reason, and
nothing is wiped while a file is unaccounted for.

Every import runs with `wipe_policy = "after_seal"` and no staging reserve, so a wrongful wipe
would actually remove files and be seen. Expected hashes are computed here with hashlib from
the bytes written (or read back through the mount), never taken from the agent. The ext4 and
FAT tests need root, loop devices and FUSE; they fail (not skip) when those are missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station
from tests.support.evidence import assert_all_sealed, rows
from tests.support.sealed_mode import plain_sha256
from tests.support.volumes import mount_fat, sha256_file

CONFIG = """station_id = "HOSTILE"
[storage]
reserve_bytes = 0
[ingest]
wipe_policy = "after_seal"
"""

# Small copy pieces make a 64 MiB read last long enough for appends to land inside it.
GROW_CONFIG = """station_id = "HOSTILE"
[storage]
reserve_bytes = 0
copy_chunk_bytes = 65536
[ingest]
wipe_policy = "after_seal"
"""

IMPORT_TIMEOUT_S = 120  # "nothing hangs": every import here takes seconds
BULK_FILES = 10_000
BULK_BOUND_S = 240  # catches a hang, not a slow disk
DAY = b"RECORD/20261127/"
CUSTODY = ("sealed", "uploading", "confirmed")
# What may never reach a log line or a terminal unescaped (besides "\n" ending a line).
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co"}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# --- helpers ----------------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha_prefix(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while size > 0 and (piece := fh.read(min(size, 1 << 20))):
            digest.update(piece)
            size -= len(piece)
    return digest.hexdigest()


def _cli(station: Station, *args: str, timeout: float = IMPORT_TIMEOUT_S) -> Any:
    """Run the real CLI; output kept as raw bytes so nothing is decoded away before we look."""
    return station.run_bytes(*args, timeout=timeout)


def _popen(station: Station, *args: str) -> subprocess.Popen[bytes]:
    return station.start(*args, pipe=True)


def _show(proc: Any) -> str:
    return (proc.stdout + b"\n" + proc.stderr).decode("utf-8", "backslashreplace")[-6000:]


def _assert_printable(label: str, data: bytes) -> str:
    """Output is valid UTF-8 and holds no raw control, bidi, format or separator character."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"{label} is not valid UTF-8 (a raw name byte?): {exc}") from exc
    bad = [
        (i, f"U+{ord(ch):04X}")
        for i, ch in enumerate(text)
        if ch != "\n" and unicodedata.category(ch) in _FORBIDDEN_CATEGORIES
    ]
    assert not bad, f"{label} holds raw control/format characters at {bad[:10]}"
    return text


def _log_events(stderr: bytes) -> list[dict[str, Any]]:
    text = _assert_printable("stderr (log)", stderr)
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _summary(proc: Any) -> dict[str, Any]:
    return json.loads(_assert_printable("stdout", proc.stdout))


def _problem_map(summary: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for problem in summary["problems"]:
        out.setdefault(problem["file"], []).append(problem["reason"])
    return out


def _file_rows(station: Station, serial: str) -> list[dict[str, Any]]:
    return rows(station.data_dir, "SELECT * FROM files WHERE device_serial=?", (serial,))


def _staged_hashes(station: Station) -> dict[str, str]:
    """sha256 of every staged evidence file as stored, keyed by path below staging. Left out: the signed
    sidecars and upload receipts beside each copy, and the chain's own files (`_chain/`: the
    head and the audit sidecars), which are no camera's evidence."""
    if not station.staging.exists():
        return {}
    return {
        p.relative_to(station.staging).as_posix(): sha256_file(p)
        for p in station.staging.rglob("*")
        if p.is_file()
        and not p.name.endswith((".custody.json", ".upload.json"))
        and p.relative_to(station.staging).parts[0] != "_chain"
    }


# Copies of a sealed station decrypted with Debian's `age` per check (one process each: all
# 10,000 of a camera would outlast the test); the others are held to the ciphertext hash their
# row names, which the row's signed record also names beside the camera's hash.
DECRYPTED_SAMPLE = 16


def _assert_custody_consistent(station: Station) -> dict[str, str]:
    """No staged copy differs from its row, none is orphaned, no temp file is left behind,
    and every file wiped from a camera is in custody with a matching staged copy. Returns the
    camera's hash of each staged copy, by path below staging."""
    stored = _staged_hashes(station)
    leftovers = [p for p in stored if p.endswith(".part")]
    assert not leftovers, f"temporary files left in staging: {leftovers[:5]}"
    identity = station.identity
    staged: dict[str, str] = {}
    by_staged: dict[str, dict[str, Any]] = {}
    for row in rows(station.data_dir):
        if row["staged_path"]:
            path = row["staged_path"]
            by_staged[path] = row
            expected = row["sha256"] if identity is None else row["stored_sha256"]
            assert stored.get(path) == expected, (
                f"staged copy of {row['camera_name']} differs from its row"
            )
            if identity is not None and len(staged) < DECRYPTED_SAMPLE:
                assert plain_sha256(station.staging / path, identity) == row["sha256"], path
            staged[path] = row["sha256"]
        if row["wiped_at"]:
            assert row["state"] in CUSTODY, f"{row['camera_name']} wiped in state {row['state']}"
            assert row["staged_path"] and staged.get(row["staged_path"]) == row["sha256"]
    orphans = sorted(set(stored) - set(by_staged))
    assert not orphans, f"staged files without a row: {orphans[:5]}"
    return staged


def _walk_fd(root: Path | str, rel: bytes) -> tuple[int, bytes]:
    """Open the parent directory of rel below root without following links (works beyond
    PATH_MAX); returns (descriptor, last name)."""
    parts = rel.split(b"/")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _make_file(root: Path, rel: bytes, data: bytes) -> None:
    root.mkdir(parents=True, exist_ok=True)
    parts = rel.split(b"/")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open(
            parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fd
        )
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        finally:
            os.close(out)
    finally:
        os.close(fd)


def _lstat(root: Path | str, rel: bytes) -> os.stat_result | None:
    try:
        fd, name = _walk_fd(root, rel)
    except FileNotFoundError:
        return None
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)


def _read(root: Path | str, rel: bytes) -> bytes:
    fd, name = _walk_fd(root, rel)
    try:
        f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(f, "rb") as fh:
        return fh.read()


def _regular_files(root: Path, skip: frozenset[bytes] = frozenset()) -> dict[bytes, str]:
    """sha256 of every regular file below root (links not followed, other file systems not
    entered, paths in `skip` not read), keyed by raw relative path."""
    base = os.fsencode(root)
    root_dev = os.stat(base).st_dev
    found: dict[bytes, str] = {}

    def fail(exc: OSError) -> None:
        raise exc

    for dirpath, dirnames, filenames in os.walk(base, onerror=fail):
        dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == root_dev]
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            if rel in skip or not stat.S_ISREG(os.lstat(full).st_mode):
                continue
            found[rel] = sha256_file(full)
    return found


def _require(*tools: str, fuse: bool = False) -> None:
    """Fail (never skip) with the reason when this machine cannot run a mount test."""
    missing = [f"{tool} not on PATH" for tool in tools if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.insert(0, "not running as root")
    if fuse and not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse missing")
    if missing:
        pytest.fail("hostile-volume mount test cannot run here: " + "; ".join(missing))


def _quiet(*cmd: str) -> int:
    return subprocess.run(
        list(cmd), stdin=subprocess.DEVNULL, capture_output=True, check=False
    ).returncode


def _must(*cmd: str) -> str:
    proc = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode().strip()}")
    return proc.stdout.decode().strip()


def _is_mounted(path: Path) -> bool:
    target = os.path.realpath(path).encode()
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split(b" ")[4] == target for line in f)


def _unmount(path: Path) -> None:
    for cmd in (["umount", str(path)], ["umount", "-l", str(path)]):
        if not _is_mounted(path):
            return
        _quiet(*cmd)


# --- 1. hostile names on a directory camera ---------------------------------------------------

# A path below RECORD longer than PATH_MAX (4096): only descriptor-relative access reaches it.
BEYOND_PATH_MAX = b"RECORD/LONG/" + (b"D" * 250 + b"/") * 17 + b"beyond_PATH_MAX.MP4"

HOSTILE_NAMES: list[tuple[bytes, int]] = [  # (path, size); 0 = zero-length
    (b"DEVICE.INF", -1),
    (b"LOG/SYSTEM.LOG", 0),
    (b"\x1b[31mROOT\x1b[0m.TXT", 900),
    (DAY + b"HOSTILE1_1_20261127080000_0001.MP4", 40_000),
    (DAY + b"HOSTILE1_1_20261127080000_0001.IMP", 0),
    (DAY + b"\x1b[2J\x1b[31mCLEARED\x1b[0m.MP4", 3_000),
    (DAY + b"tab\there\nnewline\rcarriage.MP4", 3_001),
    (DAY + b"bell\x07del\x7fctl\x01\x1f.MP4", 3_002),
    (DAY + "report\u202e4pm.MP4".encode(), 3_003),
    (DAY + "\u2066isolate\u2069 zwj\u200d line\u2028sep.MP4".encode(), 3_004),
    (DAY + b"bad\xff\xfeutf8.MP4", 3_005),
    (DAY + b"\xc3(overlong\xc0\xaf.MP4", 3_006),
    (DAY + b"\xed\xa0\x80surrogate.MP4", 3_007),
    (DAY + b"back\\slash \\x41 \\u202e.MP4", 3_008),
    (DAY + b"L" * 251 + b".MP4", 3_009),
    (DAY + "\u65e5".encode() * 83 + b".MP4", 3_010),
    (DAY + b"a.mp4", 11),
    (DAY + b"A.MP4", 12),
    (DAY + b"A.mp4", 13),
    (DAY + b"EMPTY.MP4", 0),
    (DAY + b"-rf --help.MP4", 100),
    (DAY + b" spaces around .MP4 ", 101),
    (DAY + b"...", 102),
    (b"RECORD/\x1b]0;owned\x07\xe2\x80\xae/inside.MP4", 2_000),
    (BEYOND_PATH_MAX, 5_000),
]


def test_hostile_names_are_sealed_and_never_printed_raw(station: Station, tmp_path: Path) -> None:
    station.configure(CONFIG)
    cam = tmp_path / "cam"
    cam.mkdir()
    rng = random.Random(7)
    expected: dict[bytes, str] = {}
    for rel, size in HOSTILE_NAMES:
        data = b"serial=HOSTILE1\nofficer_id=1\n" if size < 0 else rng.randbytes(size)
        _make_file(cam, rel, data)
        expected[rel] = _sha(data)
    assert len(BEYOND_PATH_MAX) > 4096

    proc = _cli(station, "import", str(cam), "--json")
    assert proc.returncode == 0, _show(proc)
    summary = _summary(proc)
    events = _log_events(proc.stderr)
    assert summary["problems"] == [] and summary["complete"] is True
    assert summary["files_sealed"] == len(expected)

    # Every file sealed once, with the hash of the bytes written here.
    assert_all_sealed(station.data_dir, "HOSTILE1", expected)
    held = _file_rows(station, "HOSTILE1")
    paths = sorted(bytes(r["camera_path"]) for r in held)
    assert paths == sorted(expected), "a file is missing or listed more than once"
    _assert_custody_consistent(station)

    # Names reach the database, logs and terminals only escaped.
    for row in held:
        _assert_printable(f"camera_name of file {row['id']}", row["camera_name"].encode())
    sealed_names = {e["file"] for e in events if e.get("event") == "file.sealed"}
    assert len(sealed_names) == len(expected)
    for needle in (
        "\\u202e",
        "\\u001b",
        "\\xff",
        "\\u2066",
        "\\u200d",
        "\\u2028",
        "\\u000a",
        "\\u0009",
    ):
        assert any(needle in name for name in sealed_names), f"{needle} not shown escaped"
    assert any("back\\\\slash \\\\x41 \\\\u202e" in name for name in sealed_names), (
        "a literal backslash must be doubled so it cannot pose as an escape"
    )

    # after_seal: every recording (RECORD/...) was wiped, everything else stays; all held.
    recordings = [p for p in expected if p.startswith(b"RECORD/")]
    assert summary["wipe"]["state"] == "wiped" and summary["wipe"]["wiped"] == len(recordings)
    for rel in expected:
        present = _lstat(cam, rel) is not None
        assert present == (not rel.startswith(b"RECORD/")), (rel, present)

    for command in (("queue",), ("status",), ("verify",)):
        shown = _cli(station, *command)
        assert shown.returncode == 0, _show(shown)
        _assert_printable(f"{command[0]} stdout", shown.stdout)
        _assert_printable(f"{command[0]} stderr", shown.stderr)


# --- 2. ten thousand small files --------------------------------------------------------------


@contextlib.contextmanager
def _ram_dir(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory on /dev/shm when that is a tmpfs, else below tmp_path.

    10,000 files cost 10,000 file and directory fsyncs in staging and as many in wiping; on a
    shared, busy disk those alone took 120-270 s here. On tmpfs what remains is the agent's own
    per-file work, which is what a hang bound should watch.
    """
    with open("/proc/self/mountinfo", "rb") as f:
        shm = any(
            line.split(b" ")[4] == b"/dev/shm" and line.split(b" - ")[1].startswith(b"tmpfs ")
            for line in f
        )
    if not (shm and os.access("/dev/shm", os.W_OK)):
        yield tmp_path
        return
    scratch = Path(tempfile.mkdtemp(prefix="dockagent-hostile-", dir="/dev/shm"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.slow
def test_ten_thousand_small_files_are_all_sealed(station: Station, tmp_path: Path) -> None:
    station.configure(CONFIG)
    with _ram_dir(tmp_path) as scratch:
        cam = scratch / "cam"
        if scratch != tmp_path:  # the station's data directory on the same tmpfs
            (scratch / "data").mkdir()
            station.data_dir.symlink_to(scratch / "data")
        rng = random.Random(10_000)
        expected: dict[bytes, str] = {}
        _make_file(cam, b"DEVICE.INF", b"serial=BULK1\n")
        expected[b"DEVICE.INF"] = _sha(b"serial=BULK1\n")
        for i in range(BULK_FILES):
            day = 20261120 + i % 4
            rel = f"RECORD/{day}/BULK1_7_{day}080000_{i // 4:04d}.JPG".encode()
            data = rng.randbytes(rng.randint(1024, 4096))
            _make_file(cam, rel, data)
            expected[rel] = _sha(data)

        started = time.monotonic()
        proc = _cli(station, "import", str(cam), "--json", timeout=BULK_BOUND_S + 60)
        elapsed = time.monotonic() - started
        assert proc.returncode == 0, _show(proc)
        assert elapsed < BULK_BOUND_S, f"importing {BULK_FILES} small files took {elapsed:.0f}s"
        summary = _summary(proc)
        assert summary["files_sealed"] == len(expected) and not summary["problems"]
        assert_all_sealed(station.data_dir, "BULK1", expected)
        assert len(_file_rows(station, "BULK1")) == len(expected)
        _assert_custody_consistent(station)
        assert summary["wipe"]["wiped"] == BULK_FILES
        verify = _cli(station, "verify", timeout=BULK_BOUND_S)
        assert verify.returncode == 0, _show(verify)
        print(f"\n{BULK_FILES} small files imported in {elapsed:.1f}s (in {scratch})")


# --- 3. a file that grows while it is read ----------------------------------------------------

GROW_SIZE = 64 << 20
GROW_NAME = DAY + b"GROW1_1_20261127090000_0002.MP4"


def _agent_position(pid: int, target: str) -> int | None:
    """Read offset of the agent's descriptor on `target` (None if it does not hold it open)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != target:
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                for line in info:
                    if line.startswith("pos:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


@dataclass
class Appender:
    """Appends to a camera file from a thread while the import process runs."""

    path: Path
    pid: int
    wait_for_open: bool  # start only once the agent holds the file open (it is being read)
    chase: bool = False  # keep the file well ahead of the agent's read position, up to `cap`
    cap: int = 256 << 20
    done: threading.Event = field(default_factory=threading.Event)
    appended: int = 0
    saw_open: bool = False
    max_position: int = 0
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._guarded, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        assert self.thread is not None
        self.thread.join(timeout=30)
        if self.error is not None:
            raise self.error

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by stop() in the test's thread
            self.error = exc

    def _position(self, target: str) -> int | None:
        pos = _agent_position(self.pid, target)
        if pos is not None:
            self.saw_open = True
            self.max_position = max(self.max_position, pos)
        return pos

    def _run(self) -> None:
        target = os.path.realpath(self.path)
        piece = os.urandom(16 << 20 if self.chase else 4096)  # ready before the agent opens
        if self.wait_for_open:
            while not self.done.is_set() and self._position(target) is None:
                time.sleep(0.0002)
        out = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            while not self.done.is_set():
                pos = self._position(target)
                if self.chase:
                    if pos is None:
                        return  # the agent is done with the file
                    lead = os.fstat(out).st_size - pos
                    if self.appended >= self.cap or lead > 128 << 20:
                        time.sleep(0.0005)
                        continue
                self.appended += os.write(out, piece)
                if not self.chase:
                    time.sleep(0.001)  # about 4 MB/s: slower than any read
        finally:
            os.close(out)


def _grow_camera(tmp_path: Path) -> tuple[Path, dict[bytes, str]]:
    cam = tmp_path / "cam"
    rng = random.Random(64)
    expected: dict[bytes, str] = {}
    files = {
        b"DEVICE.INF": b"serial=GROW1\nofficer_id=1\n",
        DAY + b"GROW1_1_20261127080000_0001.MP4": rng.randbytes(300_000),
        DAY + b"GROW1_1_20261127100000_0003.MP4": rng.randbytes(200_000),
        b"LOG/SYSTEM.LOG": b"2026-11-27 08:00:00 BOOT\n",
    }
    for rel, data in files.items():
        _make_file(cam, rel, data)
        expected[rel] = _sha(data)
    with open(cam / os.fsdecode(GROW_NAME), "wb") as fh:
        for _ in range(GROW_SIZE >> 20):
            fh.write(rng.randbytes(1 << 20))
    return cam, expected


def _check_growing_outcome(
    station: Station, cam: Path, expected: dict[bytes, str], proc: Any, appender: Appender
) -> str:
    """The common verdict: the growing file is never sealed with a wrong hash and nothing is
    wiped while it is unaccounted for. Returns the outcome seen, for the test to narrow."""
    assert appender.appended > 0, "the file never grew: the test proved nothing"
    summary = _summary(proc)
    _log_events(proc.stderr)
    staged = _assert_custody_consistent(station)
    held = {bytes(r["camera_path"]): r for r in _file_rows(station, "GROW1")}
    final_size = os.stat(cam / os.fsdecode(GROW_NAME)).st_size
    assert final_size == GROW_SIZE + appender.appended
    grow = held[GROW_NAME]
    for rel, sha in expected.items():  # the other files are unaffected
        assert held[rel]["state"] in CUSTODY and held[rel]["sha256"] == sha, rel
    if grow["state"] in CUSTODY:
        # Sealed: only valid for exactly the bytes the camera held when it was listed.
        prefix = _sha_prefix(cam / os.fsdecode(GROW_NAME), grow["size"])
        assert grow["sha256"] == prefix, "sealed with a hash of no state the file was in"
        assert staged[grow["staged_path"]] == grow["sha256"]
        assert proc.returncode == 0, _show(proc)
        return "sealed"
    reasons = _problem_map(summary).get(GROW_NAME.decode(), [])
    assert reasons and all("changed" in r for r in reasons), summary["problems"]
    assert "changed" in grow["reason"], grow["reason"]
    assert grow["state"] in ("discovered", "failed") and not grow["staged_path"]
    assert proc.returncode == 3, _show(proc)
    # Unaccounted: not one file of the camera may have been wiped.
    assert summary["wipe"]["state"] == "not wiped", summary["wipe"]
    assert not [r for r in held.values() if r["wiped_at"] or r["wipe_started_at"]]
    for rel, sha in expected.items():
        assert sha256_file(cam / os.fsdecode(rel)) == sha, f"{rel!r} changed or vanished"
    return reasons[0]


@pytest.mark.parametrize("when", ["from_start", "while_read"])
def test_a_file_that_grows_while_it_is_read_is_not_sealed_wrong(
    station: Station, tmp_path: Path, when: str
) -> None:
    station.configure(GROW_CONFIG)
    cam, expected = _grow_camera(tmp_path)
    proc = _popen(station, "import", str(cam), "--json")
    appender = Appender(cam / os.fsdecode(GROW_NAME), proc.pid, when == "while_read")
    appender.start()
    try:
        out, err = proc.communicate(timeout=IMPORT_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        appender.stop()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    outcome = _check_growing_outcome(station, cam, expected, result, appender)
    if when == "while_read":
        # The appends started once the agent had the file open, so its end-of-read check
        # is what must catch them.
        assert appender.saw_open
        assert outcome.startswith("changed while it was read"), outcome
    print(f"\n{when}: appended {appender.appended} bytes; outcome: {outcome}")


def test_a_file_growing_faster_than_it_is_read_is_not_chased(
    station: Station, tmp_path: Path
) -> None:
    """A file that keeps growing must not keep the copy reading: past its listed size the
    copy is already invalid, and a camera (or a hostile FUSE file) that never stops growing
    would otherwise hold the import forever and fill staging."""
    # The smallest copy pieces make the agent's read slower than the appends.
    station.configure(GROW_CONFIG.replace("65536", "4096"))
    cam, expected = _grow_camera(tmp_path)
    proc = _popen(station, "import", str(cam), "--json")
    appender = Appender(cam / os.fsdecode(GROW_NAME), proc.pid, True, chase=True)
    appender.start()
    try:
        out, err = proc.communicate(timeout=IMPORT_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        appender.stop()
    try:
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        outcome = _check_growing_outcome(station, cam, expected, result, appender)
        assert outcome.startswith("changed"), outcome
        assert appender.max_position <= GROW_SIZE + (1 << 20), (
            f"the copy read {appender.max_position} bytes of a file listed with {GROW_SIZE}: "
            "it chases a growing file instead of stopping past the listed size"
        )
    finally:
        (cam / os.fsdecode(GROW_NAME)).unlink()  # up to 320 MiB: do not keep it in tmp


# --- 4./5. an ext4 volume with links, special files, a sparse 1 TiB file, 300 levels -----------

EXT4_SERIAL = "EXT4CAM1"
HDAY = "RECORD/20261127"
DEPTH = 300


@dataclass
class Ext4Camera:
    mnt: Path
    expected: dict[bytes, str]  # every regular file the agent must seal
    problems: set[str]  # every entry the agent must report (names are plain ASCII)
    outside: dict[str, str]  # sha256 of files outside the volume that links point at
    entries: list[bytes]  # everything below the root, to prove nothing was removed


@pytest.fixture
def ext4_camera(tmp_path: Path) -> Iterator[Ext4Camera]:
    _require("mkfs.ext4", "losetup", "mount", "umount")
    outside_dir = tmp_path / "outside"
    outside_dir.mkdir()
    secret = outside_dir / "secret.bin"
    secret.write_bytes(b"outside the volume " + os.urandom(4096))
    image = tmp_path / "camera.ext4"
    with open(image, "wb") as fh:
        fh.truncate(96 << 20)
    # 4 KiB blocks: with the small-image default of 1 KiB a file cannot exceed 16 GiB.
    _must("mkfs.ext4", "-q", "-F", "-b", "4096", str(image))
    mnt = tmp_path / "mnt"
    inner = mnt / HDAY / "MOUNTED"
    mnt.mkdir()
    loop = _must("losetup", "--find", "--show", str(image))
    try:
        # Read-write on purpose: a wrongful wipe would really remove files.
        _must("mount", "-t", "ext4", loop, str(mnt))
        write_camera(
            CameraSpec(
                serial=EXT4_SERIAL,
                days=1,
                files_per_day=4,
                file_size=32 << 10,
                first_day=date(2026, 11, 20),
                docked_at=datetime(2026, 11, 21, 9, 0),
            ),
            mnt,
        )
        d = mnt / HDAY
        d.mkdir()
        (d / f"{EXT4_SERIAL}_1_20261127080000_0003.MP4").write_bytes(os.urandom(50_000))
        os.link(
            d / f"{EXT4_SERIAL}_1_20261127080000_0003.MP4",
            d / f"{EXT4_SERIAL}_1_20261127080000_0004.MP4",
        )
        links = {
            f"{EXT4_SERIAL}_1_20261127080000_0002.MP4": "/etc/shadow",
            "PASSWD.MP4": "../../../../../../../../etc/passwd",
            "ETC": "/etc",
            "SECRET.MP4": str(secret),
            "OUTSIDE_DIR": str(outside_dir),
            "LOOP_A.MP4": "LOOP_B.MP4",
            "LOOP_B.MP4": "LOOP_A.MP4",
            "DANGLING.MP4": "/nonexistent/file.MP4",
        }
        for name, target in links.items():
            os.symlink(target, d / name)
        os.mkfifo(d / f"{EXT4_SERIAL}_1_20261127080000_0001.MP4")
        os.mknod(d / "ZERO.MP4", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero: endless
        # The station's own root disk, named like a recording.
        os.mknod(d / "DISK.MP4", stat.S_IFBLK | 0o644, os.stat("/").st_dev)
        os.mknod(d / "SOCKET.MP4", stat.S_IFSOCK | 0o644)
        with open(d / "SPARSE.MP4", "wb") as fh:
            fh.truncate(1 << 40)
        deep = d
        for _ in range(DEPTH):
            deep /= "D"
            deep.mkdir()
        (deep / f"{EXT4_SERIAL}_1_20261127120000_0005.MP4").write_bytes(os.urandom(7000))
        sparse_rel = f"{HDAY}/SPARSE.MP4"
        expected = _regular_files(mnt, skip=frozenset({sparse_rel.encode()}))
        inner.mkdir()
        _must("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(inner))
        (inner / "INNER_SECRET.MP4").write_bytes(b"another file system " + os.urandom(64))
        problems = {f"{HDAY}/{n}" for n in links} | {
            f"{HDAY}/{n}"
            for n in (
                f"{EXT4_SERIAL}_1_20261127080000_0001.MP4",
                "ZERO.MP4",
                "DISK.MP4",
                "SOCKET.MP4",
                "SPARSE.MP4",
                "MOUNTED",
            )
        }
        outside = {
            str(p): sha256_file(p)
            for p in (Path("/etc/shadow"), Path("/etc/passwd"), secret, inner / "INNER_SECRET.MP4")
        }
        assert f"{HDAY}/{'D/' * DEPTH}{EXT4_SERIAL}_1_20261127120000_0005.MP4".encode() in expected
        entries = sorted(
            os.path.relpath(os.path.join(dp, n), os.fsencode(mnt))
            for dp, dns, fns in os.walk(os.fsencode(mnt))
            for n in dns + fns
        )
        yield Ext4Camera(mnt, expected, problems, outside, entries)
    finally:
        _unmount(inner)
        _unmount(mnt)
        _quiet("losetup", "-d", loop)


@pytest.mark.fuse
def test_ext4_links_special_files_sparse_and_depth(
    station: Station, ext4_camera: Ext4Camera
) -> None:
    station.configure(CONFIG)
    cam = ext4_camera
    started = time.monotonic()
    proc = _cli(station, "import", str(cam.mnt), "--json")  # raises on timeout: a hang
    elapsed = time.monotonic() - started
    assert proc.returncode == 3, _show(proc)
    summary = _summary(proc)
    _log_events(proc.stderr)

    # Every regular file (the one 300 levels down and both names of a hard link included)
    # is sealed with its hash; the sparse file and every special entry are reported.
    assert_all_sealed(station.data_dir, EXT4_SERIAL, cam.expected)
    held = sorted(bytes(r["camera_path"]) for r in _file_rows(station, EXT4_SERIAL))
    assert held == sorted(cam.expected), "a row exists for an entry that is not a regular file"
    reported = _problem_map(summary)
    assert set(reported) == cam.problems, (
        f"missing: {sorted(cam.problems - set(reported))}, "
        f"unexpected: {sorted(set(reported) - cam.problems)}"
    )
    for name, reasons in reported.items():
        assert len(reasons) == 1 and reasons[0].strip(), (name, reasons)
    assert (
        "sparse" in reported[f"{HDAY}/SPARSE.MP4"][0]
        or "1099511627776" in (reported[f"{HDAY}/SPARSE.MP4"][0])
    )

    # Nothing outside the volume was read into custody.
    staged = _assert_custody_consistent(station)
    for path, sha in cam.outside.items():
        assert sha not in staged.values(), f"content of {path} (outside the volume) was staged"
    unexpected = {p for p, sha in staged.items() if sha not in set(cam.expected.values())}
    assert not unexpected, f"staged files that are no file of the volume: {sorted(unexpected)}"

    # Entries are unaccounted for, so nothing may have been wiped: everything is still there.
    assert summary["wipe"]["state"] == "not wiped", summary["wipe"]
    after = sorted(
        os.path.relpath(os.path.join(dp, n), os.fsencode(cam.mnt))
        for dp, dns, fns in os.walk(os.fsencode(cam.mnt))
        for n in dns + fns
    )
    assert after == cam.entries
    sparse = f"{HDAY}/SPARSE.MP4".encode()
    assert _regular_files(cam.mnt, skip=frozenset({sparse})) == cam.expected
    assert os.stat(cam.mnt / os.fsdecode(sparse)).st_size == 1 << 40
    assert not rows(station.data_dir, "SELECT * FROM files WHERE wipe_started_at IS NOT NULL")

    verify = _cli(station, "verify")
    assert verify.returncode == 0, _show(verify)
    print(f"\next4 hostile volume imported in {elapsed:.1f}s")


def test_links_out_of_a_directory_camera_are_not_followed(station: Station, tmp_path: Path) -> None:
    """Files we own outside the camera, reached by absolute, relative and directory links
    named like recordings: never staged, never wiped through the link."""
    station.configure(CONFIG)
    outside = tmp_path / "outside"
    (outside / "RECORD").mkdir(parents=True)
    secret = outside / "secret.MP4"
    secret.write_bytes(b"not evidence of this camera " + os.urandom(2048))
    other = outside / "RECORD" / "LNK1_1_20261127090000_0009.MP4"
    other.write_bytes(os.urandom(3000))
    before = {p: sha256_file(p) for p in (secret, other)}
    cam = tmp_path / "cam"
    files = {
        b"DEVICE.INF": b"serial=LNK1\n",
        DAY + b"LNK1_1_20261127080000_0001.MP4": os.urandom(20_000),
    }
    for rel, data in files.items():
        _make_file(cam, rel, data)
    d = cam / os.fsdecode(DAY)
    os.symlink(secret, d / "LNK1_1_20261127080000_0002.MP4")
    os.symlink("../../../outside/secret.MP4", d / "LNK1_1_20261127080000_0003.MP4")
    os.symlink(outside / "RECORD", cam / "RECORD" / "20261128")

    proc = _cli(station, "import", str(cam), "--json")
    assert proc.returncode == 3, _show(proc)
    summary = _summary(proc)
    assert set(_problem_map(summary)) == {
        f"{DAY.decode()}LNK1_1_20261127080000_0002.MP4",
        f"{DAY.decode()}LNK1_1_20261127080000_0003.MP4",
        "RECORD/20261128",
    }
    assert_all_sealed(station.data_dir, "LNK1", {k: _sha(v) for k, v in files.items()})
    staged = _assert_custody_consistent(station)
    assert not set(before.values()) & set(staged.values()), "a file outside the camera was staged"
    assert summary["wipe"]["state"] == "not wiped"
    assert {p: sha256_file(p) for p in before} == before, "a file outside the camera was touched"
    for rel, data in files.items():
        assert _read(cam, rel) == data, rel


def test_a_device_inf_linking_outside_is_not_followed(station: Station, tmp_path: Path) -> None:
    station.configure(CONFIG)
    forged = tmp_path / "forged.inf"
    forged.write_bytes(b"serial=FORGED1\n")
    cam = tmp_path / "cam"
    _make_file(cam, DAY + b"FORGED1_1_20261127080000_0001.MP4", os.urandom(1000))
    os.symlink(forged, cam / "DEVICE.INF")
    proc = _cli(station, "import", str(cam))
    assert proc.returncode in (66, 77), _show(proc)  # unreadable or refused, never imported
    _assert_printable("stderr", proc.stderr)
    assert not _staged_hashes(station)
    assert (cam / os.fsdecode(DAY + b"FORGED1_1_20261127080000_0001.MP4")).exists()


# --- 6. a FAT32 image with what FAT can hold --------------------------------------------------

FAT_NAMES = [
    "\u202eevil_4pm.MP4",
    "\u2066iso\u2069 \u200dzwj.MP4",
    "a name with spaces.MP4",
    "L" * 200 + ".MP4",
    "\u65e5\u672c\u8a9e\u30d5\u30a1\u30a4\u30eb.MP4",
    "semi;colon,comma+plus=eq[1].MP4",
    "trailing.dots...MP4",
    "A.MP4",
    "EMPTY.MP4",
    "FATCAM1_1_20261127080000_0001.MP4",
]
# Valid FAT long names whose UTF-8 form exceeds Linux's 255-byte limit: the FUSE driver lists
# them cut to 255 bytes, under a name that cannot be opened. They must block the wipe.
FAT_TOO_LONG = ["\u65e5" * 86 + ".MP4", "\u65e5" * 100 + ".MP4"]


@pytest.mark.fuse
def test_fat32_hostile_names(station: Station, tmp_path: Path) -> None:
    _require("fusefat", "mkfs.vfat", "mcopy", "mmd", "umount", fuse=True)
    station.configure(CONFIG)
    src = tmp_path / "src"
    src.mkdir()
    image = tmp_path / "camera.fat"
    with open(image, "wb") as fh:
        fh.truncate(64 << 20)
    _must("mkfs.vfat", "-F", "32", str(image))
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", LC_ALL="C.UTF-8")

    def mtools(*cmd: str) -> None:
        # mcopy fails now and then (silently, writing nothing: fsck stays clean) on long names
        # whose UTF-8 form exceeds 255 bytes; a retry succeeds.
        for _ in range(25):
            proc = subprocess.run(
                list(cmd), env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
            )
            if proc.returncode == 0:
                return
        pytest.fail(f"{cmd[0]} {cmd[-1]!r} failed: {proc.stderr.decode(errors='replace')}")

    info = src / "info"
    info.write_bytes(b"serial=FATCAM1\nofficer_id=1\n")
    mtools("mcopy", "-i", str(image), str(info), "::/DEVICE.INF")
    mtools("mmd", "-i", str(image), "::/RECORD", "::/RECORD/20261127")
    for i, name in enumerate(FAT_NAMES + FAT_TOO_LONG):
        body = src / f"f{i}"
        body.write_bytes(b"" if name == "EMPTY.MP4" else os.urandom(500 + i))
        mtools("mcopy", "-i", str(image), str(body), f"::/RECORD/20261127/{name}")

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mount_fat(image, mnt, readonly=False) as mounted:  # rw: a wrongful wipe would show
        listing = sorted(os.listdir(mnt / "RECORD" / "20261127"))
        reachable: dict[bytes, str] = {}
        unreachable: list[str] = []
        for dirpath, _dirs, names in os.walk(mnt):
            for name in names:
                full = Path(dirpath) / name
                rel = os.fsencode(full.relative_to(mnt).as_posix())
                try:
                    reachable[rel] = sha256_file(full)
                except FileNotFoundError:
                    unreachable.append(rel.decode())
        assert len(reachable) == len(FAT_NAMES) + 1, sorted(reachable)
        assert len(unreachable) == len(FAT_TOO_LONG), unreachable

        proc = _cli(station, "import", str(mnt), "--json")
        assert proc.returncode == 3, _show(proc) + mounted.fuse_output()[-2000:]
        summary = _summary(proc)
        events = _log_events(proc.stderr)
        assert_all_sealed(station.data_dir, "FATCAM1", reachable)
        held = sorted(bytes(r["camera_path"]) for r in _file_rows(station, "FATCAM1"))
        assert held == sorted(reachable)
        reported = _problem_map(summary)
        for name in unreachable:
            assert reported.get(name), f"{name} neither sealed nor reported"
        _assert_custody_consistent(station)
        sealed = {e["file"] for e in events if e.get("event") == "file.sealed"}
        assert any("\\u202e" in n for n in sealed) and any("\\u200d" in n for n in sealed)

        assert summary["wipe"]["state"] == "not wiped", summary["wipe"]
        assert sorted(os.listdir(mnt / "RECORD" / "20261127")) == listing
        for rel, sha in reachable.items():
            assert sha256_file(mnt / os.fsdecode(rel)) == sha, rel
    verify = _cli(station, "verify")
    assert verify.returncode == 0, _show(verify)
