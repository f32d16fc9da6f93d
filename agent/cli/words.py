"""The station's language, zone and units in what the CLI prints for people.

Every command calls speak() once it has its configuration: from then on _() speaks [station]
language (else the locale's, as the bay screen does: agent.core.i18n), when() writes a stored
station time in [station] timezone with the zone named, and size() writes bytes as a person
reads them. JSON is never passed through here (its keys and codes are for machines), and a CSV's
values are not either: only its header row speaks the language. Holds the process's choice of
language and zone; reads no store and decides nothing.
"""

from __future__ import annotations

import functools
import gettext
import os
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from agent.cli.output import emit_csv
from agent.core import i18n, zones
from agent.core.config import Config
from agent.core.i18n import NP_
from agent.core.model import display_name
from agent.health.station import size_text
from agent.reporting import exports, headers


def _system_zone() -> ZoneInfo:
    return zones.station_zone("")


@dataclass
class _Speech:
    """What this process speaks: English and the system's zone until speak() says otherwise."""

    language: str = i18n.DEFAULT
    catalogue: gettext.NullTranslations = field(default_factory=gettext.NullTranslations)
    zone: ZoneInfo = field(default_factory=_system_zone)


_speech = _Speech()


def speak(cfg: Config | None, environ: Mapping[str, str] | None = None) -> None:
    """Speak the configured language and zone ([station]); without a configuration (one that
    did not load), the locale's language and the system's zone."""
    environ = os.environ if environ is None else environ
    configured = cfg.station.language if cfg is not None else ""
    language = i18n.language_of(configured, environ)
    _speech.language = language
    _speech.catalogue = i18n.translations(language)
    _speech.zone = zones.station_zone(cfg.station.timezone if cfg is not None else "")


def zone() -> ZoneInfo:
    """The station's zone: where `--since` is read and every time printed is shown."""
    return _speech.zone


def _(message: str) -> str:
    """The message in the station's language."""
    return _speech.catalogue.gettext(message)


def pgettext(context: str, message: str) -> str:
    return _speech.catalogue.pgettext(context, message)


def when(text: str | None, *, empty: str = "-") -> str:
    """A stored station time (UTC text) in the station's zone, the zone named; text that is
    not one is shown escaped as it is."""
    if not text:
        return empty
    moment = zones.parse_utc(text)
    if moment is None:
        return display_name(text)
    return zones.stamp(moment, _speech.zone)


def size(n: int | None) -> str:
    """Bytes as a person reads them: 512 B, 1.2 GiB."""
    return "-" if n is None else size_text(int(n))


def csv_headers(columns: Sequence[str]) -> list[str]:
    """A CSV's header row in the station's language (English: the columns' own keys)."""
    return [pgettext(headers.CONTEXT, c) for c in columns]


def emit_spreadsheet(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str], bom: bool
) -> None:
    """Print rows as a CSV for spreadsheets: the given columns, headed in the station's
    language, UTF-8 (with a byte order mark unless `bom` is false; agent.reporting.exports)."""
    emit_csv(exports.to_csv(rows, columns, bom=bom, headers=csv_headers(columns)))


# The values a person reads in a table cell (a session's outcome, a file's state, readiness,
# battery and wipe verdicts), for the catalogue; JSON and CSV keep them as they are.
VALUES = frozenset(
    {
        NP_("value", "running"),
        NP_("value", "complete"),
        NP_("value", "incomplete"),
        NP_("value", "failed"),
        NP_("value", "interrupted"),
        NP_("value", "rebuilt"),
        NP_("value", "discovered"),
        NP_("value", "copying"),
        NP_("value", "staged"),
        NP_("value", "sealed"),
        NP_("value", "uploading"),
        NP_("value", "confirmed"),
        NP_("value", "held"),
        NP_("value", "corrupt"),
        NP_("value", "ready"),
        NP_("value", "warning"),
        NP_("value", "not ready"),
        NP_("value", "not assessed"),
        NP_("value", "ok"),
        NP_("value", "bad"),
        NP_("value", "unknown"),
        NP_("value", "wiped"),
        NP_("value", "partly wiped"),
        NP_("value", "not wiped"),
        NP_("value", "not needed"),
    }
)


def value(text: object) -> str:
    """A known value (VALUES) in the station's language; anything else as it is, escaped."""
    shown = display_name(str(text))
    return pgettext("value", shown) if shown in VALUES else shown


def states(counts: Mapping[str, object]) -> str:
    """Counts per file state: "sealed=6 held=1", the states in the station's language."""
    return " ".join(f"{value(k)}={v}" for k, v in counts.items())


# Longest text say() reads for its templates, and how deep a template's value is read again
# (a detail inside a detail): beyond, the text is shown as written. Values in it are hostile.
_MAX_SAID = 2048
_MAX_DEPTH = 3


def say(text: str, templates: Sequence[str] = ()) -> str:
    """Text our own code wrote in English, in the station's language: the whole of it as a
    message of the catalogue, or as one of `templates` filled in (its values said again; one
    named `at` is a station time, shown in the station's zone), else each of its "; "-joined
    parts so. What none of them matches (a path, a command, a server's message) stays as is.
    The template with the most words of its own is tried first: it says the most."""
    if _speech.language == i18n.DEFAULT or len(text) > _MAX_SAID:
        return text
    return _said(text, tuple(sorted(templates, key=_own_words, reverse=True)), 0)


def _own_words(template: str) -> int:
    return sum(len(literal) for literal, *_ in string.Formatter().parse(template))


def _said(text: str, templates: tuple[str, ...], depth: int) -> str:
    whole = _whole(text, templates, depth)
    if whole is not None or "; " not in text:
        return text if whole is None else whole
    parts = [_whole(part, templates, depth) for part in text.split("; ")]
    return "; ".join(p if s is None else s for p, s in zip(text.split("; "), parts, strict=True))


def _whole(text: str, templates: tuple[str, ...], depth: int) -> str | None:
    translated = _(text)
    if translated != text:
        return translated
    if depth >= _MAX_DEPTH:
        return None
    for template in templates:
        found = _pattern(template).fullmatch(text)
        if found is None:
            continue
        values = {
            name: _value(name, value, templates, depth) for name, value in found.groupdict().items()
        }
        return _(template).format(**values)
    return None


def _value(name: str, value: str, templates: tuple[str, ...], depth: int) -> str:
    """A template's value: a station time (`at`) in the zone; a detail inside a detail said
    again; our own words (`why`) from the catalogue; anything else as written."""
    if name == "at":
        return when(value)
    if name == "detail":
        return _said(value, templates, depth + 1)
    return _(value) if name == "why" else value


@functools.lru_cache(maxsize=256)
def _pattern(template: str) -> re.Pattern[str]:
    """The English a template makes, as a pattern: its text literally, each field any text."""
    parts = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name:
            parts.append(f"(?P<{name}>.+?)")
    return re.compile("".join(parts), re.DOTALL)
