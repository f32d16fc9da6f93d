"""Trusted time for the custody chain: RFC 3161 time-stamp tokens over the chain head.

A token is a time-stamping authority's signed statement that a hash existed at a time. The hash
stamped is the chain head's record hash (the SHA-256 of its signed body: the request's message
is that body, so its imprint is the record hash itself), and every record links to the one
before it, so one token over record S proves that records 1..S all existed, unchanged, at its
time. Each token is kept as the TSA's DER TimeStampResp, `staging/_chain/tsa/<seq>.tsr`, named
by the record it stamps; `openssl ts -verify -digest <record hash> -in <seq>.tsr -CAfile
<anchor>` checks one without dockagent.

Here: the names, the request for a record, the check of a reply or a kept token against the
record and the trust anchor (rfc3161-client: the signature, the signer's certificate chain and
its timeStamping usage), the durable write, the list of kept tokens, and what `verify` says of
them. No HTTP (agent.sync.tus_client), no decision of when to ask (agent.sync.stamping), no SQL.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core import durable
from agent.core.model import Problem
from agent.custody import staging
from agent.store import RecordRow, Store

if TYPE_CHECKING:
    import rfc3161_client
    from cryptography import x509

# rfc3161-client and cryptography's x509 (a sixth of the start-up of `status`, which reads the
# kept tokens' seqs from here) are imported by the functions that ask for or check a token.

STAMP_DIR = "tsa"
STAMP_SUFFIX = ".tsr"
STAMP_DIR_MODE = 0o750
# A TimeStampResp with its signer's certificate is a few KiB; anything far beyond is not one.
MAX_TOKEN_BYTES = 64 << 10
SHA256_OID = "2.16.840.1.101.3.4.2.1"
# Store meta keys: the newest record a kept token covers, and the time the TSA gave it.
COVERED_SEQ = "tsa_covered_seq"
COVERED_AT = "tsa_covered_at"


class TokenInvalid(ValueError):
    """A reply or a kept token that does not prove what it must; `kind` names how."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# ---- names and files -----------------------------------------------------------------------


def token_dir(staging_root: Path) -> Path:
    return staging.chain_dir(staging_root) / STAMP_DIR


def token_name(seq: int) -> str:
    return f"{seq:010d}{STAMP_SUFFIX}"


def write_token(staging_root: Path, seq: int, reply: bytes) -> Path:
    """Keep a verified reply durably: written, fsynced, renamed into place, directory fsynced
    (agent.core.durable). Listable and readable by the station's group (tokens are no secret),
    whose `verify` and `status` check and count them."""
    directory = token_dir(staging_root)
    durable.ensure_dir(staging.chain_dir(staging_root), durable.PASS_DIR_MODE)
    durable.ensure_dir(directory, STAMP_DIR_MODE)
    return durable.replace_file(directory, token_name(seq), reply, durable.GROUP_READ_MODE)


def tokens(staging_root: Path) -> list[tuple[int, Path]]:
    """Every kept token, by the record it names, in chain order."""
    directory = token_dir(staging_root)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        stem = name.removesuffix(STAMP_SUFFIX)
        if name.endswith(STAMP_SUFFIX) and stem.isdigit() and len(stem) == 10:
            found.append((int(stem), directory / name))
    return sorted(found)


def read_token(path: Path) -> bytes:
    """A kept token's bytes, exactly as kept; ValueError for a file too long to be one."""
    data = _read_bounded(path)
    if len(data) > MAX_TOKEN_BYTES:
        raise ValueError(f"{path} is longer than {MAX_TOKEN_BYTES} bytes: not a token")
    return data


def token_time(reply: bytes) -> str:
    """The TSA's time a reply gives (ISO 8601), unchecked; ValueError if it holds none."""
    return rfc3161_client.decode_timestamp_response(reply).tst_info.gen_time.isoformat()


def newest_token_seq(staging_root: Path) -> int:
    return max((seq for seq, _path in tokens(staging_root)), default=0)


# ---- the request and the check -------------------------------------------------------------


