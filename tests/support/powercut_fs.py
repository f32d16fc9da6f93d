"""A FUSE file system that forgets, on command, everything that was never made durable.

For the power-loss tests: it passes every operation through to a backing directory and keeps,
beside it, a model of what a disk would still hold after the power went out (in the spirit of
LazyFS and dm-log-writes). The model is strict but POSIX-true (fsync(2), "NOTES"):

- a regular file's bytes and size become durable only when that file is fsynced (fsync or
  fdatasync, or a write through a descriptor opened O_SYNC/O_DSYNC); unsynced writes are
  dropped whole, never kept in part;
- a directory's entries (create, mkdir, symlink, link, unlink, rmdir, rename in or out) become
  durable only when that directory is fsynced: fsync of a file does not make its name durable;
- after a cut, a durable name whose file was never synced is zero-length (as on ext4 after a
  crash), a file synced earlier shows its last synced bytes, and a directory whose own entries
  were never synced is empty;
- syncfs(2) and sync(2) make nothing durable: Linux forwards them to no FUSE server but
  virtiofs (fuse_sync_fs() sends FUSE_SYNCFS only when fc->sync_fs is set), so a layer that
  honoured them would have to guess. fallocate is not offered (the kernel answers EOPNOTSUPP
  and glibc's posix_fallocate writes zeros instead); times and xattrs are not modelled.

Cutting the power (`PowerCutFS.cut`) SIGKILLs the server, so nothing more becomes durable,
detaches the mount, rebuilds the backing directory from the model and mounts it again. The
server runs as its own process (`python -m tests.support.powercut_fs serve BACKING MOUNTPOINT
STATE`), so the program under test can be killed apart from it. It must not import the agent,
keep anything it was not told to keep, or pretend that a syncfs reached it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.support.volumes import detach_mount, is_mounted

MOUNT_TIMEOUT_S = 15.0
MODEL = "model.json"
CONTENT = "content"
ROOT = 1
# Backing paths are bytes; FUSE hands us str. latin-1 maps every byte to one code point and
# back, so any name survives the round trip.
ENCODING = "latin-1"
_SYNC_FLAGS = os.O_SYNC | os.O_DSYNC


# ---- the server ------------------------------------------------------------------------------


@dataclass
class _Dirty:
    """What changed in a file since it was last synced."""

    ranges: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) written
    min_size: int | None = None  # smallest size it was truncated to, if it was


@dataclass
class _Handle:
    fd: int
    node: int
    sync: bool  # opened O_SYNC/O_DSYNC: each write is durable when it returns


def _copy_range(src: int, dst: int, offset: int, length: int) -> None:
    while length > 0:
        n = os.copy_file_range(src, dst, length, offset, offset)
        if n == 0:
            break
        offset += n
        length -= n


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for off, length in sorted(ranges):
        if out and off <= out[-1][0] + out[-1][1]:
            start = out[-1][0]
            out[-1] = (start, max(out[-1][1], off + length - start))
        else:
            out.append((off, length))
    return out


class _Model:
    """The durable model (see the module) and the pass-through's bookkeeping: nodes, handles,
    what changed since the last sync. Imports nothing of fuse."""

    def __init__(self, backing: Path, state: Path) -> None:
        self.root = os.fsencode(backing)
        self.state = state
        self.content = state / CONTENT
        self.mutex = threading.RLock()  # not "lock": fusepy would take that for the lock op
        self.nodes: dict[int, int] = {}  # live backing inode -> node id
        self.next_node = ROOT
        self.handles: dict[int, _Handle] = {}
        self.dirty: dict[int, _Dirty] = {}
        # The durable model (what a cut keeps), saved to state/model.json on every change:
        self.dirs: dict[int, dict[str, int]] = {}  # durable entries of each directory
        self.meta: dict[int, dict[str, Any]] = {}  # kind ("f", "d", "l"), mode, target
        self.base: dict[int, int] = {}  # node -> backing inode: unchanged since the mount
        self._adopt()

    def __call__(self, op: str, *args: Any) -> Any:
        with self.mutex:
            return getattr(self, op)(*args)

    def _path(self, path: str) -> bytes:
        return self.root + path.encode(ENCODING)

    def _new_node(self, st: os.stat_result, target: str = "") -> int:
        node = self.next_node
        self.next_node += 1
        self.nodes[st.st_ino] = node
        kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
        self.meta[node] = {"kind": kind, "mode": stat.S_IMODE(st.st_mode), "target": target}
        return node

    def _node(self, st: os.stat_result) -> int:
        node = self.nodes.get(st.st_ino)
        return node if node is not None else self._new_node(st)

    def _adopt(self) -> None:
        """At mount, everything in the backing directory is durable (it is what a cut left)."""
        shutil.rmtree(self.content, ignore_errors=True)
        self.content.mkdir(parents=True)
        root_node = self._new_node(os.lstat(self.root))
        assert root_node == ROOT
        pending = [(self.root, root_node)]
        while pending:
            directory, node = pending.pop()
            entries: dict[str, int] = {}
            for name in os.listdir(directory):
                full = os.path.join(directory, name)
                st = os.lstat(full)
                target = os.readlink(full).decode(ENCODING) if stat.S_ISLNK(st.st_mode) else ""
                child = self.nodes.get(st.st_ino) or self._new_node(st, target)
                entries[name.decode(ENCODING)] = child
                if stat.S_ISDIR(st.st_mode):
                    pending.append((full, child))
                elif stat.S_ISREG(st.st_mode):
                    self.base[child] = st.st_ino
            self.dirs[node] = entries
        self._save()

    def _save(self) -> None:
        model = {
            "dirs": {str(k): v for k, v in self.dirs.items()},
            "meta": {str(k): v for k, v in self.meta.items()},
            "base": {str(k): v for k, v in self.base.items()},
        }
        tmp = self.state / (MODEL + ".tmp")
        tmp.write_text(json.dumps(model))
        tmp.replace(self.state / MODEL)  # whole, even if this server is killed meanwhile

    def _snapshot(self, node: int) -> Path:
        return self.content / str(node)

    def _before_change(self, node: int, fd: int) -> None:
        """About to change a file's bytes or drop its last name: keep its durable bytes."""
        if node in self.base:
            with open(self._snapshot(node), "wb") as out:
                _copy_range(fd, out.fileno(), 0, os.fstat(fd).st_size)
            del self.base[node]
            self._save()
        if node not in self.dirty:
            self.dirty[node] = _Dirty()

    def _sync_file(self, node: int, fd: int) -> None:
        """fsync: the file's bytes and size as they are now become its durable content."""
        if node in self.base:
            return  # unchanged since the mount
        dirty = self.dirty.pop(node, _Dirty())
        size = os.fstat(fd).st_size
        snap = os.open(self._snapshot(node), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if dirty.min_size is not None:
                os.ftruncate(snap, min(os.fstat(snap).st_size, dirty.min_size))
            os.ftruncate(snap, size)
            for off, length in _merged(dirty.ranges):
                _copy_range(fd, snap, off, max(0, min(off + length, size) - off))
        finally:
            os.close(snap)
        self.meta[node]["mode"] = stat.S_IMODE(os.fstat(fd).st_mode)

    def _drop_name(self, full: bytes) -> int | None:
        """Before a name goes (unlink, rmdir, rename over it): a last name keeps its
        durable bytes. Returns the inode number to forget once the name is gone."""
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return None
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            node = self._node(st)
            if node in self.base:
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    self._before_change(node, fd)
                finally:
                    os.close(fd)
        return st.st_ino if st.st_nlink <= 1 or stat.S_ISDIR(st.st_mode) else None

    def _forget(self, ino: int | None) -> None:
        """The inode number may come back for another file: map it afresh then (open
        descriptors keep their node in their handle)."""
        if ino is not None:
            self.nodes.pop(ino, None)


class _Directories:
    """Directory operations: entries pass through; fsyncdir makes them durable."""

    root: bytes
    meta: dict[int, dict[str, Any]]
    dirs: dict[int, dict[str, int]]

    def getattr(self, path: str | None, fh: Any = None) -> dict[str, Any]:
        # fusepy passes a NULL fuse_file_info pointer (falsy), not None, for a path getattr.
        st = os.fstat(fh.fh) if fh else os.lstat(self._path(path or "/"))
        keys = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks")
        attrs: dict[str, Any] = {k: getattr(st, k) for k in keys}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *(n.decode(ENCODING) for n in os.listdir(self._path(path)))]

    def readlink(self, path: str) -> str:
        return os.readlink(self._path(path)).decode(ENCODING)

    def mkdir(self, path: str, mode: int) -> None:
        full = self._path(path)
        os.mkdir(full, mode)
        self._new_node(os.lstat(full))

    def rmdir(self, path: str) -> None:
        full = self._path(path)
        gone = self._drop_name(full)
        os.rmdir(full)
        self._forget(gone)

    def symlink(self, target: str, source: str) -> None:
        full = self._path(target)
        os.symlink(source.encode(ENCODING), full)
        self._new_node(os.lstat(full), source)

    def link(self, target: str, source: str) -> None:
        os.link(self._path(source), self._path(target))

    def unlink(self, path: str) -> None:
        full = self._path(path)
        gone = self._drop_name(full)
        os.unlink(full)
        self._forget(gone)

    def rename(self, old: str, new: str) -> None:
        full_old, full_new = self._path(old), self._path(new)
        try:
            replaced = not os.path.samestat(os.lstat(full_old), os.lstat(full_new))
        except FileNotFoundError:
            replaced = False
        gone = self._drop_name(full_new) if replaced else None
        os.rename(full_old, full_new)
        self._forget(gone)

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> None:
        """The directory's entries as they are now become its durable entries."""
        full = self._path(path or "/")
        st = os.lstat(full)
        node = self._node(st)
        self.meta[node]["mode"] = stat.S_IMODE(st.st_mode)
        entries: dict[str, int] = {}
        for name in os.listdir(full):
            child_st = os.lstat(os.path.join(full, name))
            child = self._node(child_st)
            entries[name.decode(ENCODING)] = child
            if self.meta[child]["kind"] == "d":
                self.dirs.setdefault(child, {})  # never synced itself: empty after a cut
                self.meta[child]["mode"] = stat.S_IMODE(child_st.st_mode)
        self.dirs[node] = entries
        self._save()


