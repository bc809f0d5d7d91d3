"""The catalogues (matthan/locale/*/LC_MESSAGES/messages.po) against the sources.

Fails when a marked text (Python `_`/`N_`/`Msg`/`translate`, Jinja `_()`/`{% trans %}`, JS `_()`)
is missing from a catalogue, when a catalogue keeps a text no source has any more (stale), when a
Vietnamese entry is untranslated or fuzzy, or when a translation's placeholders differ from its
source's. Extraction is Babel's, with the repository's babel.cfg — what `pybabel extract` does.

To bring the catalogues up to date after changing texts: docs/i18n.md (pybabel extract, then
pybabel update, then translate the new Vietnamese entries).
"""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from jinja2 import Environment

from matthan import i18n

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "N_": None, "Msg": None, "translate": (2,), "gettext": None, "ngettext": (1, 2)}


def extracted() -> dict[str, set[str]]:
    """msgid → the files it comes from."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str, set[str]] = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        for m in message if isinstance(message, tuple) else (message,):
            if m:
                found.setdefault(m, set()).add(filename)
    return found


def catalogue(lang: str) -> Catalog:
    with open(i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=lang)


@pytest.fixture(scope="module")
def sources() -> dict[str, set[str]]:
    found = extracted()
    assert len(found) > 200, "the extraction found almost nothing: is babel.cfg's map still right?"
    return found


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_marked_text_is_in_the_catalogue_and_nothing_stale(
    lang: str, sources: dict[str, set[str]]
) -> None:
    cat = catalogue(lang)
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in cat if m.id}
    missing = sorted(set(sources) - ids)
    stale = sorted(ids - set(sources))
    assert not missing, f"{lang}: not in the catalogue (run pybabel update): " + "; ".join(
        f"{m!r} ({', '.join(sorted(sources[m]))})" for m in missing[:20]
    )
    assert not stale, f"{lang}: in the catalogue but in no source any more: {stale[:20]}"


def test_vietnamese_is_complete_and_keeps_the_placeholders() -> None:
    cat = catalogue("vi")
    untranslated = [m.id for m in cat if m.id and (not m.string or m.fuzzy)]
    assert not untranslated, f"vi: untranslated or fuzzy: {untranslated[:20]}"
    problems = [f"{m.id!r}: {'; '.join(map(str, errs))}" for m, errs in cat.check()]
    assert not problems, "vi: " + " | ".join(problems)
    for m in cat:  # the scripts' {name} placeholders, which Babel's python-format check does not see
        if m.id and isinstance(m.id, str):
            assert set(re.findall(r"\{\w+\}", m.id)) == set(re.findall(r"\{\w+\}", str(m.string))), m.id


def test_the_catalogue_check_itself_notices_a_new_text(tmp_path: Path, sources: dict[str, set[str]]) -> None:
    # The check must be able to fail: a template with a new marked text is seen by the extractor.
    (tmp_path / "t.html").write_text("<p>{{ _('A text no catalogue has') }}</p>", encoding="utf-8")
    method_map = [("**.html", "jinja2")]
    found = {m for _f, _l, m, _c, _x in extract_from_dir(str(tmp_path), method_map, keywords=KEYWORDS)}
    assert found == {"A text no catalogue has"} and "A text no catalogue has" not in sources


# --- English left outside _() in the templates -----------------------------------------------------

# Words that are the same in every language here: names, units, codes, symbols.
ALLOWED = {"matthan", "ms", "mb", "fps", "cpu", "json", "api", "csrf", "http", "mqtt", "gmt", "utc", "csv"}
USER_ATTRS = ("title", "alt", "placeholder", "aria-label", "data-label", "value")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in USER_ATTRS and value and not (name == "value" and tag != "button"):
                self.found.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.found.append(data)


def english_outside_gettext(source: str) -> list[str]:
    """Text nodes and user-facing attributes of a template with every Jinja tag, expression and
    comment blanked out: what is left is literal text a reader sees.

    A heuristic, and its limits: text built inside an expression (`{{ 'x' if y }}`) or passed to a
    macro is not seen here (those are the reviewers' to catch; the catalogue test covers what is
    marked), and an English word that is also a name (a ward id) would be flagged if literal."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    parts, in_trans, after_block = [], False, False
    for _l, token, value in env.lex(source):
        if after_block and token == "name" and value in ("trans", "endtrans"):
            in_trans = value == "trans"  # a {% trans %} block's text is the catalogue's
        after_block = token == "block_begin" or (after_block and token == "whitespace")
        parts.append(value if token == "data" and not in_trans else " " * len(value))
    literal = "".join(parts)
    parser = _Text()
    parser.feed(literal)
    words = []
    for text in parser.found:
        for word in re.findall(r"[A-Za-z][A-Za-z'-]{2,}", text):
            if word.lower() not in ALLOWED:
                words.append(word)
    return words


def test_templates_have_no_english_outside_gettext() -> None:
    templates = sorted((ROOT / "cloud" / "templates").rglob("*.html"))
    assert templates
    found = {
        str(t.relative_to(ROOT)): words
        for t in templates
        if (words := english_outside_gettext(t.read_text(encoding="utf-8")))
    }
    assert not found, f"English outside _() or {{% trans %}}: {found}"


def test_the_template_scan_notices_english() -> None:
    assert english_outside_gettext('<p title="Hello there">{{ _("ok") }} Not marked</p>') == [
        "Hello", "there", "Not", "marked",
    ]  # fmt: skip
    assert english_outside_gettext("<b>{{ _('Marked') }}</b>{% if x %}{{ y }}{% endif %} 12 MB") == []
    assert english_outside_gettext("{% trans %}Inside <b>a block</b>{% endtrans %} Outside") == ["Outside"]


def test_scripts_mark_texts_where_the_extractor_sees_them() -> None:
    # Babel's JavaScript extractor skips `_("…")` inside a template literal: such a text would reach
    # neither the catalogue nor the page's JSON, and stay English without any test noticing.
    for path in sorted((ROOT / "cloud" / "static").glob("*.js")):
        calls = len(re.findall(r"\b_\(\"", path.read_text(encoding="utf-8")))
        seen = len(list(extract_from_file("javascript", str(path))))
        assert calls == seen, (
            f"{path.name}: {calls} _() calls, the extractor sees {seen} (one in a template literal?)"
        )
