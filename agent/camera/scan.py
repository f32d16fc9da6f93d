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
from collections.abc import Iterator
from dataclasses import dataclass

from agent.camera import volume
from agent.camera.dirnames import SortedNames
from agent.camera.listing import Listing, camera_wall_time
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


def scan_volume(
    root_fd: int, profile: Profile, capacity: int, reserved: frozenset[bytes] = frozenset()
) -> ScanResult:
    """Every regular file below root_fd as a Candidate, everything else as a ScanProblem.

    capacity is the volume's size in bytes (0 when the file system does not say); a file that
    claims more is reported, not listed. A regular file at the root named in `reserved` is
    neither. Candidates come back sorted by path, in a compact Listing (agent.camera.listing).
    """
    walk = _Walk(root_fd, profile, capacity, reserved)
    walk.run()
    return ScanResult(walk.listing, tuple(walk.problems), walk.dirs, tuple(walk.ignored))


_Subdir = tuple[bytes, bytes, os.stat_result]  # name, path below the root, lstat as listed


@dataclass
class _Frame:
    """A directory on the walk's current path: its descriptor, its files not yet listed (name
    order, classified one at a time) and its subdirectories not yet walked (last: next)."""

    fd: int
    rel: bytes
    depth: int
    files: Iterator[tuple[bytes, FileClass]]
    next_file: tuple[bytes, FileClass] | None
    subdirs: list[_Subdir]