class _Files:
    """File and attribute operations: bytes pass through; fsync (or O_SYNC) makes them durable."""

    root: bytes
    handles: dict[int, _Handle]
    dirty: dict[int, _Dirty]
    # The error fusepy answers with its errno (fuse.FuseOSError; set where fuse is imported).
    refusal: type[OSError] = OSError

    def create(self, path: str, mode: int, fi: Any) -> int:
        full = self._path(path)
        existed = os.path.lexists(full)  # no one else changes the backing directory
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (fi.flags & os.O_EXCL)
        fd = os.open(full, flags, stat.S_IMODE(mode))
        st = os.fstat(fd)
        if existed:
            node = self._node(st)
        else:  # a new file, even where the backing file system reuses an inode number
            node = self._new_node(st)
            self.dirty[node] = _Dirty()
        self.handles[fd] = _Handle(fd, node, bool(fi.flags & _SYNC_FLAGS))
        fi.fh = fd
        return 0

    def mknod(self, path: str, mode: int, dev: int) -> None:
        if not stat.S_ISREG(mode):
            raise self.refusal(errno.EPERM)
        full = self._path(path)
        os.close(os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(mode)))
        self._new_node(os.lstat(full))

    def open(self, path: str, fi: Any) -> int:
        # Buffered, positional I/O on the backing file whatever the caller asked for:
        # O_DIRECT, O_APPEND and O_SYNC are the kernel's and this model's business.
        fd = os.open(self._path(path), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.handles[fd] = _Handle(fd, self._node(os.fstat(fd)), bool(fi.flags & _SYNC_FLAGS))
        fi.fh = fd
        return 0

    def read(self, path: str | None, size: int, offset: int, fi: Any) -> bytes:
        return os.pread(fi.fh, size, offset)

    def write(self, path: str | None, data: bytes, offset: int, fi: Any) -> int:
        handle = self.handles[fi.fh]
        self._before_change(handle.node, handle.fd)
        n = os.pwrite(handle.fd, data, offset)
        dirty = self.dirty[handle.node]
        dirty.ranges.append((offset, n))
        if len(dirty.ranges) > 4096:
            dirty.ranges = _merged(dirty.ranges)
        if handle.sync:
            self._sync_file(handle.node, handle.fd)
        return n

    def truncate(self, path: str | None, length: int, fi: Any = None) -> None:
        if fi:
            handle = self.handles[fi.fh]
            self._truncate(handle.node, handle.fd, length)
            return
        fd = os.open(self._path(path or "/"), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            self._truncate(self._node(os.fstat(fd)), fd, length)
        finally:
            os.close(fd)

    def _truncate(self, node: int, fd: int, length: int) -> None:
        self._before_change(node, fd)
        dirty = self.dirty[node]
        dirty.min_size = length if dirty.min_size is None else min(dirty.min_size, length)
        os.ftruncate(fd, length)

    def fsync(self, path: str | None, datasync: int, fi: Any) -> None:
        handle = self.handles[fi.fh]
        self._sync_file(handle.node, handle.fd)

    def flush(self, path: str | None, fi: Any) -> None:
        return None

    def release(self, path: str | None, fi: Any) -> None:
        handle = self.handles.pop(fi.fh, None)
        if handle is not None:
            os.close(handle.fd)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._path(path), stat.S_IMODE(mode))

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._path(path), uid, gid, follow_symlinks=False)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        if times is None:
            os.utime(self._path(path), follow_symlinks=False)
        else:
            os.utime(self._path(path), ns=times, follow_symlinks=False)

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self.root)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files")
        return {k: getattr(sv, k) for k in (*keys, "f_ffree", "f_favail", "f_namemax")}


