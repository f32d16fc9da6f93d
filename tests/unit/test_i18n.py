"""The gettext catalogues: complete, current and compiled as committed; the language chosen.

The .mo files are committed (README "Languages"): these tests fail when the code has a message
the catalogue lacks, when a language lacks a translation (or has only a guessed, fuzzy one), or
when a committed .mo is not what its .po compiles to.
"""

from __future__ import annotations

import gettext
import string
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from agent.core import i18n

REPO = Path(__file__).resolve().parents[2]
LOCALE = REPO / "agent" / "locale"


# What scripts/update-catalogues extracts: the screen, the CLI's text for people, the doctor's
# fixes (agent/health) and the CSV headers; NP_ is N_ with a context.
SOURCES = ("agent/screen", "agent/core", "agent/cli", "agent/health", "agent/reporting")
KEYWORDS = {**DEFAULT_KEYWORDS, "NP_": ((1, "c"), 2)}


def _code_messages() -> set[tuple[str | None, str]]:
    found: set[tuple[str | None, str]] = set()
    for folder in SOURCES:
        extracted = extract_from_dir(str(REPO / folder), keywords=KEYWORDS)
        for _file, _line, message, _comments, context in extracted:
            found.add((context, message if isinstance(message, str) else message[0]))
    return found


def _po(language: str) -> dict[tuple[str | None, str], tuple[str, bool]]:
    with (LOCALE / language / "LC_MESSAGES" / "dockagent.po").open("rb") as fh:
        catalog = read_po(fh, locale=language)
    return {(m.context, str(m.id)): (str(m.string), "fuzzy" in m.flags) for m in catalog if m.id}


def test_every_message_of_the_code_is_in_the_template_and_nothing_stale() -> None:
    with (LOCALE / "dockagent.pot").open("rb") as fh:
        template = {(m.context, str(m.id)) for m in read_po(fh) if m.id}
    assert _code_messages() == template, "run scripts/update-catalogues"


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_language_translates_every_message_and_its_mo_is_its_po_compiled(
    language: str,
) -> None:
    po = _po(language)
    assert set(po) == _code_messages()
    assert [m for m, (text, fuzzy) in po.items() if not text or fuzzy] == []
    with (LOCALE / language / "LC_MESSAGES" / "dockagent.mo").open("rb") as fh:
        compiled = gettext.GNUTranslations(fh)
    for (context, message), (text, _) in po.items():
        got = compiled.gettext(message) if context is None else compiled.pgettext(context, message)
        assert got == text, (language, message)
    # Every placeholder of a message survives its translation (else .format() raises).
    for (_context, message), (text, _) in po.items():
        assert sorted(_fields(message)) == sorted(_fields(text)), (language, message, text)


def _fields(text: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def test_translations_speak_the_language_asked_and_english_otherwise() -> None:
    assert i18n.translations("zh_CN").gettext("Beijing time") == "北京时间"
    assert i18n.translations("en").gettext("Beijing time") == "Beijing time"
    assert i18n.translations("tlh").gettext("Beijing time") == "Beijing time"


@pytest.mark.parametrize(
    ("configured", "environ", "expected"),
    [
        ("zh_CN", {"LANG": "en_US.UTF-8"}, "zh_CN"),  # the configuration wins
        ("en", {"LC_ALL": "zh_CN.UTF-8"}, "en"),
        ("", {"LANG": "zh_CN.UTF-8"}, "zh_CN"),
        ("", {"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL first (locale(7))
        ("", {"LC_MESSAGES": "zh_TW.UTF-8@x", "LANG": "en_GB"}, "zh_CN"),
        ("", {}, "en"),
        ("", {"LANG": "zh" + "x" * 100_000}, "zh_CN"),  # a hostile value is cut, not parsed whole
    ],
)
def test_the_language_comes_from_the_configuration_then_the_locale(
    configured: str, environ: dict[str, str], expected: str
) -> None:
    assert i18n.language_of(configured, environ) == expected
