"""[custody], declared once: trusted time for the custody chain (RFC 3161 time-stamp tokens),
and the central key(s) staged copies are encrypted to (age).

The rule that joins keys (a TSA URL needs its trust anchor) is in `load.py`. Nothing here opens
a connection or reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from agent.core.config import checks
from agent.core.config.spec import key

_OPTIONAL_FILE = (checks.absolute_path_or_empty, checks.existing_file)


@dataclass(frozen=True)
class CustodyConfig:
    DOC: ClassVar[str] = """
        Trusted time (README "Trusted time"): a time-stamp token (RFC 3161) from a time-stamping
        authority over the chain head after each dock session, and at least every
        tsa_interval_s while records are added. Off while tsa_url is empty.
        """

    tsa_url: str = key(
        "",
        """
        The TSA's URL (http:// or https://; https is TLS-verified against the system's CAs).
        A token is signed by the TSA, so plain http cannot forge one.
        """,
    )
    tsa_trust_anchor: str = key(
        "",
        """
        PEM file of the CA certificate(s) a token's signer must chain to; required with tsa_url.
        `dockagent verify` checks every token against it.
        """,
        checks=_OPTIONAL_FILE,
    )
    tsa_interval_s: int = key(
        3600,
        "At most this long between tokens while records are added ({range}).",
        low=60,
        high=86400,
    )
    tsa_timeout_s: int = key(
        20, "The whole of one request to the TSA, connect to answer ({range}).", low=1, high=120
    )
    encrypt_to: tuple[str, ...] = key(
        (),
        """
        The central server's age X25519 recipient(s) (age1...): every staged copy is encrypted
        to them as it is copied (age format), so the station's disk holds no readable evidence
        and no key that decrypts it. The custody record keeps the camera's SHA-256 and adds the
        ciphertext's; uploads carry the ciphertext. Empty: copies are kept as read.
        """,
        checks=(checks.age_recipients,),
    )