def _server_class() -> type:
    """The fusepy Operations subclass, built on demand: only the server process imports fuse."""
    import fuse

    class Layer(_Files, _Directories, _Model, fuse.Operations):  # type: ignore[misc]
        """Pass-through to `backing`; the durable model lives in `state` (see the module)."""

        use_ns = True
        # Ops on a descriptor of an unlinked file come without a path (hard_remove).
        flag_nullpath_ok = 1
        # No xattrs: with ENOSYS the kernel stops asking (it would ask on every write).
        getxattr = None
        setxattr = None
        listxattr = None
        removexattr = None
        refusal = fuse.FuseOSError

    return Layer


def serve(backing: Path, mountpoint: Path, state: Path) -> None:
    """Mount the layer at mountpoint and serve it in the foreground until unmounted or killed."""
    import fuse

    # fusepy logs an operation that failed unexpectedly (not an OSError) and answers EINVAL:
    # those lines go to the harness's log (PowerCutFS.output).
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    os.umask(0)  # modes arrive already masked by the caller's umask
    state.mkdir(parents=True, exist_ok=True)
    layer = _server_class()(backing, state)
    fuse.FUSE(
        layer,
        str(mountpoint),
        foreground=True,
        raw_fi=True,
        encoding=ENCODING,
        fsname="powercut",
        # Unlink really unlinks (no .fuse_hidden files beside the caller's); inode numbers
        # are the backing ones (hard links share one); 128 KiB per write request.
        hard_remove=True,
        use_ino=True,
        big_writes=True,
        max_write=128 * 1024,
    )


