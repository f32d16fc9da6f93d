"""The directory sink (a NAS or a local evidence disk): the embedded default destination.

Layout of specs/upload-protocol.md: <root>/<station_id>/<YYYY>/<MM>/<DD>/<sha256>.<ext> plus
<sha256>.json (metadata and the signed custody record), written with agent.core.durable's rules;
confirmed (level "verified") only when a re-read of the written file, with its cached pages
dropped, hashes equal. The chain's RFC 3161 tokens go to <root>/<station_id>/tokens/<seq>.tsr
(the TSA's reply byte for byte) beside <seq>.json (what it covers), each written atomically.
It never overwrites an archived file and never deletes one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from agent.core import durable
from agent.core.errors import StagedCopyChanged, UploadMismatch
from agent.custody.digest import hash_file
from agent.sync.jobs import TokenJob, UploadJob
from agent.sync.sink import Confirmation, Progress
from agent.sync.throttle import Throttle

BUFFER_BYTES = 1 << 20

# Files of one content share their archive names (`<sha256>.<ext>`, `<sha256>.json`): upload
# workers writing the same content at once would sweep each other's temp files (every empty
# marker file has one hash). One lock per content, striped so that the table stays bounded,
# makes sweep, write and re-read of a content one step among this station's workers; the
# writer lock of the data directory keeps a second process of the station out.
_CONTENT_LOCKS = tuple(threading.Lock() for _ in range(64))


def _content_lock(sha256: str) -> threading.Lock:
    return _CONTENT_LOCKS[hash(sha256) % len(_CONTENT_LOCKS)]


class _Leftovers:
    """The temp files each archive directory held when this process first wrote into it, by
    content hash.

    A temp file is left only by a writer that died (TempFile unlinks its own on any error), so
    the directory is listed once per process, not once per upload: a day directory holds two
    entries per file, and listing it at every upload made a busy day's uploads quadratic (at
    50,000 files in one directory, listing was 55 % of the station's CPU). A writer of this
    process that dies leaves its temp file until the next start lists the directory again.
    Only the last `KEEP` directories are remembered: a directory used again later is listed
    again, so the table stays bounded for a daemon that runs for years."""

    KEEP = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_dir: dict[Path, dict[str, list[str]]] = {}

    def take(self, directory: Path, sha256: str) -> list[str]:
        """The temp names of `sha256`'s earlier writes in `directory`, forgotten once given."""
        with self._lock:
            found = self._by_dir.get(directory)
            if found is None:
                found = {}
                for entry in os.listdir(directory):
                    if durable.is_temp_name(entry):
                        # `.<sha256>.<ext>.<random>.tmp`, `.<sha256>[.<id>].json.<random>.tmp`
                        found.setdefault(entry[1:].split(".", 1)[0], []).append(entry)
                while len(self._by_dir) >= self.KEEP:
                    del self._by_dir[next(iter(self._by_dir))]
                self._by_dir[directory] = found
            return found.pop(sha256, [])


_LEFTOVERS = _Leftovers()


