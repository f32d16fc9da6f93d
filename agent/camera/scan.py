"""Walk a mounted camera volume and list what is on it, safely.

Every entry is looked at with lstat relative to its directory's descriptor; links are never
followed, special files never opened, other file systems mounted inside never entered. Every
regular file becomes a Candidate and everything else a ScanProblem with a reason: nothing on
the volume is skipped silently but the station's own regular files at the root that the caller
names as reserved (a verified binding, agent.ingest.binding): accounted for, not evidence.
This module reads directory listings only, never file content.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime

from agent.camera import volume
from agent.camera.profile import Profile
from agent.camera.profile_classify import DirectoryClassifier, FileClass
from agent.core.model import Candidate, ScanProblem, ScanResult

# Deeper than any camera layout; deep enough for hostile trees (tested with 300 levels).
# The walk holds one descriptor per level of the directory it is in (O(depth), never one per
# sibling: a camera with thousands of directories exhausted RLIMIT_NOFILE, getrlimit(2), and
# the directories opened last, RECORD among them, were not walked).
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


def scan_volume(
    root_fd: int, profile: Profile, capacity: int, reserved: frozenset[bytes] = frozenset()
) -> ScanResult:
    """Every regular file below root_fd as a Candidate, everything else as a ScanProblem.

    capacity is the volume's size in bytes (0 when the file system does not say); a file that
    claims more is reported, not listed. A regular file at the root named in `reserved` is
    neither. Candidates come back sorted by path.
    """
    walk = _Walk(root_fd, profile, capacity, reserved)
    walk.run()
    walk.candidates.sort(key=lambda c: c.rel_path)
    return ScanResult(tuple(walk.candidates), tuple(walk.problems), walk.dirs, tuple(walk.ignored))


_Subdir = tuple[bytes, bytes, os.stat_result]  # name, path below the root, lstat as listed
# A listed file's identity, as four ints of its lstat (size, mtime_ns, dev, ino): a whole
# stat_result (two dozen fields, floats among them) held for each of a directory's files was
# most of the scan's memory on a camera with 100,000 files in one directory.
_Stat = tuple[int, int, int, int]


@dataclass
class _Frame:
    """A directory on the walk's current path: its descriptor and the subdirectories left."""

    fd: int
    rel: bytes
    depth: int
    subdirs: list[_Subdir]


