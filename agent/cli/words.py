"""The station's language, zone and units in what the CLI prints for people.

Every command calls speak() once it has its configuration: from then on _() speaks [station]
language (else the locale's, as the bay screen does: agent.core.i18n), when() writes a stored
station time in [station] timezone with the zone named, and size() writes bytes as a person
reads them. JSON is never passed through here (its keys and codes are for machines), and a CSV's
values are not either: only its header row speaks the language. Holds the process's choice of
language and zone; reads no store and decides nothing.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.core import i18n, zones
from agent.core.config import Config
from agent.core.i18n import NP_
from agent.core.model import display_name
from agent.health.station import size_text
from agent.reporting import headers


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


def language() -> str:
    return _speech.language


def zone() -> ZoneInfo:
    """The station's zone: where `--since` is read and every time printed is shown."""
    return _speech.zone


def _(message: str) -> str:
    """The message in the station's language."""
    return _speech.catalogue.gettext(message)


def pgettext(context: str, message: str) -> str:
    return _speech.catalogue.pgettext(context, message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _speech.catalogue.ngettext(singular, plural, n)


def when(text: str | None, *, empty: str = "-") -> str:
    """A stored station time (UTC text) in the station's zone, the zone named; text that is
    not one is shown escaped as it is."""
    if not text:
        return empty
    moment = zones.parse_utc(text)
    if moment is None:
        return display_name(text)
    return zones.stamp(moment, _speech.zone)


def now_in_zone(moment: datetime) -> str:
    """The zone as a header says it: "Asia/Shanghai (UTC+08:00)"."""
    return zones.offset_text(_speech.zone, moment)


def size(n: int | None) -> str:
    """Bytes as a person reads them: 512 B, 1.2 GiB."""
    return "-" if n is None else size_text(int(n))


def csv_headers(columns: Sequence[str]) -> list[str]:
    """A CSV's header row in the station's language (English: the columns' own keys)."""
    return [pgettext(headers.CONTEXT, c) for c in columns]


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