class DirectorySink:
    def __init__(self, root: Path, station_id: str, throttle: Throttle | None = None) -> None:
        self.root = root
        self.station_id = station_id
        self.throttle = throttle
        self.name = f"directory:{root}"
        self.buffer = bytearray(BUFFER_BYTES)
        # It draws on the throttle for every piece it writes; the stall limit covers the rest.
        self.longest_step_s = 0.0

    def close(self) -> None:
        pass

    def target_dir(self, job: UploadJob) -> Path:
        day = datetime.fromisoformat(job.ingested_at).astimezone(UTC)
        return self.root / self.station_id / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"

    def send(self, job: UploadJob, progress: Progress) -> Confirmation:
        directory = self.target_dir(job)
        # Each new level's name is made durable (its parent fsynced): a day directory that a
        # power cut took away would take every object confirmed into it, and their staged
        # copies are purged once confirmed.
        durable.make_dirs(directory)
        name = f"{job.sha256}.{job.ext}"
        final = directory / name
        with _content_lock(job.sha256):
            self._sweep_temps(directory, job.sha256)
            if not final.exists():
                self._write(job, directory, name)
            progress.offset(job.size, False)
            actual, _ = hash_file(final, self.buffer, drop_cache=True)
            if actual != job.sha256:
                raise UploadMismatch(server=str(self.root), problem=f"{final} hashes {actual}")
            self._write_metadata(job, directory)
        return Confirmation("verified", str(final), digest=actual)

    def send_token(self, job: TokenJob) -> str:
        """The token as `tokens/<seq>.tsr`, its sidecar first (a token is never there without
        what it covers); each written whole under a temp name, fsynced and renamed. A token
        already there with the same bytes is acknowledged again; other bytes under its name
        are never overwritten (UploadMismatch: held with the reason)."""
        directory = self.root / self.station_id / "tokens"
        durable.make_dirs(directory)
        sidecar = (
            json.dumps(job.metadata(), sort_keys=True, indent=1, ensure_ascii=False).encode()
            + b"\n"
        )
        stem = job.name.removesuffix(".tsr")
        for name, data in ((f"{stem}.json", sidecar), (job.name, job.token)):
            self._write_once(directory, name, data)
        return str(directory / job.name)

    def _write_once(self, directory: Path, name: str, data: bytes) -> None:
        path = directory / name
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                durable.write_file(directory, name, data)
        with open(path, "rb") as fh:  # bounded: the archive is not ours alone
            held = fh.read(len(data) + 1)
        if held != data:
            raise UploadMismatch(
                server=str(self.root), problem=f"{path} holds other bytes than this token's"
            )

    def _write(self, job: UploadJob, directory: Path, name: str) -> None:
        digest = hashlib.sha256()
        view = memoryview(self.buffer)
        src = os.open(job.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            with durable.TempFile(directory, name, job.size) as tmp:
                total = 0
                while n := os.readv(src, [view]):
                    if self.throttle is not None:
                        self.throttle(n)
                    digest.update(view[:n])
                    tmp.write_all(view[:n])
                    total += n
                if digest.hexdigest() != job.sha256 or total != job.size:
                    raise StagedCopyChanged(
                        path=str(job.path), actual=digest.hexdigest(), expected=job.sha256
                    )
                # FileExistsError: the same content arrived meanwhile; the re-read decides.
                with contextlib.suppress(FileExistsError):
                    tmp.publish(total)
        finally:
            os.close(src)

    def _write_metadata(self, job: UploadJob, directory: Path) -> None:
        data = (
            json.dumps(
                {"metadata": job.metadata, "custody_record": job.custody},
                sort_keys=True,
                indent=1,
                ensure_ascii=False,
            ).encode()
            + b"\n"
        )
        name = f"{job.sha256}.json"
        existing = directory / name
        if existing.exists():
            if existing.read_bytes() == data:
                return
            # Identical bytes held under another custody record (an empty file, a copied clip):
            # both records are kept, the second one named by its file row.
            name = f"{job.sha256}.{job.file_id}.json"
            if (directory / name).exists():
                if (directory / name).read_bytes() == data:
                    return
                durable.replace_file(directory, name, data)
                return
        with contextlib.suppress(FileExistsError):
            durable.write_file(directory, name, data)

    @staticmethod
    def _sweep_temps(directory: Path, sha256: str) -> None:
        """Temp files of an earlier, interrupted write of this content: the file itself and its
        metadata (`<sha256>.json`, `<sha256>.<file id>.json`). Sweeping only the file's own
        left a kill during the metadata write with a temp file in the archive for good (seen
        in tests/faults/test_syscall_crashes.py)."""
        removed = False
        for entry in _LEFTOVERS.take(directory, sha256):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / entry)
            removed = True
        if removed:
            durable.fsync_dir(directory)
