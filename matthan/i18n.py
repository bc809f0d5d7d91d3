"""Translations: one gettext catalogue per language (matthan/locale/LANG/LC_MESSAGES/messages.po),
read with Babel when first needed, and the locale's way of writing dates, times and numbers.

The catalogues are kept as .po only (text, reviewable in a diff) and compiled in memory on first
use: no binary .mo in the repository and no build step that can be forgotten. It costs a process
~30 ms for the Vietnamese catalogue and ~100 ms to import Babel, once, when it first translates.

English is the source language (the msgids); Vietnamese is the language of the reference
deployment. Code marks a text for the catalogue with `_()` (translated now, in the process's
language: the CLI, the ward station, the technician's tools) or `N_()` (only marked: translated
later for whoever reads it, e.g. a console page in its user's language, via `translate(lang, …)`).
"""

import gettext
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES: tuple[str, ...] = ("vi", "en")
# The reference deployment's language; English is the source language of the texts.
DEFAULT_LANGUAGE = "vi"
SOURCE_LANGUAGE = "en"

_current = SOURCE_LANGUAGE


class Msg(str):
    """A text marked for translation together with its parameters, kept until a reader's language
    is known. It is also the English text itself (a str), so logs and tests read it as before."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, **params: Any) -> "Msg":
        self = super().__new__(cls, msgid % params if params else msgid)
        self.msgid = msgid
        self.params = params
        return self

    def translated(self, lang: str) -> str:
        return translate(lang, self.msgid, **{k: in_language(v, lang) for k, v in self.params.items()})


class Joined(str):
    """Texts (Msg or not) joined by a separator, each translated where the whole is shown: the
    problems of a bulk import's lines. As a str, the English texts joined."""

    sep: str
    parts: list[str]

    def __new__(cls, sep: str, parts: Sequence[str]) -> "Joined":
        self = super().__new__(cls, sep.join(parts))
        self.sep = sep
        self.parts = list(parts)
        return self

    def translated(self, lang: str) -> str:
        return self.sep.join(in_language(p, lang) for p in self.parts)


def N_(msgid: str) -> str:
    """Marks a text for the catalogue without translating it (translated where it is shown)."""
    return msgid


def normalise(lang: str | None) -> str | None:
    """'vi', 'vi_VN.UTF-8', 'vi-VN' → 'vi'; None for a language we have no catalogue for."""
    if not lang:
        return None
    code = lang.replace("-", "_").split(".")[0].split("@")[0].split("_")[0].lower()
    return code if code in LANGUAGES else None


def language_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The language the locale environment asks for (LC_ALL, LC_MESSAGES, LANG, as gettext reads
    them); English, the source language, when it names none we have (C, POSIX, unset)."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return normalise(value) or SOURCE_LANGUAGE
    return SOURCE_LANGUAGE


def locale_language(environ: Mapping[str, str] | None = None) -> str | None:
    """The language the locale names, or None when it names none we have (C, POSIX, unset)."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if env.get(name):
            return normalise(env[name])
    return None


@lru_cache(maxsize=len(LANGUAGES))
def translations(lang: str) -> gettext.NullTranslations:
    if lang not in LANGUAGES:
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def translate(lang: str, msgid: str, **params: Any) -> str:
    if not msgid:
        return ""  # gettext("") is the catalogue's header, never a text to show
    text = translations(lang).gettext(msgid)
    return text % params if params else text


def translate_plural(lang: str, singular: str, plural: str, n: int, **params: Any) -> str:
    text = translations(lang).ngettext(singular, plural, n)
    return text % {"num": n, **params}


def set_language(lang: str) -> None:
    """The process's language (the CLI's --lang or the locale), for `_()`."""
    global _current
    _current = normalise(lang) or SOURCE_LANGUAGE


def language() -> str:
    return _current


def _(msgid: str, **params: Any) -> str:
    """Translated into the process's language now (a Msg among the parameters too)."""
    return translate(_current, msgid, **{k: in_language(v, _current) for k, v in params.items()})


def in_language(text: Any, lang: str) -> Any:
    """A Msg or Joined in `lang`; anything else (a plain str, a number) as it is."""
    return text.translated(lang) if isinstance(text, (Msg, Joined)) else text


def format_moment(moment: datetime, lang: str, zone: tzinfo | None = None, with_zone: bool = True) -> str:
    """A date and time as the language writes it, on `zone`'s clock (the machine's when None),
    with the zone's offset shown: 'HH:mm:ss dd/MM/yyyy GMT+7' in Vietnamese."""
    from babel.dates import format_datetime

    local = moment.astimezone(zone)
    pattern = "HH:mm:ss dd/MM/yyyy" if lang == "vi" else "yyyy-MM-dd HH:mm:ss"
    text = format_datetime(local, pattern, tzinfo=local.tzinfo, locale=lang)
    return f"{text} {_offset(local)}" if with_zone else text


def format_day(moment: datetime, lang: str, zone: tzinfo | None = None) -> str:
    local = moment.astimezone(zone)
    return local.strftime("%d/%m/%Y") if lang == "vi" else local.strftime("%Y-%m-%d")


def format_number(value: float, lang: str, decimals: int = 0) -> str:
    """A number as the language writes it (1.234,5 in Vietnamese). The parsed pattern and locale
    are kept: a fleet page writes thousands of numbers every 5 s (bench.console)."""
    locale, pattern, point = _number_pattern(lang, decimals)
    if -999 < value < 999:
        # No grouping well below a thousand: only the decimal sign differs, and str.format is ~10×
        # cheaper than Babel's pattern (both round half to even).
        return f"{value:.{decimals}f}".replace(".", point)
    return str(pattern.apply(value, locale))


@lru_cache(maxsize=32)
def _number_pattern(lang: str, decimals: int) -> tuple[Any, Any, str]:
    from babel import Locale
    from babel.numbers import get_decimal_symbol, parse_pattern

    locale = Locale.parse(lang)
    pattern = parse_pattern("#,##0" + ("." + "0" * decimals if decimals else ""))
    return locale, pattern, get_decimal_symbol(locale)


def _offset(local: datetime) -> str:
    off = local.utcoffset()
    if off is None or not off:
        return "UTC"
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"GMT{sign}{h}" + (f":{m:02d}" if m else "")
