"""System-call faults with strace: kill a command at its N-th call of one syscall, or fail calls.

Builds strace command lines (`-e inject=S:signal=KILL:when=N`, `-e inject=S:error=EIO`, `-P`
path filters), and parses what strace wrote with `-o` into calls numbered the way strace counts
for `when=N`: per syscall and per thread (every tracee has its own counter, see strace(1),
"-e inject"). A dry run's calls tell which N exist and what each one touches; an injected run's
calls tell which call was actually killed; a faulty run's calls tell which published files were
durable by the commit after them (unsynced_publications). strace prints no buffer contents here
(`-s 0`), so the trace files hold paths and sizes, never evidence or key bytes.

It drives strace and reads what it wrote; it imports nothing of the agent, touches no station
and passes no verdict (the tests do).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Variants of one operation that x86_64 has as separate syscalls; a sweep covers each that occurs.
VARIANTS = {
    "rename": ("rename", "renameat", "renameat2"),
    "link": ("link", "linkat"),
    "unlink": ("unlink", "unlinkat"),
}

_ENTRY = re.compile(r"^(\d+) +([a-z0-9_]+)\((.*)$")
_RESUMED = re.compile(r"^(\d+) +<\.\.\. ([a-z0-9_]+) resumed>(.*)$")
_FD_PATH = re.compile(r"\d+<([^>]*)>")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_END = re.compile(r"\)\s+= ")
_RESULT = re.compile(r"\)\s+= (\?|-?\d+|0x[0-9a-f]+)(?: ([A-Z0-9]+))?")


def strace_missing() -> list[str]:
    """What prevents system-call injection here (empty when strace can kill and fail calls)."""
    exe = shutil.which("strace")
    if exe is None:
        return ["strace is not on PATH (scripts/bootstrap --test installs it)"]
    probes = (
        ("getpid:retval=4242", "import os, sys; sys.exit(os.getpid() != 4242)", 0),
        ("getpid:signal=KILL", "import os; os.getpid()", -signal.SIGKILL),
    )
    for inject, code, expected in probes:
        probe = subprocess.run(
            [exe, "-f", "-qq", "-o", "/dev/null", "-e", "trace=getpid", "-e", f"inject={inject}",
             "--", sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if probe.returncode != expected:
            return [
                f"strace -e inject={inject} gave exit {probe.returncode}, not {expected}: "
                f"{probe.stderr.strip()[:300]}"
            ]
    return []


def strace_argv(
    output: Path,
    trace: Iterable[str],
    *,
    inject: str | None = None,
    paths: Sequence[Path] = (),
) -> list[str]:
    """strace's part of a command line: follow threads, trace `trace` (paths of descriptors
    decoded, no buffer contents) into `output`; `inject` is one `-e inject=` value, e.g.
    "write:signal=KILL:when=7" or "fsync:error=EIO"; `paths` restrict both to calls on them.

    Not --seccomp-bpf: with it strace 6.1 injects errors but never delivers an injected
    signal (the syscall-entry stop is then a seccomp event stop, where ptrace(2) may ignore a
    signal given to the restart), and it saved only about a tenth of a second per run here.
    """
    names = sorted(set(trace))
    argv = ["strace", "-f", "-qq", "-y", "-s", "0", "-o", str(output)]
    argv += ["-e", "trace=" + ",".join(names), "-e", "signal=none"]
    if inject is not None:
        argv += ["-e", f"inject={inject}"]
    for path in paths:
        argv += ["-P", str(path)]
    return [*argv, "--"]


@dataclass(frozen=True)
class Call:
    """One system call as strace numbers it for `when=`: the nth call of syscall in its thread."""

    line: int  # position in the trace (entry order)
    tid: int
    thread: int  # 0: the first thread seen (the process's main thread), then in order of appearance
    syscall: str
    nth: int
    fds: tuple[str, ...]  # paths of descriptor arguments and of a returned descriptor (-y)
    strings: tuple[str, ...]  # absolute path arguments, in order
    result: str  # "?" when the call never returned (killed), else the return value
    errno: str  # e.g. "EIO" when the call failed
    args: str = ""  # the arguments as strace printed them (buffers elided by -s 0)

    @property
    def paths(self) -> tuple[str, ...]:
        return self.fds + self.strings

    @property
    def ok(self) -> bool:
        return self.result not in ("?", "-1")

    def place(self, roots: Mapping[str, Path]) -> str:
        """The first root (by its name) that one of the call's paths lies under, else "other"."""
        for name, root in roots.items():
            if any(_under(p, str(root)) for p in self.paths):
                return name
        return "other"

    def describe(self) -> str:
        where = self.paths[0] if self.paths else ""
        return f"{self.syscall} #{self.nth} of thread {self.thread} ({where})"


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def parse(text: str) -> list[Call]:
    """Calls of an `strace -f -y -o` trace, with their per-thread numbers."""
    threads: dict[int, int] = {}
    counts: Counter[tuple[int, str]] = Counter()
    calls: list[Call] = []
    pending: dict[int, int] = {}  # tid -> index in calls of its unfinished call
    for line in text.splitlines():
        resumed = _RESUMED.match(line)
        if resumed:
            tid = int(resumed.group(1))
            index = pending.pop(tid, None)
            if index is not None:
                result, errno = _result(resumed.group(3))
                old = calls[index]
                fds, strings = _paths(resumed.group(3))
                calls[index] = Call(
                    old.line, old.tid, old.thread, old.syscall, old.nth,
                    old.fds + fds, old.strings + strings, result, errno, old.args,
                )  # fmt: skip
            continue
        entry = _ENTRY.match(line)
        if not entry:
            continue
        tid, syscall, rest = int(entry.group(1)), entry.group(2), entry.group(3)
        thread = threads.setdefault(tid, len(threads))
        counts[(tid, syscall)] += 1
        result, errno = _result(rest)
        if rest.endswith("<unfinished ...>"):
            pending[tid] = len(calls)
            result = "?"
        fds, strings = _paths(rest)
        nth = counts[(tid, syscall)]
        ends = list(_END.finditer(rest))
        args = rest[: ends[-1].start()] if ends else rest.removesuffix(" <unfinished ...>")
        calls.append(Call(len(calls), tid, thread, syscall, nth, fds, strings, result, errno, args))
    return calls


