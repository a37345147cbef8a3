"""generator/publish/pages/pagedata.py: the image pages' data cached per photo. A render from the cache writes the
same bytes as one from the records; an entry is made again when its record file or its set's scales change; the
cache file's key changes with the settings that change the data, and not with those that only move pages."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from generator.explain.record import PhotoRecord, record_path
from generator.files import load_npz, save_npz
from generator.publish import pages
from generator.publish.pages import pagedata, photo, site


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink() and "assets" not in p.parts}


def _own_records(report, tmp_path: Path):
    """The report with a private copy of its records (the small site's cache is shared by the session)."""
    fp = report.run.model_fingerprint
    src = record_path(report.settings.cache_dir, fp, "00x").parent.parent
    cache = tmp_path / "cache"
    shutil.copytree(src, record_path(cache, fp, "00x").parent.parent)
    return replace(report, settings=replace(report.settings, cache_dir=cache))


def refuse(why: str):
    """A stand-in that fails the test if called, also inside a forked worker (an AssertionError travels back
    through the pool; pytest.fail's exception would end the worker instead)."""

    def called(*_args, **_kwargs):
        raise AssertionError(why)

    return called


def test_a_render_from_the_cache_writes_the_same_bytes(small_report, tmp_path, monkeypatch):
    _bundle, report = small_report
    report = _own_records(report, tmp_path)
    cache_file = pagedata.cache_path(report.settings.cache_dir, "k" * 64)
    plain = pages.write_site(tmp_path / "plain", report, report.settings)
    filled = pages.write_site(tmp_path / "filled", report, report.settings, page_data=cache_file)
    assert cache_file.is_file()
    monkeypatch.setattr(photo, "decode_record", refuse("a record was decoded, not read from the cache"))
    monkeypatch.setattr(site, "colormaps_js", refuse("colormaps.js was made again (matplotlib)"))
    warm = pages.write_site(tmp_path / "warm", report, report.settings, page_data=cache_file)
    assert plain == filled == warm
    a, b, c = _tree(tmp_path / "plain"), _tree(tmp_path / "filled"), _tree(tmp_path / "warm")
    assert a.keys() == b.keys() == c.keys() and sum(k.startswith("sets/") for k in a) > 20
    assert [k for k in a if not a[k] == b[k] == c[k]] == []


def test_a_changed_record_is_read_again(small_report, tmp_path):
    _bundle, report = small_report
    report = _own_records(report, tmp_path)
    cache_file = pagedata.cache_path(report.settings.cache_dir, "k" * 64)
    pages.write_site(tmp_path / "before", report, report.settings, page_data=cache_file)
    page = next(p for p in sorted((tmp_path / "before" / "sets").rglob("*.html"))
                if "index" not in p.name and not p.name.startswith("page-"))
    rel = page.relative_to(tmp_path / "before").as_posix()
    sha = next(r["sha256"] for r in report.results.to_dict("records") if r["page"] == rel)
    path = record_path(report.settings.cache_dir, report.run.model_fingerprint, sha)
    record = PhotoRecord.from_npz(load_npz(path), report.n_taps)
    record.maps["cam"] = [None if m is None else np.asarray(m) * 2 for m in record.maps["cam"]]  # twice the map
    save_npz(path, record.to_npz())
    after = pages.write_site(tmp_path / "after", report, report.settings, page_data=cache_file)
    fresh = pages.write_site(tmp_path / "fresh", report, report.settings)  # no cache: from the records
    assert after == fresh
    assert (tmp_path / "after" / rel).read_bytes() == (tmp_path / "fresh" / rel).read_bytes()
    assert (tmp_path / "after" / rel).read_bytes() != page.read_bytes()  # the cached entry was not used
    a, f = _tree(tmp_path / "after"), _tree(tmp_path / "fresh")
    assert [k for k in a if a[k] != f[k]] == []
    entry = pagedata.PageDataCache(cache_file).entries[sha]
    assert entry.record_sha256 == pagedata.read_record(report.settings.cache_dir, report.run.model_fingerprint,
                                                       sha)[0]


def test_an_entry_holds_only_for_its_record_and_scales(tmp_path):
    path = tmp_path / "pages" / "x.pkl"
    value = pagedata.PhotoData({"v": 1}, "{}", {"margin": 1.5}, ("cat", "dog"))
    cache = pagedata.PageDataCache(path)
    assert cache.entries == {}
    cache.update({"ab": pagedata.Entry("d1", (0.5, 2.0), "cat", value)})
    cache.save()
    again = pagedata.PageDataCache(path)
    assert again.lookup("ab", "d1", (0.5, 2.0), "cat") == value
    assert again.lookup("ab", "d2", (0.5, 2.0), "cat") is None  # the record file changed
    assert again.lookup("ab", "d1", (0.5, 2.5), "cat") is None  # the set's signed scales changed
    assert again.lookup("ab", "d1", (0.5, 2.0), "dog") is None  # another label: maybe other classes shown
    assert again.lookup("cd", "d1", (0.5, 2.0), "cat") is None
    assert again.text("static/x.js", lambda: "made") == "made"
    again.save()
    assert pagedata.PageDataCache(path).text("static/x.js", lambda: pytest.fail("made twice")) == "made"
    path.write_bytes(b"not a pickle")
    assert pagedata.PageDataCache(path).entries == {}  # damaged: made again, never trusted


def test_the_key_follows_the_settings_that_change_the_data(small_site):
    from generator import manifest
    from generator.data.scan import discover_sets, scan_rows

    settings, _run = small_site
    rows = scan_rows(settings.data_dir, discover_sets(settings.data_dir, settings.train_set, settings.eval_sets))

    def path(**changes):
        return pagedata.cache_path(settings.cache_dir, manifest.make(rows, replace(settings, **changes)).figures)

    same = path()
    assert path(page_size=settings.page_size + 1) == same  # pages move, their data do not
    assert path(colormap="viridis" if settings.colormap != "viridis" else "jet") != same
    assert path(box_threshold=settings.box_threshold / 2) != same


def test_page_data_files_of_other_keys_are_pruned_to_the_most_recent(tmp_path):
    """Each code or settings change makes a new page data file (megabytes each): a save keeps the KEEP most
    recently used ones, the one in use among them, and never a file of another name."""
    import os

    from generator.publish.pages import pagedata

    folder = tmp_path / "pages"
    old = []
    for i in range(pagedata.KEEP + 2):
        p = pagedata.cache_path(tmp_path, f"{i:024x}")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"old")
        os.utime(p, (1000 + i, 1000 + i))
        old.append(p)
    (folder / "README").write_text("not ours")
    current = pagedata.PageDataCache(pagedata.cache_path(tmp_path, "f" * 24))
    current.update({"abc": pagedata.Entry("r", (1.0,), "cat", pagedata.PhotoData({}, "{}", {}, ("cat",)))})
    current.save()
    left = {p.name for p in folder.iterdir()}
    assert current.path.name in left and "README" in left
    kept_old = [p for p in old if p.name in left]
    assert kept_old == old[-(pagedata.KEEP - 1):]  # the newest of the others, with the current one: KEEP in all
