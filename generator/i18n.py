"""Languages: message catalogs (Babel .po files in templates/locale, compiled at build time) and numbers,
percentages and dates written the way the reader's locale writes them.

One `Lang` serves the templates (through Jinja2's i18n extension) and the Python that writes sentences
(findings.py, figures.py), so a string is translated once, in one catalog.
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
from babel.numbers import format_decimal, format_percent

LOCALE_DIR = Path(__file__).resolve().parent.parent / "templates" / "locale"
DOMAIN = "messages"
LOCALES = {"en": "en", "ko": "ko_KR"}
MISSING = "–"


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


@dataclass(frozen=True)
class Lang:
    code: str  # "en" or "ko"

    @property
    def locale(self) -> Locale:
        return Locale.parse(LOCALES[self.code])

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

    # numbers ----------------------------------------------------------------------------------------------
    def num(self, value: Any, digits: int = 3) -> str:
        if _missing(value):
            return MISSING
        if isinstance(value, int) and not isinstance(value, bool):
            return format_decimal(value, format="#,##0", locale=self.locale)
        fmt = "#,##0." + "0" * digits if digits else "#,##0"
        return format_decimal(float(value), format=fmt, locale=self.locale)

    def pct(self, value: Any, digits: int = 1) -> str:
        if _missing(value):
            return MISSING
        fmt = "#,##0." + "0" * digits + "%" if digits else "#,##0%"
        return format_percent(float(value), format=fmt, locale=self.locale)

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


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True