# ---- the cut -----------------------------------------------------------------------------------


def rebuild(backing: Path, state: Path) -> dict[str, int]:
    """Replace `backing` by what the durable model says survived; returns what was kept.

    Run only while no server serves `backing` (after it was killed).
    """
    model = json.loads((state / MODEL).read_text())
    dirs = {int(k): v for k, v in model["dirs"].items()}
    meta = {int(k): v for k, v in model["meta"].items()}
    base = {int(k): v for k, v in model["base"].items()}
    live: dict[int, bytes] = {}  # backing inode -> a path, for files unchanged since the mount
    for dirpath, _dirs, names in os.walk(os.fsencode(backing)):
        for name in names:
            full = os.path.join(dirpath, name)
            live.setdefault(os.lstat(full).st_ino, full)
    fresh = backing.with_name(backing.name + ".rebuilt")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    kept = {"files": 0, "empty_files": 0, "dirs": 0}
    made: dict[int, bytes] = {}

    def build(node: int, where: bytes, seen: frozenset[int]) -> None:
        for name, child in dirs.get(node, {}).items():
            path = os.path.join(where, name.encode(ENCODING))
            info = meta[child]
            if info["kind"] == "d":
                if child in seen:
                    continue  # a cycle left by renames synced in different orders: cut it
                os.mkdir(path)
                build(child, path, seen | {child})
                os.chmod(path, info["mode"])
                kept["dirs"] += 1
            elif info["kind"] == "l":
                os.symlink(info["target"].encode(ENCODING), path)
            elif child in made:
                os.link(made[child], path)
            else:
                snap = state / CONTENT / str(child)
                if snap.exists():
                    shutil.copyfile(os.fsencode(snap), path)
                elif child in base:
                    shutil.copyfile(live[base[child]], path)
                else:
                    open(path, "wb").close()  # named durably, never synced: zero-length
                    kept["empty_files"] += 1
                os.chmod(path, info["mode"])
                made[child] = path
                kept["files"] += 1

    build(ROOT, os.fsencode(fresh), frozenset({ROOT}))
    os.chmod(fresh, meta[ROOT]["mode"])
    old = backing.with_name(backing.name + ".old")
    os.rename(backing, old)
    os.rename(fresh, backing)
    shutil.rmtree(old)
    return kept