class _Walk:
    """One depth-first walk of a volume: the descriptor stack and what was found so far."""

    def __init__(
        self, root_fd: int, profile: Profile, capacity: int, reserved: frozenset[bytes]
    ) -> None:
        self.root_fd = root_fd
        self.reserved = reserved
        self.root_dev = os.fstat(root_fd).st_dev
        self.profile = profile
        self.classifier = DirectoryClassifier(profile)
        self.capacity = capacity
        self.candidates: list[Candidate] = []
        self.problems: list[ScanProblem] = []
        self.ignored: list[ScanProblem] = []
        self.dirs = 0
        # The directories on the current path, root first; only these are open.
        self.stack: list[_Frame] = []

    def run(self) -> None:
        """Depth first: list a directory, then enter its subdirectories one at a time, each
        opened relative to its parent (O_NOFOLLOW) and checked to be the one listed."""
        try:
            self._enter(os.dup(self.root_fd), b"", 0)
            while self.stack:
                frame = self.stack[-1]
                if not frame.subdirs:
                    self.stack.pop()
                    os.close(frame.fd)
                    continue
                name, rel, st = frame.subdirs.pop()
                sub = self._open_child(frame.fd, name, rel, st)
                if sub >= 0:
                    self._enter(sub, rel, frame.depth + 1)
        finally:
            for frame in self.stack:
                os.close(frame.fd)
            self.stack.clear()

    def _enter(self, dir_fd: int, dir_rel: bytes, depth: int) -> None:
        """List one directory (its descriptor is owned from here): its files become candidates,
        and it goes on the stack with its subdirectories still to walk."""
        self.dirs += 1
        try:
            listed = self._directory(dir_fd, dir_rel, depth)
        except BaseException:
            os.close(dir_fd)
            raise
        if listed is None:
            os.close(dir_fd)
            return
        files_here, subdirs = listed
        self._files(dir_rel, files_here)
        subdirs.reverse()  # popped from the end: walked in name order
        self.stack.append(_Frame(dir_fd, dir_rel, depth, subdirs))

    def _directory(
        self, dir_fd: int, dir_rel: bytes, depth: int
    ) -> tuple[dict[bytes, _Stat], list[_Subdir]] | None:
        """The regular files and the subdirectories to walk of one directory (None: unreadable)."""
        try:
            entries = _list(dir_fd)
        except OSError as exc:
            self.problems.append(ScanProblem(dir_rel or b".", f"directory unreadable: {exc}"))
            return None
        files_here: dict[bytes, _Stat] = {}
        subdirs: list[_Subdir] = []
        for name in entries:
            rel = _join(dir_rel, name)
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as exc:
                self.problems.append(ScanProblem(rel, f"cannot stat: {exc.strerror}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if self._may_descend(rel, st, depth + 1):
                    subdirs.append((name, rel, st))
            elif stat.S_ISREG(st.st_mode):
                if not (dir_rel == b"" and name in self.reserved):
                    files_here[name] = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
            else:
                what = next((w for test, w in _SPECIAL if test(st.st_mode)), "not a regular file")
                self.problems.append(ScanProblem(rel, f"{what}: not read"))
        return files_here, subdirs

    def _may_descend(self, rel: bytes, st: os.stat_result, depth: int) -> bool:
        """Is a subdirectory to be walked: not another file system, not too deep?"""
        if st.st_dev != self.root_dev:
            self.problems.append(
                ScanProblem(rel, "another file system is mounted here; not entered")
            )
            return False
        if depth > MAX_DEPTH:
            self.problems.append(ScanProblem(rel, f"deeper than {MAX_DEPTH} levels; not walked"))
            return False
        return True

    def _open_child(self, dir_fd: int, name: bytes, rel: bytes, listed: os.stat_result) -> int:
        """The subdirectory's descriptor, or -1 (a problem recorded) when it cannot be opened
        or is no longer the directory that was listed (replaced while the volume was walked)."""
        try:
            sub = os.open(name, volume.DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            self.problems.append(ScanProblem(rel, f"directory cannot be opened: {exc.strerror}"))
            return -1
        try:
            st = os.fstat(sub)
        except BaseException:
            os.close(sub)
            raise
        if (st.st_dev, st.st_ino) != (listed.st_dev, listed.st_ino):
            os.close(sub)
            self.problems.append(
                ScanProblem(rel, "directory replaced while the volume was walked; not walked")
            )
            return -1
        return sub

    def _files(self, dir_rel: bytes, files_here: dict[bytes, _Stat]) -> None:
        """One directory's regular files as candidates, named by the profile
        (agent.camera.profile_classify: kind, times, markers, partners, ignored)."""
        for fc in self.classifier.directory(dir_rel, list(files_here)):
            st = files_here[fc.rel_path.rpartition(b"/")[2]]
            if fc.ignored:
                self.ignored.append(ScanProblem(fc.rel_path, fc.ignored))
            elif self.capacity and st[0] > self.capacity:  # 0: the file system does not say
                self.problems.append(
                    ScanProblem(
                        fc.rel_path,
                        f"claims {st[0]} bytes, more than the whole volume "
                        f"({self.capacity}): sparse or corrupt entry; not copied",
                    )
                )
            else:
                self.candidates.append(candidate(fc, st))


def candidate(fc: FileClass, st: _Stat) -> Candidate:
    """A regular file as a Candidate: only files in the layout's roots are recordings."""
    in_root, info = fc.in_root, fc.info
    size, mtime_ns, dev, ino = st
    return Candidate(
        rel_path=fc.rel_path,
        size=size,
        mtime_ns=mtime_ns,
        dev=dev,
        ino=ino,
        kind=fc.kind,
        recorded_start=info.recorded_start if in_root else "",
        recorded_end=(camera_wall_time(mtime_ns) if in_root and info.recorded_start else ""),
        segment=info.segment if in_root else None,
        important=fc.important,
        wipeable=in_root,
        channel=info.channel if in_root else "",
        partner_of=fc.partner_of,
        note=fc.note,
        marked_by=fc.marked_by,
    )


def _join(dir_rel: bytes, name: bytes) -> bytes:
    return dir_rel + b"/" + name if dir_rel else name


def _list(dir_fd: int) -> list[bytes]:
    # os.scandir on a descriptor yields str names decoded with surrogateescape; fsencode
    # gives back the exact bytes of the directory entry.
    with os.scandir(dir_fd) as it:
        return sorted(os.fsencode(entry.name) for entry in it)