def request_for(record: RecordRow) -> rfc3161_client.TimeStampRequest:
    """A TimeStampReq whose imprint is the record's hash (SHA-256 of its signed body), with a
    nonce (RFC 3161 section 2.4.1) and the signer's certificate asked for."""
    import rfc3161_client  # noqa: PLC0415 - see the imports

    return (
        rfc3161_client.TimestampRequestBuilder()
        .data(record.body.encode())
        .hash_algorithm(rfc3161_client.HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )


def load_anchor(path: Path) -> list[x509.Certificate]:
    """The CA certificates of the configured PEM file. ValueError if it holds none."""
    from cryptography import x509  # noqa: PLC0415 - see the imports

    data = path.read_bytes()
    certificates = x509.load_pem_x509_certificates(data)
    if not certificates:
        raise ValueError(f"{path} holds no certificate")
    return certificates


def check_token(
    reply: bytes, record_hash: str, anchors: list[x509.Certificate], nonce: int | None = None
) -> datetime:
    """The time a reply (or a kept token) gives, once it proves `record_hash` existed then:
    a granted TimeStampResp whose imprint is SHA-256 `record_hash`, signed by a certificate
    for time-stamping that chains to one of `anchors` (and carrying `nonce`, when asked).
    TokenInvalid naming how it fails: unreadable, imprint, untrusted."""
    import rfc3161_client  # noqa: PLC0415 - see the imports

    if len(reply) > MAX_TOKEN_BYTES:
        raise TokenInvalid("tsa_token_unreadable", f"longer than {MAX_TOKEN_BYTES} bytes")
    try:
        response = rfc3161_client.decode_timestamp_response(reply)
        imprint = response.tst_info.message_imprint
        algorithm, message = imprint.hash_algorithm, imprint.message
    except ValueError as exc:
        raise TokenInvalid("tsa_token_unreadable", f"not a time-stamp reply ({exc})") from None
    try:
        wanted = bytes.fromhex(record_hash)
    except ValueError:
        wanted = b""
    if algorithm.dotted_string != SHA256_OID or not hmac.compare_digest(message, wanted):
        raise TokenInvalid(
            "tsa_imprint_mismatch", "its imprint is not the hash of the record it names"
        )
    builder = rfc3161_client.VerifierBuilder()
    for anchor in anchors:
        builder = builder.add_root_certificate(anchor)
    if nonce is not None:
        builder = builder.nonce(nonce)
    try:
        builder.build().verify(response, wanted)
    except (rfc3161_client.VerificationError, ValueError) as exc:
        raise TokenInvalid(
            "tsa_untrusted",
            f"not signed by a TSA the trust anchor vouches for ({str(exc)[:200]})",
        ) from None
    return response.tst_info.gen_time


# ---- what verify says of the kept tokens ---------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """One good token: the records it first covers (`first`..`last`) and the TSA's time."""

    token: str
    first: int
    last: int
    at: str


@dataclass
class Checked:
    coverage: list[Coverage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    covered_upto: int = 0  # the newest record a good token covers
    anchored: bool = True  # False: tokens kept, no trust anchor configured to check them


def check_tokens(store: Store, staging_root: Path, anchor_path: Path | None) -> Checked:
    """Every kept token against the record it names and the trust anchor."""
    result = Checked()
    kept = tokens(staging_root)
    if not kept:
        return result
    if anchor_path is None:
        result.anchored = False
        return result
    try:
        anchors = load_anchor(anchor_path)
    except (OSError, ValueError) as exc:
        detail = f"the trust anchor {anchor_path} cannot be read ({exc}): no token was checked"
        result.problems.append(Problem("tsa_anchor_unreadable", detail))
        return result
    for seq, path in kept:
        problem = _check_one(store, seq, path, anchors, result)
        if problem is not None:
            result.problems.append(problem)
    return result


def _check_one(
    store: Store, seq: int, path: Path, anchors: list[x509.Certificate], result: Checked
) -> Problem | None:
    record = store.record(seq)
    if record is None or not isinstance(record.record_hash, str):
        detail = f"{path.name} names record {seq}, which the chain does not hold"
        return Problem("tsa_record_missing", detail, seq=seq)
    try:
        at = check_token(_read_bounded(path), record.record_hash, anchors)
    except (OSError, TokenInvalid) as exc:
        kind = exc.kind if isinstance(exc, TokenInvalid) else "tsa_token_unreadable"
        return Problem(kind, f"{path.name}: {exc}", seq=seq)
    if seq > result.covered_upto:
        first = result.covered_upto + 1
        result.coverage.append(Coverage(path.name, first, seq, at.isoformat()))
        result.covered_upto = seq
    return None


def _read_bounded(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(MAX_TOKEN_BYTES + 1)


def iter_ranges(checked: Checked) -> Iterator[str]:
    """Each good token's coverage for a person to read."""
    for cov in checked.coverage:
        span = f"record {cov.first}" if cov.first == cov.last else f"records {cov.first}-{cov.last}"
        yield f"{cov.token} ({cov.at}) covers {span}"
