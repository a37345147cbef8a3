"""generator/publish/pages (site.py): one registry of page kinds drives the build, run.json and the browser tests; pages
are pure functions of the Report (rendered twice, the same bytes); and every page kind is valid HTML: the W3C's Nu
HTML Checker (vnu.jar, from npm's vnu-jar, run with Java) finds no error on one page of each kind of a small real
site. All pages go to ONE checker run: the JVM takes seconds to start, the pages a fraction of that.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from generator.publish import pages


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and "assets" not in p.parts}


def test_every_registered_kind_wrote_pages(small_site, small_report):
    """Every kind this build has (compare.html only with setting compare) wrote pages; the others wrote none."""
    settings, _run = small_site
    _bundle, report = small_report
    written = json.loads((Path(settings.site_dir) / "run.json").read_text())["pages"]
    assert set(written) == {k.name for k in pages.PAGES} | {pages.PHOTO_KIND}
    shown = {k.name: k.shown(report) for k in pages.PAGES}
    assert shown["compare"] is False
    for name, w in written.items():
        assert (w["count"] >= 1) == shown.get(name, True), name
        assert all((Path(settings.site_dir) / rel).is_file() for rel in w["first"])


def test_the_navigation_is_the_registry(small_report):
    _bundle, report = small_report
    from generator.i18n import Lang

    nav = pages.common(report, Lang("en"))["nav"]
    hrefs = [n["href"] for n in nav]
    assert [k.href for k in pages.PAGES if k.nav and k.shown(report)] == [h for h in hrefs if not h.startswith("sets/")]
    assert "compare.html" not in hrefs  # no second model in this build


def test_pages_are_a_pure_function_of_the_report(small_report, tmp_path):
    _bundle, report = small_report
    a, b = tmp_path / "a", tmp_path / "b"
    first = pages.write_site(a, report, report.settings)
    second = pages.write_site(b, report, report.settings)
    assert first == second
    ta, tb = _tree(a), _tree(b)
    assert ta.keys() == tb.keys() and len(ta) > 50
    assert [k for k in ta if ta[k] != tb[k]] == []


VNU = Path(__file__).resolve().parents[1] / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"


def one_page_of_each_kind(site: Path) -> list[Path]:
    """The first page of every kind in the page registry (as run.json lists what the build wrote); then every
    top-level page, and under sets/ the first gallery page of each set, the first photo page and the first
    confusion-cell page found (sorted, so the choice is the same every run)."""
    written = json.loads((site / "run.json").read_text())["pages"]
    assert set(written) == {k.name for k in pages.PAGES} | {pages.PHOTO_KIND}
    firsts = [site / w["first"][0] for w in written.values() if w["count"]]
    tops = sorted(site.glob("*.html"))
    sets = sorted(p for p in (site / "sets").iterdir() if p.is_dir())
    tops += [s / "index.html" for s in sets if (s / "index.html").is_file()]
    inside = sorted(p for s in sets for p in s.glob("*.html") if p.name != "index.html")
    cells = [p for p in inside if p.name.startswith("cell-")]
    photos = [p for p in inside if not p.name.startswith(("cell-", "page-"))]
    galleries_2 = [p for p in inside if p.name.startswith("page-")]
    return list(dict.fromkeys(firsts + tops + cells[:1] + photos[:1] + galleries_2[:1]))


def vnu_errors(pages: list[Path]) -> list[str]:
    """The checker's errors on these pages, each as 'page:line: message' (one Java start for all of them)."""
    java = shutil.which("java")
    if java is None:
        pytest.skip("Java is not installed (apt-get install default-jre-headless): the Nu HTML Checker needs it")
    if not VNU.is_file():
        pytest.skip(f"the Nu HTML Checker is not installed at {VNU} (make test installs vnu-jar with npm)")
    proc = subprocess.run([java, "-Xss4m", "-jar", str(VNU), "--errors-only", "--format", "json",
                           *map(str, pages)], capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stderr or proc.stdout)
    out = [f"{Path(m.get('url', '')).name}:{m.get('lastLine', '?')}: {m['message']}"
           for m in report["messages"] if m.get("type") == "error"]
    assert out or proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_the_checker_finds_errors(tmp_path):
    """The check can fail: a page with a label around two controls and a repeated id gets both errors."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>t</title></head><body>'
                   '<label>x <input id="a"> <output id="a">1</output></label></body></html>')
    errors = vnu_errors([bad])
    assert any(re.search(r"label.*(descendant|more than one)", e) for e in errors), errors
    assert any("Duplicate ID" in e for e in errors), errors


def test_every_page_kind_is_valid_html(small_site):
    settings, _run = small_site
    site = Path(settings.site_dir)
    pages = one_page_of_each_kind(site)
    kinds = {p.name for p in pages}
    assert {"index.html", "report.html", "overview.html", "errors.html", "layers.html", "methods.html",
            "figures.html", "skipped.html"} <= kinds
    assert any(p.name.startswith("cell-") for p in pages) and len(pages) >= 12, pages
    assert vnu_errors(pages) == []


def test_a_page_kind_is_one_registered_unit(small_report, tmp_path, monkeypatch):
    """Adding a page kind is one PageKind (here a toy one, rendered with an existing template) and its template:
    the build writes it, the navigation links it, and write_site's count (run.json's "pages") lists it."""
    from generator.i18n import N_
    from generator.publish.pages import site

    _bundle, report = small_report

    def toy_pages(rep, ctx):
        yield "toy.html", {"skipped": [{"set": s.name, "file": "<b>x</b>", "status": "toy"} for s in rep.eval_sets]}

    toy = pages.PageKind("toy", "skipped.html", N_("Skipped"), "toy.html", toy_pages)
    monkeypatch.setattr(site, "PAGES", (*site.PAGES, toy))
    written = pages.write_site(tmp_path, report, report.settings)
    assert written["toy"] == {"count": 1, "first": ["toy.html"]}
    html = (tmp_path / "toy.html").read_text()
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # the template escapes what the model holds
    assert 'href="toy.html"' in (tmp_path / "report.html").read_text()  # every page's navigation has it
