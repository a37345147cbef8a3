"""The site: every page kind of the registry, the static files, the pictures, the tables, the post."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generator.config import Settings
from generator.explain.overlay import colormaps_js
from generator.frames import pd
from generator.i18n import Lang
from generator.publish import post
from generator.publish.pages import cells, compare, errors, figures, layers, methods, overview, report, sets, skipped
from generator.publish.pages.kinds import PHOTO_KIND, PageKind
from generator.publish.pages.maps import Maps
from generator.publish.pages.pagedata import PageDataCache
from generator.publish.pages.photo import PhotoPages, gallery_script, photo_pages_started
from generator.publish.render import SiteWriter
from generator.report import analysis
from generator.report.findings import no_cam_sentence
from generator.report.names import safe_name
from generator.report.summary import Report, asset_path, tap_labels

NAV_BEFORE_SETS = ("report", "overview")


# The page kinds, in navigation order: each is one module of this package (its KIND: name, template, navigation
# title, and the function that makes its page models from the Report) and its template.
PAGES: tuple[PageKind, ...] = tuple(m.KIND for m in (report, overview, sets, cells, errors, layers, methods, compare,
                                                     figures, skipped))


def common(report: Report, lang: Lang) -> dict[str, Any]:
    shown = [k for k in PAGES if k.nav and k.shown(report)]
    nav = [{"title": k.nav, "href": k.href, "raw": False} for k in shown if k.name in NAV_BEFORE_SETS]
    nav += [{"title": s.name, "href": f"sets/{s.slug}/index.html", "raw": True} for s in report.eval_sets]
    nav += [{"title": k.nav, "href": k.href, "raw": False} for k in shown if k.name not in NAV_BEFORE_SETS]
    run = report.run
    return {
        "nav": nav, "run": run, "classes": report.classes, "settings": report.settings,
        "threshold": report.neither_threshold, "neither_score": report.neither_score,
        "n_taps": report.n_taps, "tap_labels": tap_labels(run, lang),
        "generated": lang.date(run.started),
        "no_cam_text": no_cam_sentence(run, lang),  # '' unless the model has no CAM at its last stage
    }


def write_site(build_dir: Path, report: Report, settings: Settings,
               page_data: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every page, the static files, the pictures, the tables, and the Jekyll post, into build_dir.
    page_data: the file that caches what the image pages take from the records (pagedata.py), or None.

    Returns, per page kind of the registry (and PHOTO_KIND for the image pages the sets render), how many pages
    were written and the first three: run.json keeps it, and the browser tests visit one page of each kind."""
    lang = Lang(settings.lang)
    writer = SiteWriter(build_dir, lang, bytecode=Path(settings.cache_dir) / "templates")
    writer.static()
    cache = PageDataCache(page_data)
    writer.text("static/colormaps.js", cache.text("static/colormaps.js", colormaps_js))
    link_pictures(writer, report.results)
    ctx = dict(common(report, lang), lang_obj=lang, maps=Maps(report), writer=writer)
    base = {k: v for k, v in ctx.items() if k not in ("maps", "writer")}
    deferred: list[tuple[str, PhotoPages]] = []
    models: list[tuple[PageKind, str, dict]] = []
    written: dict[str, list[str]] = {kind.name: [] for kind in PAGES}
    for kind in PAGES:
        for rel, model in kind.pages(report, ctx):
            if isinstance(model, PhotoPages):
                deferred.append((rel, model))
            else:
                models.append((kind, rel, model))
    # The image pages (most of the work) are rendered by forked workers while this process renders the others.
    with photo_pages_started(build_dir, report, base, [pp for _, pp in deferred], settings.lang,
                             settings.n_workers, cache=cache, writer=writer) as photo_entries:
        for kind, rel, model in models:
            template = model.pop("template", kind.template)
            writer.page(rel, template, **base, **model)
            written[kind.name].append(rel)
        entries = photo_entries()
    for (rel, _), es in zip(deferred, entries):
        writer.text(rel, gallery_script(es))
    written[PHOTO_KIND] = [p["page"] for _, pp in deferred for p in pp.photos if (build_dir / p["page"]).is_file()]
    write_tables(writer, report)
    post.write(writer, report, lang)
    return {name: {"count": len(rels), "first": rels[:3]} for name, rels in written.items()}


def link_pictures(writer: SiteWriter, results: pd.DataFrame) -> None:
    """Each distinct photo's two pictures, hard-linked from the picture cache as assets/ab/<sha256>.<ext> and
    assets/ab/<sha256>.thumb.webp (no folder per photo: on disk each folder costs a 4 KB block)."""
    shown = results[(results["status"] == "ok") & results["pictures"].astype(bool) & results["photo"].astype(bool)]
    for sha, folder, photo in shown[["sha256", "pictures", "photo"]].drop_duplicates("sha256").values:
        for name in (photo, "thumb.webp"):
            writer.link(Path(folder) / name, asset_path(sha, name))


def write_tables(writer: SiteWriter, report: Report) -> None:
    """results.csv (one row per file, skipped ones included) and leaderboard.csv (one row per scored map)."""
    results = report.results
    internal = {"path", "pictures", "slug", "set_slug", "photo", "display_w", "display_h"}
    first = analysis.result_columns(report.classes)
    cols = first + [c for c in results.columns if c not in first and c not in internal]
    csv = results[cols].copy()
    csv["file"] = csv["file"].map(safe_name)
    csv["set"] = csv["set"].map(safe_name)
    writer.text("results.csv", csv.to_csv(index=False, float_format="%.6g"))
    scores = report.scores.copy()
    if len(scores):
        scores["file"] = scores["file"].map(safe_name)
        scores["set"] = scores["set"].map(safe_name)
    writer.text("leaderboard.csv", scores.to_csv(index=False, float_format="%.6g"))
