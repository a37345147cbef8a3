"""Languages: message catalogs (Babel .po files in templates/locale, compiled at build time) and numbers,
percentages and dates written the way the reader's locale writes them.

One `Lang` serves the templates (through Jinja2's i18n extension) and the Python that writes sentences
(findings.py, the figures), so a string is translated once, in one catalog.
"""

from __future__ import annotations

import functools
import gettext
import io
import math
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import parse_pattern

LOCALE_DIR = Path(__file__).resolve().parent.parent / "templates" / "locale"
DOMAIN = "messages"
LOCALES = {"en": "en", "ko": "ko_KR"}
MISSING = "–"
N_ = str  # marks text for the message catalog; it is translated later, where a page or figure shows it


@functools.lru_cache(maxsize=4)
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of `lang` (English is the source language: no catalog, the msgids as they are)."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == "en" or not po.is_file():
        return gettext.NullTranslations()
    with open(po, "rb") as fh:
        catalog = read_po(fh, locale=LOCALES[lang])
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


@functools.lru_cache(maxsize=64)
def _pattern(lang: str, fmt: str):
    return parse_pattern(fmt)


@dataclass(frozen=True)
class Lang:
    code: str  # "en" or "ko"

    @property
    def locale(self) -> Locale:
        return _locale(self.code)

    @property
    def t(self) -> gettext.NullTranslations:
        return translations(self.code)

    def _(self, message: str, **values: Any) -> str:
        """Translate, then fill in %(name)s placeholders."""
        text = self.t.gettext(message)
        return text % values if values else text

    def n_(self, singular: str, plural: str, n: int, **values: Any) -> str:
        text = self.t.ngettext(singular, plural, n)
        return text % dict(values, num=n) if "%" in text else text

    # numbers (Babel's patterns, parsed once: formatting runs tens of thousands of times per site) --------
    def _apply(self, value: float, fmt: str) -> str:
        return _pattern(self.code, fmt).apply(value, self.locale)

    def num(self, value: Any, digits: int = 3) -> str:
        if _missing(value):
            return MISSING
        if isinstance(value, int) and not isinstance(value, bool):
            return self._apply(value, "#,##0")
        return self._apply(float(value), "#,##0." + "0" * digits if digits else "#,##0")

    def pct(self, value: Any, digits: int = 1) -> str:
        if _missing(value):
            return MISSING
        return self._apply(float(value), "#,##0." + "0" * digits + "%" if digits else "#,##0%")

    def seconds(self, value: Any) -> str:
        if _missing(value):
            return MISSING
        value = float(value)
        if value < 120:
            return self._("%(n)s s", n=self.num(value, 1))
        return self._("%(n)s min", n=self.num(value / 60, 1))

    def date(self, value: str | date | datetime) -> str:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return format_date(value, format="long", locale=self.locale)


@functools.lru_cache(maxsize=4)
def _locale(code: str) -> Locale:
    return Locale.parse(LOCALES[code])


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True
