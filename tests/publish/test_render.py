"""generator/publish/render.py and generator/report/names.py. Names -> URLs: slugs are [a-z0-9-], distinct names
give distinct slugs, nothing can point outside the site. Property tests with Hypothesis (unit level, fast); the
end-to-end check of the pages is in test_interrupt.py. Also: page fragments rendered once, and the languages' number
formats."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.frames import pd
from generator.i18n import Lang
from generator.publish.render import SiteWriter
from generator.report.names import safe_name, set_slug, slugify, unique_slugs

SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# Any text a file name can hold, surrogate escapes (undecodable bytes) included; no NUL, no '/'.
names = st.text(st.characters(blacklist_characters="\x00/", blacklist_categories=()), min_size=1, max_size=80)
nasty = st.sampled_from(["<img src=x onerror=alert(1)>.jpg", "\"'.jpg", "a&amp;b.jpg", "#frag.jpg", "?q=1.jpg",
                         "%2e%2e%2f.jpg", "..", "../../etc/passwd", "\u202e\u200fgpj.exe", "caf\u00e9", "cafe\u0301",
                         "Case", "case", "CASE", "index", "page-2", " ", "\udcff\udcfe.jpg", "con", "nul.jpg",
                         "x" * 300, "-", ""])


@given(st.one_of(names, nasty), st.one_of(st.just(""), names))
@settings(max_examples=400, deadline=None)
def test_slug_is_plain_ascii(name, salt):
    slug = slugify(name, salt=salt)
    assert SLUG.fullmatch(slug), slug
    assert len(slug) <= 48 + 9
    assert slug not in ("index", "layers", "skipped") and not re.fullmatch(r"page-\d+", slug)


@given(st.lists(st.one_of(names, nasty), min_size=2, max_size=30, unique=True), st.one_of(st.just(""), names))
@settings(max_examples=200, deadline=None)
def test_distinct_names_distinct_slugs(many, salt):
    assert len({slugify(n, salt=salt) for n in many}) == len(many)
    assert len(set(unique_slugs(many, [salt] * len(many)))) == len(many)


@given(names)
@settings(max_examples=200, deadline=None)
def test_case_and_normalization_variants_do_not_collide(name):
    variants = {name, name.lower(), name.upper(), unicodedata.normalize("NFC", name),
                unicodedata.normalize("NFD", name), unicodedata.normalize("NFKC", name)}
    assert len({slugify(v) for v in variants}) == len(variants)


@given(st.one_of(names, nasty))
@settings(max_examples=200, deadline=None)
def test_same_name_other_set_other_slug(name):
    assert slugify(name, salt="test") != slugify(name, salt="personal")


def test_unique_slugs_survive_a_hash_collision(monkeypatch):
    import generator.report.names as names

    monkeypatch.setattr(names, "slugify", lambda text, salt="", limit=48: "same-0000abcd")
    assert unique_slugs(["a", "b", "c"]) == ["same-0000abcd", "same-0000abcd-2", "same-0000abcd-3"]


@given(st.lists(st.tuples(st.one_of(names, nasty, st.sampled_from(["test", "personal"])),
                          st.one_of(names, nasty)), min_size=1, max_size=25, unique=True))
@settings(max_examples=100, deadline=None)
def test_results_table_pages(pairs):
    """The name -> page mapping the build uses: every page path is plain, distinct and inside sets/."""
    from generator.build import finish_table

    df = pd.DataFrame({"set": [s for s, _ in pairs], "file": [f for _, f in pairs], "label": "",
                       "status": "ok"})
    out = finish_table(df, SimpleNamespace(train_set="train"), ("cat", "dog"))
    pages = list(out["page"])
    assert len(set(pages)) == len(pages)
    for p in pages:
        assert re.fullmatch(r"sets/[a-z0-9-]+/[a-z0-9-]+\.html", p), p
    # one folder per set, distinct sets in distinct folders
    folders = out.groupby("set")["set_slug"].nunique()
    assert (folders == 1).all()
    assert out.drop_duplicates("set")["set_slug"].is_unique


@given(st.lists(st.one_of(names, nasty, st.sampled_from(["train", "test", "personal", "unrelated"])),
                min_size=1, max_size=20, unique=True))
@settings(max_examples=200, deadline=None)
def test_set_folders(sets):
    slugs = [set_slug(s) for s in sets]
    assert len(set(slugs)) == len(slugs)
    assert all(SLUG.fullmatch(s) for s in slugs)


@given(st.one_of(names, nasty))
@settings(max_examples=200, deadline=None)
def test_safe_name_is_encodable(name):
    shown = safe_name(name)
    shown.encode("utf-8")  # never raises: undecodable bytes are shown as U+FFFD
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogates (undecodable bytes): each shown as the replacement character
        assert "\ufffd" in shown and not any("\ud800" <= c <= "\udfff" for c in shown)
    else:
        assert shown == name  # a name that is text already is shown as it is


@pytest.mark.parametrize("rel", ["../x.html", "/etc/passwd", "a/../../x", "sets/../../x", "sets/a/../../../x"])
def test_site_writer_refuses_outside(tmp_path, rel):
    w = SiteWriter(tmp_path / "site", Lang("en"))
    with pytest.raises(ValueError, match="outside the site"):
        w.text(rel, "x")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.html").exists()


def test_site_writer_refuses_symlink_escape(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sets").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the site"):
        SiteWriter(site, Lang("en")).text("sets/evil.html", "x")
    assert not Path(tmp_path / "evil.html").exists()


def test_fragments_are_rendered_once_per_key(tmp_path):
    (tmp_path / "t").mkdir()
    w = SiteWriter(tmp_path / "site", Lang("en"))
    calls = []
    real = w.env.get_template

    def counting(name, *a, **k):
        calls.append(name)
        return real(name, *a, **k)

    w.env.get_template = counting
    first = w.fragment("footer.html", "k", run={"backbone": "b", "weights_file": "w.pth"}, generated="today")
    again = w.fragment("footer.html", "k", run={"backbone": "other", "weights_file": "x"}, generated="never")
    assert first == again and "b" in first and calls == ["footer.html"]
    other = w.fragment("footer.html", "k2", run={"backbone": "other", "weights_file": "x"}, generated="never")
    assert "other" in other and calls == ["footer.html", "footer.html"]


def test_numbers_are_written_the_locale_way():
    en, ko = Lang("en"), Lang("ko")
    assert en.pct(0.12345) == "12.3%" and en.num(1234567) == "1,234,567" and en.num(0.5, 2) == "0.50"
    assert en.pct(float("nan")) == "–" and en.num(None) == "–"
    assert ko.date("2026-11-27T10:00:00") == "2026년 11월 27일" and en.date("2026-11-27") == "November 27, 2026"


def test_compiled_templates_are_kept_and_a_stale_one_is_compiled_again(tmp_path, monkeypatch):
    """With a bytecode folder, a rebuild loads every unchanged template compiled; one whose kept copy does not
    match (here: overwritten with garbage) is compiled again, and only that one."""
    first = SiteWriter(tmp_path / "a", Lang("en"), bytecode=tmp_path / "bc")
    names = [n for n in first.env.list_templates() if n.endswith(".html")]
    for n in names:
        first.env.get_template(n)
    kept = sorted((tmp_path / "bc").iterdir())
    assert len(kept) == len(names) > 5
    kept[0].write_bytes(b"not bytecode")
    second = SiteWriter(tmp_path / "b", Lang("en"), bytecode=tmp_path / "bc")
    compiled = []

    def count_compiles(env):
        real = env.compile

        def counting(source, name=None, *args, **kwargs):
            compiled.append(name)
            return real(source, name, *args, **kwargs)
        env.compile = counting

    count_compiles(second.env)
    for n in names:
        second.env.get_template(n)
    assert len(compiled) == 1
    # another Jinja2 (or another render.py, where the environment's options live): nothing kept is used
    import jinja2

    monkeypatch.setattr(jinja2, "__version__", "0.0-other")
    third = SiteWriter(tmp_path / "c", Lang("en"), bytecode=tmp_path / "bc")
    compiled.clear()
    count_compiles(third.env)
    for n in names:
        third.env.get_template(n)
    assert len(compiled) == len(names)
