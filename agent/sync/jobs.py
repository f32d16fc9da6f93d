"""What one upload is: the job a sink is handed, built from a claimed row and its signed record.

The metadata of specs/upload-protocol.md "Creating an upload" is taken from the signed custody
record wherever the record holds it (the row only where it does not), and a stored upload URL
is handed on for resuming only to the sink that created it. Reads the store and nothing else;
it sends nothing and changes no row.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.core.config import Config
from agent.core.errors import StagedCopyChanged
from agent.core.model import display_name
from agent.core.wallclock import utc_now
from agent.custody.records import canonical, envelope
from agent.store import FileRow, SinkUpload, Store


@dataclass(frozen=True)
class UploadJob:
    file_id: int
    sha256: str
    size: int
    path: Path  # the staged copy
    ext: str
    ingested_at: str  # RFC 3339, UTC
    metadata: dict[str, str]  # upload-protocol.md "Creating an upload"
    custody: dict[str, Any]  # the signed envelope (agent.custody.records.envelope)
    resume_url: str | None = None
    resume_offset: int = 0
    resume_checksummed: bool = True
    resume_expires_at: str | None = None
    # Uploads of the file complete but unprovable at confirm_level, sent again since (the
    # row's, migration 0021), and whether the sink has proven a Repr-Digest to this station
    # before: what tus_sink.reupload_unprovable decides by.
    unprovable_uploads: int = 0
    digest_proven: bool = False


def _rfc3339(camera_time: str, zone: ZoneInfo | None) -> str:
    if not camera_time:
        return ""
    try:
        naive = datetime.fromisoformat(camera_time)
    except ValueError:
        return ""
    if naive.tzinfo is not None:
        return naive.isoformat()
    # astimezone() on a naive time takes the station's zone with the DST rule of that date.
    aware = naive.replace(tzinfo=zone) if zone else naive.astimezone()
    return aware.isoformat()


def _pick(body: dict[str, Any], name: str) -> str:
    return str(body.get(f"{name}_corrected") or body.get(name) or "")


def _drift(body: dict[str, Any]) -> str:
    drift = body.get("clock_drift_s")
    return "0" if drift is None or isinstance(drift, bool) else str(drift)


def _metadata(
    row: FileRow, env: dict[str, Any], config: Config, zone: ZoneInfo | None
) -> dict[str, str]:
    body = env["body"]
    return {
        "filename": display_name(os.path.basename(row.camera_path)),
        "sha256": str(row.staged_sha256),
        "kind": row.kind.value,
        "station_id": str(body.get("station_id", config.station_id)),
        "device_serial": row.device_serial,
        "officer_id": str(body.get("officer_id", "")),
        # upload-protocol.md: times corrected for the drift measured at docking. Where the
        # record carries no correction (sealed before clock health measured it, or the camera
        # clock could not be read) the camera's own times go with the station's UTC offset and
        # the drift is reported as "0".
        "recorded_start": _rfc3339(_pick(body, "recorded_start"), zone),
        "recorded_end": _rfc3339(_pick(body, "recorded_end"), zone),
        "camera_clock_offset_s": _drift(body),
        "ingested_at": str(body.get("ingested_at", row.staged_at or "")),
        "retention_class": str(
            body.get("retention_class") or row.retention_class or config.retention.default_class
        ),
        "important": "1" if row.important else "0",
        "custody_record": base64.b64encode(canonical(env)).decode("ascii"),
    }


def build_job(
    store: Store,
    row: FileRow,
    config: Config,
    sink_name: str,
    *,
    resume: SinkUpload | None = None,
    digest_proven: bool = False,
) -> UploadJob:
    """The metadata of upload-protocol.md, taken from the signed record where it holds it.
    `resume`: the sink's own stored upload (several sinks), else the row's if it is this
    sink's. `digest_proven`: the sink has confirmed a file `verified` before (the caller's
    word, Store.digest_proven)."""
    record = store.record(row.record_seq) if row.record_seq is not None else None
    if record is None:
        raise StagedCopyChanged(path=row.staged_path, actual="no custody record", expected="one")
    env = envelope(record)
    zone = ZoneInfo(config.ingest.camera_timezone) if config.ingest.camera_timezone else None
    metadata = _metadata(row, env, config, zone)
    staged = config.staging_path / str(row.staged_path)
    if resume is None and row.upload_sink == sink_name and row.upload_url:
        resume = SinkUpload(
            row.upload_url, row.upload_expires_at, row.upload_offset, row.upload_checksummed
        )
    return UploadJob(
        file_id=row.id,
        # The bytes staging holds and the sink receives: the ciphertext where the copy is
        # encrypted to the central key (the record names both).
        sha256=str(row.staged_sha256),
        size=row.staged_size,
        path=staged,
        ext=staged.suffix.lstrip(".") or "bin",
        ingested_at=metadata["ingested_at"] or utc_now(),
        metadata=metadata,
        custody=env,
        resume_url=resume.url if resume else None,
        resume_offset=resume.offset if resume else 0,
        resume_checksummed=resume.checksummed if resume else True,
        resume_expires_at=resume.expires_at if resume else None,
        unprovable_uploads=row.unprovable_uploads,
        digest_proven=digest_proven,
    )


# ---- time-stamp tokens -------------------------------------------------------------------------

# RFC 3161 section 3.4 names the media type of a DER TimeStampResp sent over HTTP
# application/timestamp-reply; a kept token is the TSA's reply exactly as it answered.
STAMP_FILETYPE = "application/timestamp-reply"
STAMP_KIND = "tsa_token"


@dataclass(frozen=True)
class TokenJob:
    """One kept RFC 3161 token for a sink, with what it covers: records 1..seq (first_new..seq
    are the ones no earlier token covered), whose head record hash is its imprint; the head
    record's signed envelope ties that hash to the station's key."""

    seq: int
    first_new: int
    record_hash: str
    stamped_at: str  # the TSA's time, as the token gives it
    station_id: str
    token: bytes  # the DER TimeStampResp, byte for byte as kept
    head: dict[str, Any]  # the signed envelope of record `seq`

    @property
    def name(self) -> str:
        return f"{self.seq:010d}.tsr"

    def metadata(self) -> dict[str, str]:
        """What is sent beside the token: the tus Upload-Metadata, the directory's sidecar."""
        return {
            "filename": f"{self.station_id}-{self.name}",
            "filetype": STAMP_FILETYPE,
            "kind": STAMP_KIND,
            "station_id": self.station_id,
            "chain_head_seq": str(self.seq),
            "chain_head_hash": self.record_hash,
            "covers_first_seq": "1",
            "covers_last_seq": str(self.seq),
            "first_new_seq": str(self.first_new),
            "stamped_at": self.stamped_at,
            "sha256": hashlib.sha256(self.token).hexdigest(),
            "custody_record": base64.b64encode(canonical(self.head)).decode("ascii"),
        }
