"""Where evidence goes, as `dockagent doctor` judges it: the directory sink and the tus server.

Facts in, findings out, as agent.health.station: the sink's root and the file systems it and
staging are on, what the tus server answered to OPTIONS and what past uploads showed. Red when
evidence cannot get there, or when a camera would be wiped on the strength of a copy that is not
safely elsewhere. Pure: nothing here opens a file, a socket or the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.core.i18n import N_
from agent.health.station import GREEN, RED, YELLOW, Finding

# Details with values in them (see agent.health.station).
SINK_WRITABLE = N_("directory sink {root} is writable")
SINK_MISSING = N_("directory sink {root} does not exist")
SINK_READ_ONLY = N_("directory sink {root} is not writable by this user")
SINK_MADE_LATER = N_("directory sink {root} (below the data directory) is made at the first upload")
UNREACHABLE = N_("{endpoint} is unreachable: {message}")


@dataclass(frozen=True)
class DirectorySink:
    """The directory sink's root; `configured` when [sync] directory_root names it.
    `shares_staging`: the root (its nearest existing directory) is on the file system staging
    is on (the same st_dev); `wipe_policy` is [ingest] wipe_policy's value."""

    root: Path
    configured: bool
    is_dir: bool
    writable: bool
    shares_staging: bool = False
    wipe_policy: str = "never"
    staging: Path = Path()


def directory_sink(facts: DirectorySink) -> Finding:
    """The root exists and is writable, or is the default one made at the first upload; red
    when cameras would be wiped on the strength of a copy on the station's own disk."""
    root = facts.root
    if facts.shares_staging and facts.wipe_policy == "after_confirm":
        return Finding(
            "server",
            RED,
            f"directory sink {root} is on the same file system as staging ({facts.staging}): "
            "with wipe_policy after_confirm, cameras are wiped on the strength of a second "
            "copy on the station's own disk",
            N_(
                "point [sync] directory_root at the evidence share or disk (mounted), or use the "
                'tus sink; until then set [ingest] wipe_policy = "never"'
            ),
        )
    if not facts.is_dir and not facts.configured:
        return Finding(
            "server",
            GREEN,
            SINK_MADE_LATER.format(root=root),
        )
    if not facts.is_dir:
        # A configured root that is missing is most often a share that is not mounted:
        # uploading into the bare mount point would fill the station's own disk.
        return Finding(
            "server",
            RED,
            SINK_MISSING.format(root=root),
            N_("mount the evidence share / disk there, or correct [sync] directory_root"),
        )
    if not facts.writable:
        return Finding(
            "server",
            RED,
            SINK_READ_ONLY.format(root=root),
            N_("give the dockagent user write access to it"),
        )
    return Finding("server", GREEN, SINK_WRITABLE.format(root=root))


# What a tus server's failure to answer OPTIONS means, and what to do about it.
TUS_FAILURES = {
    "tls": N_(
        "check the server certificate (host name, expiry, chain) against [sync] ca_bundle; "
        "an unsynchronised station clock also fails TLS"
    ),
    "unreachable": N_("check the network, firewall and [sync] endpoint; is the server up?"),
    "refused": N_(
        "check that [sync] endpoint is the server's tus creation URL and the bearer token"
    ),
}


@dataclass(frozen=True)
class TusProbe:
    """What the tus server answered to OPTIONS: a failure (a TUS_FAILURES kind and the error's
    message), or its extensions and checksum algorithms. From the store, when it could be read:
    how many files a tus server confirmed as `verified`, and how many were held because the
    server could not confirm them at confirm_level (with the latest such reason)."""

    endpoint: str
    confirm_level: str
    failure: str | None = None
    message: str = ""
    extensions: frozenset[str] = frozenset()
    checksums: frozenset[str] = frozenset()
    verified_seen: int = 0
    unconfirmable: int = 0
    unconfirmable_reason: str = ""


def offered_level(extensions: frozenset[str], checksums: frozenset[str]) -> str:
    """The strongest confirmation level a tus server's OPTIONS answer shows it can give.

    `verified` is never shown there: it needs a Repr-Digest (RFC 9530) on the finished upload,
    which only an upload reveals (upload-protocol.md "Confirmation levels").
    """
    if "creation" not in extensions:
        return ""
    return "checksummed" if "sha256" in checksums else "complete"


def tus_server(probe: TusProbe) -> Finding:
    """Reachable, with the creation extension, and sha256 when uploads are to be checksummed."""
    endpoint = probe.endpoint
    if probe.failure == "unreachable":
        detail = UNREACHABLE.format(endpoint=endpoint, message=probe.message)
        return Finding("server", RED, detail, TUS_FAILURES["unreachable"])
    if probe.failure is not None:
        return Finding("server", RED, probe.message, TUS_FAILURES[probe.failure])
    tls = "TLS verified" if endpoint.startswith("https:") else "plain http to loopback"
    extensions = ", ".join(sorted(probe.extensions)) or "none"
    checksums = ", ".join(sorted(probe.checksums)) or "none"
    detail = (
        f"{endpoint}: reachable, {tls}, tus 1.0.0; extensions: {extensions}; checksums: {checksums}"
    )
    if "creation" not in probe.extensions:
        return Finding(
            "server",
            RED,
            detail + ": no creation extension, so nothing can be uploaded",
            N_("point [sync] endpoint at a tus server with the creation extension"),
        )
    if probe.confirm_level == "checksummed" and "sha256" not in probe.checksums:
        return Finding(
            "server",
            RED,
            detail + ": confirm_level checksummed needs sha256 checksums, which it does not offer",
            N_(
                "enable sha256 checksums on the server, or choose [sync] confirm_level = 'complete'"
            ),
        )
    return _tus_level(probe, detail)


def _tus_level(probe: TusProbe, detail: str) -> Finding:
    """Whether confirm_level is reached: by what OPTIONS offers, or what uploads showed."""
    offered = offered_level(probe.extensions, probe.checksums)
    weaker = f"choose [sync] confirm_level = {offered!r}" if offered else ""
    if probe.unconfirmable:
        return Finding(
            "server",
            RED,
            f"{detail}: {probe.unconfirmable} file(s) uploaded and held, the server cannot "
            f"confirm them at level {probe.confirm_level}: {probe.unconfirmable_reason}",
            "have the server return a sha-512 Repr-Digest (RFC 9530) on finished uploads, "
            + (f"or {weaker}; " if weaker else "")
            + "then `dockagent retry --held`",
        )
    if probe.confirm_level == "verified" and not probe.verified_seen:
        return Finding(
            "server",
            YELLOW,
            f"{detail}: confirm_level verified needs a sha-512 Repr-Digest on each finished "
            "upload, which OPTIONS cannot show and no upload has shown yet; without it every "
            "file is uploaded and then held",
            "check that the server's upload-finished hook adds a sha-512 Repr-Digest "
            "(upload-protocol.md)" + (f", or {weaker}" if weaker else ""),
        )
    return Finding("server", GREEN, detail)
