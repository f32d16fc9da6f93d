"""Walk a mounted camera volume and list what is on it, safely.

Every entry is looked at with lstat relative to its directory's descriptor; links are never
followed, special files never opened, other file systems mounted inside never entered. Every
regular file becomes a Candidate and everything else a ScanProblem with a reason: nothing on
the volume is skipped silently. This module reads directory listings only, never file content.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime

from agent.camera import volume
from agent.camera.profile import Profile
from agent.core.model import Candidate, FileKind, ScanProblem, ScanResult

# Deeper than any camera layout; deep enough for hostile trees (tested with 300 levels).
# Each level holds one descriptor while its subdirectories are walked.
MAX_DEPTH = 512

_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def camera_wall_time(mtime_ns: int) -> str:
    """The camera's zone-less wall time for a file time as the FAT driver reported it.

    FAT stores local wall time without a zone; the FUSE drivers turn it into an epoch using the
    host's zone, so converting back with the host's zone gives the camera's wall clock reading.
    """
    return datetime.fromtimestamp(mtime_ns // 1_000_000_000).isoformat()


def scan_volume(root_fd: int, profile: Profile, capacity: int) -> ScanResult:
    root_dev = os.fstat(root_fd).st_dev
    record_prefix = profile.record_dir.encode() + b"/"
    metadata = {
        p.encode()
        for p in (profile.device_info, profile.system_log, profile.battery_log, profile.time_file)
    }
    candidates: list[Candidate] = []
    problems: list[ScanProblem] = []
    dirs = 0
    # Each stack frame: (descriptor of the directory, its path below the root, depth).
    stack: list[tuple[int, bytes, int]] = [(os.dup(root_fd), b"", 0)]
    try:
        while stack:
            dir_fd, dir_rel, depth = stack.pop()
            dirs += 1
            try:
                entries = _list(dir_fd)
            except OSError as exc:
                os.close(dir_fd)
                problems.append(ScanProblem(dir_rel or b".", f"directory unreadable: {exc}"))
                continue
            files_here: list[tuple[bytes, os.stat_result]] = []
            for name in entries:
                rel = dir_rel + b"/" + name if dir_rel else name
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError as exc:
                    problems.append(ScanProblem(rel, f"cannot stat: {exc.strerror}"))
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if st.st_dev != root_dev:
                        problems.append(
                            ScanProblem(rel, "another file system is mounted here; not entered")
                        )
                    elif depth + 1 > MAX_DEPTH:
                        problems.append(
                            ScanProblem(rel, f"deeper than {MAX_DEPTH} levels; not walked")
                        )
                    else:
                        try:
                            sub = os.open(name, volume.DIR_FLAGS, dir_fd=dir_fd)
                        except OSError as exc:
                            problems.append(
                                ScanProblem(rel, f"directory cannot be opened: {exc.strerror}")
                            )
                        else:
                            stack.append((sub, rel, depth + 1))
                elif stat.S_ISREG(st.st_mode):
                    files_here.append((name, st))
                else:
                    what = next(
                        (w for test, w in _SPECIAL if test(st.st_mode)), "not a regular file"
                    )
                    problems.append(ScanProblem(rel, f"{what}: not read"))
            os.close(dir_fd)
            names = {n: profile.classify(n) for n, _ in files_here}
            markers = {info.stem for info in names.values() if info.is_marker}
            for name, st in files_here:
                rel = dir_rel + b"/" + name if dir_rel else name
                if capacity and st.st_size > capacity:  # 0: the file system does not say
                    problems.append(
                        ScanProblem(
                            rel,
                            f"claims {st.st_size} bytes, more than the whole volume "
                            f"({capacity}): sparse or corrupt entry; not copied",
                        )
                    )
                    continue
                info = names[name]
                in_records = rel.startswith(record_prefix) and rel not in metadata
                candidates.append(
                    Candidate(
                        rel_path=rel,
                        size=st.st_size,
                        mtime_ns=st.st_mtime_ns,
                        dev=st.st_dev,
                        ino=st.st_ino,
                        kind=info.kind if in_records else FileKind.OTHER,
                        recorded_start=info.recorded_start if in_records else "",
                        recorded_end=(
                            camera_wall_time(st.st_mtime_ns)
                            if in_records and info.recorded_start
                            else ""
                        ),
                        segment=info.segment if in_records else None,
                        important=in_records and not info.is_marker and info.stem in markers,
                        wipeable=in_records,
                    )
                )
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    candidates.sort(key=lambda c: c.rel_path)
    return ScanResult(tuple(candidates), tuple(problems), dirs)


def _list(dir_fd: int) -> list[bytes]:
    # os.scandir on a descriptor yields str names decoded with surrogateescape; fsencode
    # gives back the exact bytes of the directory entry.
    with os.scandir(dir_fd) as it:
        return sorted(os.fsencode(entry.name) for entry in it)
