"""[sync], declared once: where sealed evidence goes, what counts as confirmed, and how uploads
are paced, secured and retried (specs/upload-protocol.md).

The rules that join keys (a tus kind needs an endpoint, a client certificate needs its key) are
in `load.py`. Nothing here opens a connection or reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.core.config import checks
from agent.core.config.spec import key

SYNC_KINDS = ("directory", "tus")
HELD_WHEN = ("all", "any")  # or the names of [[sync.sinks]]
CONFIRM_LEVELS = ("complete", "checksummed", "verified")  # specs/upload-protocol.md, in order

_OPTIONAL_PATH = (checks.absolute_path_or_empty,)
_OPTIONAL_FILE = (checks.absolute_path_or_empty, checks.existing_file)
# A private key or a token: refused while group or others may read it.
_SECRET_FILE = (*_OPTIONAL_FILE, checks.private_file)


@dataclass(frozen=True)
class SyncConfig:
    kind: str = key(
        "directory",
        """
        Where sealed evidence goes (specs/upload-protocol.md). Wiping a camera under
        after_confirm and purging a staged copy both wait until the destination has confirmed
        the file.
          "directory" - a NAS or a local evidence disk: <root>/<station_id>/<YYYY>/<MM>/<DD>/
                        <sha256>.<ext> + <sha256>.json (metadata and the signed custody record);
          "tus"       - the central evidence server, tus 1.0.0 over HTTPS.
        """,
        choices=SYNC_KINDS,
    )
    endpoint: str = key(
        "",
        """
        tus: the creation URL, e.g. "https://evidence.example.org/files". Plain http is refused
        unless the host is a loopback address (a local TLS-terminating proxy, tests).
        """,
    )
    directory_root: str = key(
        "",
        """
        directory: the sink's root; empty means <data_dir>/archive (what the demo uses). That is
        the station's own disk: with wipe_policy after_confirm, `dockagent doctor` says red until
        this names the evidence share or disk.
        """,
        checks=_OPTIONAL_PATH,
    )
    confirm_level: str = key(
        "verified",
        """
        What counts as confirmed, from weakest to strongest:
          complete     - the server said it holds every byte (offset = length): no proof;
          checksummed  - complete, every chunk accepted under a sha256 Upload-Checksum the server
                         advertised;
          verified     - the server's sha-512 Repr-Digest (RFC 9530), which only a server that
                         hashed the bytes can give (none is ever sent to it), equals the staged
                         copy's, which hashes to its seal; the directory sink re-reads and hashes
                         what it wrote.
        A server that cannot reach this level gets the file held, with the reason.
        """,
        choices=CONFIRM_LEVELS,
    )
    chunk_bytes: int = key(
        16 << 20,
        "Bytes per PATCH ({range}); the agent's memory stays well below this.",
        low=4096,
        high=1 << 30,
    )
    max_parallel_uploads: int = key(
        2,
        "Files uploaded at once ({range}); important files first, then the oldest.",
        low=1,
        high=16,
    )
    bandwidth_bytes_per_s: int = key(
        0, "Total upload rate of all workers in bytes per second; 0 means unlimited."
    )
    windows: tuple[str, ...] = key(
        (),
        """
        Station-local times when uploads may run, e.g. ["22:00-06:00", "09:00-13:30"] to stay off
        the network during shift change; a window may cross midnight. Empty means always.
        """,
        checks=(checks.time_windows,),
    )
    ca_bundle: str = key(
        "",
        """
        TLS is always verified. ca_bundle: PEM file of the CA(s) to trust instead of the system's;
        client_cert + client_key: PEM files for mutual TLS (the key must be 0600).
        """,
        checks=_OPTIONAL_FILE,
    )
    client_cert: str = key("", checks=_OPTIONAL_FILE)
    client_key: str = key("", checks=_SECRET_FILE)
    bearer_token_file: str = key(
        "",
        'A file (0600) holding a bearer token sent as "Authorization: Bearer ..."; never logged.',
        checks=_SECRET_FILE,
    )
    connect_timeout_s: int = key(10, low=1)
    read_timeout_s: int = key(
        60, "Longest wait for an answer (after a PATCH: for the server to take the chunk).", low=1
    )
    retry_attempts: int = key(
        4,
        """
        Quick retries of one upload (backoff with jitter, honouring Retry-After up to 30 s) before
        the file waits for a later attempt; later attempts back off from 30 s up to this long.
        """,
        low=1,
    )
    retry_max_delay_s: int = key(3600, low=1)
    purge_grace_s: int = key(
        86400,
        """
        Seconds a confirmed file's staged copy is kept before it is purged (its signed sidecar
        stays). An unconfirmed copy is never purged.
        """,
    )
    held_when: tuple[str, ...] = key(
        ("all",),
        """
        With several [[sync.sinks]]: whose confirmations unlock the purge of a staged copy and
        a wipe under after_confirm. "all" (every sink), "any" (the first to confirm), or a list
        of sink names, e.g. ["central"] (each named sink). A single sink ignores it.
        """,
    )
    # [[sync.sinks]]: each file goes to every one of them, confirmed and recorded separately
    # (agent.core.config.sinks); empty means the one sink the keys above describe.
    sinks: tuple[SinkConfig, ...] = field(default=())


@dataclass(frozen=True)
class SinkConfig:
    """One [[sync.sinks]] table; the keys it does not name (TLS, pacing, retries) are [sync]'s."""

    name: str = key("", "The sink's name: in status, in held_when, in the store; unique.")
    kind: str = key("directory", 'As [sync] kind: "directory" or "tus".', choices=SYNC_KINDS)
    endpoint: str = key("", "tus: the creation URL, as [sync] endpoint.")
    directory_root: str = key(
        "", "directory: the sink's root (required for a directory sink).", checks=_OPTIONAL_PATH
    )
    confirm_level: str = key("verified", "As [sync] confirm_level.", choices=CONFIRM_LEVELS)
