"""generator/publish/pages.py: one registry of page kinds drives the build, run.json and the browser tests; pages
are pure functions of the Report (rendered twice, the same bytes)."""

from __future__ import annotations

import json
from pathlib import Path

from generator.publish import pages


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and "assets" not in p.parts}


def test_every_registered_kind_wrote_pages(small_site):
    settings, _run = small_site
    written = json.loads((Path(settings.site_dir) / "run.json").read_text())["pages"]
    assert set(written) == {k.name for k in pages.PAGES} | {pages.PHOTO_KIND}
    for name, w in written.items():
        assert w["count"] >= 1, name
        assert all((Path(settings.site_dir) / rel).is_file() for rel in w["first"])


def test_the_navigation_is_the_registry(small_report):
    _bundle, report = small_report
    from generator.i18n import Lang

    nav = pages.common(report, Lang("en"))["nav"]
    hrefs = [n["href"] for n in nav]
    assert [k.href for k in pages.PAGES if k.nav] == [h for h in hrefs if not h.startswith("sets/")]


def test_pages_are_a_pure_function_of_the_report(small_report, tmp_path):
    _bundle, report = small_report
    a, b = tmp_path / "a", tmp_path / "b"
    first = pages.write_site(a, report, report.settings)
    second = pages.write_site(b, report, report.settings)
    assert first == second
    ta, tb = _tree(a), _tree(b)
    assert ta.keys() == tb.keys() and len(ta) > 50
    assert [k for k in ta if ta[k] != tb[k]] == []
