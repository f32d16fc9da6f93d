"""A supervisor's written explanation of a late or interrupted recording, kept with the file.

The regulation asks for a written report of every late or interrupted recording; this is where it
goes. Each explanation is an audit record (file.explained, its text in the signed details) and
the file's latest one fills the compliance report's `explanation` column. The text is bounded and
may hold no control character but a line break. Nothing here prints or reads a camera.
"""

from __future__ import annotations

import unicodedata

from agent.core.errors import UsageError
from agent.custody import audit
from agent.custody.keys import StationKey
from agent.store import Store

MAX_TEXT = 2000  # characters: a paragraph or two; the full report is a document of its own


def check_text(text: str) -> str:
    """The explanation, stripped; UsageError when empty, too long or holding control characters."""
    text = text.strip()
    if not text:
        raise UsageError(problem="the explanation is empty")
    if len(text) > MAX_TEXT:
        raise UsageError(problem=f"the explanation is longer than {MAX_TEXT} characters")
    if any(unicodedata.category(c).startswith("C") and c != "\n" for c in text):
        raise UsageError(problem="the explanation holds a control character")
    return text


def explain(
    store: Store, key: StationKey, station_id: str, file_id: int, text: str, now: str, who: str
) -> int:
    """Record the explanation of a file's finding with its audit record; returns the record's
    seq. Raises UsageError for a file id the station does not hold."""
    with store.transaction():
        # SQLite integers are 64-bit: a larger id could not name a file, only fail the query.
        if not 0 < file_id < 2**63 or not store.file_exists(file_id):
            raise UsageError(problem=f"no file {file_id} at this station (see report compliance)")
        record = audit.record_action(
            store,
            key,
            station_id,
            "file.explained",
            {"file_id": file_id, "text": text},
            now,
            operator=who,
        )
        store.save_explanation(file_id, text, who, now, record.seq)
    return record.seq
