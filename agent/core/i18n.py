"""The station's language: which gettext catalogue speaks to the people at the station.

Catalogues are agent/locale/<lang>/LC_MESSAGES/dockagent.po, extracted and compiled with Babel
(README "Languages"); the compiled .mo files are committed beside them, so an installed
station needs no build step, and a test keeps them equal to their .po. The language comes from
the configuration ([station] language), else from the locale variables the caller hands in
(POSIX precedence: LC_ALL, LC_MESSAGES, LANG), else English. Nothing here reads the
environment itself, logs, or decides anything about evidence.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "dockagent"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("en", "zh_CN")
DEFAULT = "en"
_LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")


def language_of(configured: str, environ: Mapping[str, str]) -> str:
    """The language to speak: the configured one, else the locale's when we have it (any
    Chinese locale reads as zh_CN), else English."""
    if configured in LANGUAGES:
        return configured
    for name in _LOCALE_VARIABLES:
        value = environ.get(name, "")[:64]
        if value:
            # The first one set decides (locale(7)); "C" and "POSIX" are English.
            code = value.split(".", 1)[0].split("@", 1)[0]
            return "zh_CN" if code.startswith("zh") else DEFAULT
    return DEFAULT


def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of `language` (English, the source text, when it has none)."""
    wanted = language if language in LANGUAGES else DEFAULT
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[wanted], fallback=True)


def N_(message: str) -> str:  # noqa: N802 - gettext's own name for the marker (xgettext -k)
    """A message marked for the catalogue and translated where it is shown, not here (a
    doctor's fix is written in agent.health and shown by the CLI in the station's language)."""
    return message


def NP_(context: str, message: str) -> str:  # noqa: N802 - as N_, with pgettext's context
    """As N_, for a message translated with a context (pgettext): a CSV column's header."""
    del context  # the catalogue's key only; scripts/update-catalogues extracts it (NP_:1c,2)
    return message
