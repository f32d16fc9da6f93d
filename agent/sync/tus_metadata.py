"""The Upload-Metadata a tus server is sent: the station's keys and the reference clients' keys.

tus-js-client, Uppy and tus-py-client send `filename` (the file's base name) and `filetype`
(its MIME type), and servers rely on them: tuspyserver's HEAD answers 400 for an upload without
both, others name the stored file after `filename`. The station's own keys (specs/upload-
protocol.md "Creating an upload") go unchanged: a key is only ever added, the one exception
being a `filename` too long to send, which is cut (whole escapes only) to MAX_FILENAME_CHARS.
The name is hostile: it arrives escaped by agent.core.model.display_name (printable, every
byte shown), and `filetype` comes from a fixed table of extensions, never from the system's
mime.types, so every station sends the same type for the same name. Pure functions: no I/O,
no request, no decision about uploads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# FAT and exFAT names are at most 255 UTF-16 units, so only a name whose escapes made it longer
# is cut; the signed custody record (`custody_record`) keeps the whole name either way.
MAX_FILENAME_CHARS = 255
TRUNCATED = "\u2026"
OCTET_STREAM = "application/octet-stream"
# One unit of display_name's output: an escape (\\, \xNN, \uXXXX, \UXXXXXXXX) or one character,
# so a cut never leaves half an escape that would name another byte.
_UNIT = re.compile(r"\\(?:\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})|.", re.DOTALL)
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,8}")
# IANA media types of what body-worn cameras write (RFC 6838 registrations; audio/wav and
# video/x-msvideo as browsers and the reference clients name them).
FILETYPES: Mapping[str, str] = {
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    "mkv": "video/x-matroska",
    "ts": "video/mp2t",
    "3gp": "video/3gpp",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "amr": "audio/amr",
    "ogg": "audio/ogg",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "heic": "image/heic",
    "txt": "text/plain",
    "log": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
    "xml": "application/xml",
}


def bounded_filename(name: str) -> str:
    """`name` (display_name's escaped form) cut to MAX_FILENAME_CHARS at a whole unit."""
    if len(name) <= MAX_FILENAME_CHARS:
        return name
    out: list[str] = []
    room = MAX_FILENAME_CHARS - len(TRUNCATED)
    for unit in _UNIT.finditer(name):
        room -= len(unit.group())
        if room < 0:
            break
        out.append(unit.group())
    return "".join(out) + TRUNCATED


def filetype(name: str) -> str:
    """The MIME type of a file named `name`, by its extension; application/octet-stream for
    anything else (the type of bytes nobody has vouched for, RFC 2046 section 4.5.1)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not _EXTENSION.fullmatch(ext):
        return OCTET_STREAM
    return FILETYPES.get(ext.lower(), OCTET_STREAM)


def upload_metadata(station: Mapping[str, str]) -> dict[str, str]:
    """The station's metadata with the reference clients' `filename` and `filetype` added
    where they are missing; no other key is changed."""
    out = dict(station)
    name = bounded_filename(out.get("filename", ""))
    if name:
        out["filename"] = name
    out.setdefault("filetype", filetype(name))
    return out