def _paths(rest: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    fds = tuple(m.group(1) for m in _FD_PATH.finditer(rest))
    strings = tuple(m.group(1) for m in _STRING.finditer(rest) if m.group(1).startswith("/"))
    return fds, strings


def _result(rest: str) -> tuple[str, str]:
    match = _RESULT.search(rest)
    if match is None:
        return "?", ""
    return match.group(1), match.group(2) or ""


def of(calls: Iterable[Call], syscall: str) -> list[Call]:
    return [c for c in calls if c.syscall == syscall]


def first_reaching(calls: Sequence[Call], syscall: str, nth: int) -> Call | None:
    """The call `when=nth` kills: the first, in time, that is the nth of its thread."""
    for call in calls:
        if call.syscall == syscall and call.nth == nth:
            return call
    return None


def highest_nth(calls: Iterable[Call], syscall: str) -> int:
    return max((c.nth for c in calls if c.syscall == syscall), default=0)


def killed_call(calls: Sequence[Call], syscall: str, nth: int) -> Call | None:
    """In an injected run: the call that was killed, if the run got that far."""
    call = first_reaching(calls, syscall, nth)
    return call if call is not None and call.result == "?" else None


_FILE_SYNC = frozenset({"fsync", "fdatasync"})
_NUMBER = re.compile(r"(?:^|, )(-?\d+)(?=,|$)")


def _numbers(call: Call) -> list[int]:
    """The plain integer arguments of a call, in order (descriptors and buffers left out)."""
    return [int(m.group(1)) for m in _NUMBER.finditer(call.args)]


class _Sizes:
    """What a file's size is after the traced writes: sequential write(2)s, pwrite64 at their
    offsets, fallocate (mode 0 extends), ftruncate. A change of content or size counts; an
    ftruncate to the size the file already has (trimming a reservation that was not needed)
    changes nothing."""

    def __init__(self) -> None:
        self.size: dict[str, int] = {}
        self.position: dict[str, int] = {}

    def changed(self, call: Call, path: str) -> bool:
        numbers = _numbers(call)
        done = int(call.result) if call.result.lstrip("-").isdigit() else 0
        size = self.size.get(path, 0)
        if call.syscall == "write":
            start = self.position.get(path, 0)
            self.position[path] = start + done
            self.size[path] = max(size, start + done)
            return done > 0
        if call.syscall == "pwrite64" and numbers:
            self.size[path] = max(size, numbers[-1] + done)
            return done > 0
        if call.syscall == "fallocate" and len(numbers) >= 3:
            mode, offset, length = numbers[-3:]
            if mode == 0:
                self.size[path] = max(size, offset + length)
            return True
        if call.syscall == "ftruncate" and numbers:
            self.size[path] = numbers[-1]
            return numbers[-1] != size
        return True


_CHANGES = frozenset({"write", "pwrite64", "fallocate", "ftruncate"})


@dataclass
class _Durability:
    """What a trace says about durability, call by call: when each file last changed and was
    synced, the syncfs calls and the database commits, what was published (linked or renamed
    onto its final name, and not unlinked since) and which directories were made."""

    commit_suffix: str
    sizes: _Sizes = field(default_factory=_Sizes)
    last_change: dict[str, int] = field(default_factory=dict)
    synced: dict[str, list[int]] = field(default_factory=dict)
    syncfs: list[int] = field(default_factory=list)
    commits: list[int] = field(default_factory=list)
    published: dict[str, tuple[str, int]] = field(default_factory=dict)  # target: (source, line)
    made: dict[str, int] = field(default_factory=dict)  # directories created in the run

    def take(self, call: Call) -> None:
        if not call.ok:
            return
        if call.syscall in ("mkdir", "mkdirat"):
            self.made.update((path, call.line) for path in call.strings[-1:])
        elif call.syscall == "openat":
            for path in call.fds:
                self.last_change.setdefault(path, call.line)
        elif call.syscall in _CHANGES:
            self._changed(call)
        elif call.syscall in _FILE_SYNC:
            self._file_synced(call)
        elif call.syscall == "syncfs":
            self.syncfs.append(call.line)
        else:
            self._named(call)

    def _changed(self, call: Call) -> None:
        for path in call.fds[:1]:
            if self.sizes.changed(call, path):
                self.last_change[path] = call.line

    def _named(self, call: Call) -> None:
        """A link or rename publishes its target; an unlink takes a publication back."""
        if call.syscall in (*VARIANTS["link"], *VARIANTS["rename"]) and len(call.strings) >= 2:
            self.published[call.strings[-1]] = (call.strings[-2], call.line)
        elif call.syscall in VARIANTS["unlink"]:
            for path in call.strings:
                self.published.pop(path, None)

    def _file_synced(self, call: Call) -> None:
        for path in call.fds:
            self.synced.setdefault(path, []).append(call.line)
            if path.endswith(self.commit_suffix):
                self.commits.append(call.line)

    def synced_between(self, path: str, since: int, until: int, also: Sequence[int] = ()) -> bool:
        return any(since < i < until for i in [*self.synced.get(path, []), *also])

    def unsynced(self, target: str, below: str, until: int) -> list[str]:
        """What of a published file was not durable before line `until`."""
        source, linked_at = self.published[target]
        directory = target.rsplit("/", 1)[0]
        content = self.synced_between(source, self.last_change.get(source, -1), until, self.syncfs)
        checks = [
            ("its content", content),
            ("its name", self.synced_between(directory, linked_at, until)),
        ]
        while directory in self.made and _under(directory, below):
            parent = directory.rsplit("/", 1)[0]
            made_at = self.made[directory]
            checks.append((f"the name of {directory}", self.synced_between(parent, made_at, until)))
            directory = parent
        return [what for what, ok in checks if not ok]


def unsynced_publications(
    calls: Sequence[Call], below: str, commit_suffix: str = "-wal"
) -> dict[str, str]:
    """Files published below a directory (link or rename of a temp file onto its final name)
    that were not durable by the first database commit after they were published: the commit
    that can first say they exist (DESIGN.md rules 4 to 6). A commit is a successful sync of a
    file whose name ends with `commit_suffix` (SQLite's write-ahead log); a file published after
    the last commit must be durable by the end of the trace.

    Durable means: its content synced (fsync/fdatasync of the file, or a syncfs, after its last
    change), its name synced (fsync of its directory after the link), and the name of every
    directory made in the run from its own up to `below` synced in its parent after the mkdir.
    Needs a trace (-y) of openat, the writes, fallocate, ftruncate, the syncs, links, renames
    and mkdir.
    """
    trace = _Durability(commit_suffix)
    for call in calls:
        trace.take(call)
    missing: dict[str, str] = {}
    for target, (_source, linked_at) in trace.published.items():
        if not _under(target, below):
            continue
        until = next((i for i in trace.commits if i > linked_at), len(calls) + 1)
        unsynced = trace.unsynced(target, below, until)
        if unsynced:
            when = "before the commit after it" if until <= len(calls) else "at all"
            missing[target] = " and ".join(unsynced) + f" not synced {when}"
    return missing