class _Walk:
    """One depth-first walk of a volume: the descriptor stack and what was found so far.

    Files are listed in the order of their paths: a directory's files and subdirectories are
    merged by name (a subdirectory as `name/`, the prefix of every path below it). A file is
    lstat'ed when its turn comes, so a directory holds its names, not a stat of each."""

    def __init__(
        self, root_fd: int, profile: Profile, capacity: int, reserved: frozenset[bytes]
    ) -> None:
        self.root_fd = root_fd
        self.reserved = reserved
        self.root_dev = os.fstat(root_fd).st_dev
        self.profile = profile
        self.classifier = DirectoryClassifier(profile)
        self.capacity = capacity
        self.listing = Listing()
        self.problems: list[ScanProblem] = []
        self.ignored: list[ScanProblem] = []
        self.dirs = 0
        # The directories on the current path, root first; only these are open.
        self.stack: list[_Frame] = []

    def run(self) -> None:
        """Depth first: list a directory, then take its files and subdirectories in path order,
        each subdirectory opened relative to its parent (O_NOFOLLOW) and checked to be the one
        listed."""
        try:
            self._enter(os.dup(self.root_fd), b"", 0)
            while self.stack:
                frame = self.stack[-1]
                item = frame.next_file
                sub = frame.subdirs[-1] if frame.subdirs else None
                if item is not None and (sub is None or item[0] < sub[0] + b"/"):
                    frame.next_file = next(frame.files, None)
                    self._file(frame, *item)
                elif sub is not None:
                    frame.subdirs.pop()
                    name, rel, st = sub
                    fd = self._open_child(frame.fd, name, rel, st)
                    if fd >= 0:
                        self._enter(fd, rel, frame.depth + 1)
                else:
                    self.stack.pop()
                    os.close(frame.fd)
        finally:
            for frame in self.stack:
                os.close(frame.fd)
            self.stack.clear()

    def _enter(self, dir_fd: int, dir_rel: bytes, depth: int) -> None:
        """List one directory (its descriptor is owned from here) and put it on the stack with
        its files and subdirectories still to take."""
        self.dirs += 1
        try:
            listed = self._directory(dir_fd, dir_rel, depth)
        except BaseException:
            os.close(dir_fd)
            raise
        if listed is None:
            os.close(dir_fd)
            return
        names, subdirs = listed
        files = zip(names, self.classifier.directory(dir_rel, names), strict=True)
        subdirs.sort(key=lambda sub: sub[0] + b"/", reverse=True)  # popped from the end
        self.stack.append(_Frame(dir_fd, dir_rel, depth, files, next(files, None), subdirs))

    def _directory(
        self, dir_fd: int, dir_rel: bytes, depth: int
    ) -> tuple[SortedNames, list[_Subdir]] | None:
        """The names of the regular files (read back sorted: agent.camera.dirnames) and the
        subdirectories to walk of one directory (None: unreadable). The entry's type as listed
        (d_type) sorts the two; an entry whose type the listing does not give, or that is
        neither, is lstat'ed here."""
        names = SortedNames()
        subdirs: list[_Subdir] = []
        try:
            with os.scandir(dir_fd) as entries:
                for entry in entries:
                    # On a descriptor, names come as str decoded with surrogateescape; fsencode
                    # gives back the exact bytes of the directory entry.
                    name = os.fsencode(entry.name)
                    if entry.is_file(follow_symlinks=False):
                        self._add_file(dir_rel, name, names)
                        continue
                    self._other(dir_fd, dir_rel, depth, name, names, subdirs)
        except OSError as exc:
            self.problems.append(ScanProblem(dir_rel or b".", f"directory unreadable: {exc}"))
            return None
        return names, subdirs

    def _other(
        self,
        dir_fd: int,
        dir_rel: bytes,
        depth: int,
        name: bytes,
        names: SortedNames,
        subdirs: list[_Subdir],
    ) -> None:
        """An entry the listing does not say is a regular file: lstat'ed, then a subdirectory
        to walk, a file after all, or a problem."""
        rel = _join(dir_rel, name)
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            self.problems.append(ScanProblem(rel, f"cannot stat: {exc.strerror}"))
            return
        if stat.S_ISDIR(st.st_mode):
            if self._may_descend(rel, st, depth + 1):
                subdirs.append((name, rel, st))
        elif stat.S_ISREG(st.st_mode):
            self._add_file(dir_rel, name, names)
        else:
            self.problems.append(ScanProblem(rel, f"{_what(st)}: not read"))

    def _add_file(self, dir_rel: bytes, name: bytes, names: SortedNames) -> None:
        """A regular file to list, unless it is one of the station's own at the root."""
        if not (dir_rel == b"" and name in self.reserved):
            names.add(name)

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

    def _file(self, frame: _Frame, name: bytes, fc: FileClass) -> None:
        """One regular file, named by the profile (agent.camera.profile_classify: kind, times,
        markers, partners, ignored) and lstat'ed now: a candidate, ignored, or a problem."""
        if fc.ignored:
            self.ignored.append(ScanProblem(fc.rel_path, fc.ignored))
            return
        try:
            st = os.stat(name, dir_fd=frame.fd, follow_symlinks=False)
        except OSError as exc:
            self.problems.append(ScanProblem(fc.rel_path, f"cannot stat: {exc.strerror}"))
            return
        if not stat.S_ISREG(st.st_mode):
            self.problems.append(ScanProblem(fc.rel_path, f"{_what(st)}: not read"))
        elif self.capacity and st.st_size > self.capacity:  # 0: the file system does not say
            self.problems.append(
                ScanProblem(
                    fc.rel_path,
                    f"claims {st.st_size} bytes, more than the whole volume "
                    f"({self.capacity}): sparse or corrupt entry; not copied",
                )
            )
        else:
            stat4 = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
            self.listing.append(candidate(fc, stat4), frame.rel, name)


# A listed file's identity, as four ints of its lstat (size, mtime_ns, dev, ino).
_Stat = tuple[int, int, int, int]


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


def _what(st: os.stat_result) -> str:
    """What an entry that is not a regular file is (a directory: one that appeared where the
    listing had a file)."""
    if stat.S_ISDIR(st.st_mode):
        return "a directory where a file was listed"
    return next((w for test, w in _SPECIAL if test(st.st_mode)), "not a regular file")