# ---- the harness -------------------------------------------------------------------------------


@dataclass
class PowerCutFS:
    """The layer mounted at `mountpoint` over `backing`, its model in `state`."""

    backing: Path
    mountpoint: Path
    state: Path
    cuts: int = 0
    last_kept: dict[str, int] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        for path in (self.backing, self.mountpoint, self.state):
            path.mkdir(parents=True, exist_ok=True)
        if is_mounted(self.mountpoint):
            raise RuntimeError(f"{self.mountpoint} is already a mount point")
        self._log = tempfile.TemporaryFile(mode="a+b")  # noqa: SIM115 - closed in stop()
        repo = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(repo)}
        cmd = [sys.executable, "-m", "tests.support.powercut_fs", "serve"]
        self._proc = subprocess.Popen(
            [*cmd, str(self.backing), str(self.mountpoint), str(self.state)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not is_mounted(self.mountpoint):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._proc.kill()
                self._proc.wait()
                raise RuntimeError(f"power-cut layer did not mount: {self.output()[-2000:]}")
            time.sleep(0.02)

    @property
    def server_pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def output(self) -> str:
        """What the server printed (errors from the file system's operations)."""
        if self._log is None or self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def kill(self) -> None:
        """The power goes out: from now on nothing reaches the disk (the mount is dead)."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()

    def cut(self) -> dict[str, int]:
        """Cut the power and bring it back: only durable state remains, mounted again."""
        self.kill()
        detach_mount(self.mountpoint)
        self._close_log()
        self.last_kept = rebuild(self.backing, self.state)
        self.cuts += 1
        self.start()
        return self.last_kept

    def stop(self) -> None:
        """Unmount (lazily if something still holds it) and end the server."""
        detach_mount(self.mountpoint)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def powercut_mount(mountpoint: Path, work: Path) -> Iterator[PowerCutFS]:
    """The layer at mountpoint, its backing directory and model under `work`."""
    layer = PowerCutFS(work / "backing", mountpoint, work / "state")
    layer.start()
    try:
        yield layer
    finally:
        layer.stop()


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "serve":
        serve(Path(argv[1]), Path(argv[2]), Path(argv[3]))
        return 0
    if len(argv) == 3 and argv[0] == "rebuild":
        print(json.dumps(rebuild(Path(argv[1]), Path(argv[2]))))
        return 0
    sys.stderr.write(
        "usage: python -m tests.support.powercut_fs serve BACKING MOUNTPOINT STATE\n"
        "       python -m tests.support.powercut_fs rebuild BACKING STATE\n"
    )
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
