"""The galleries of each set; their image pages are rendered by photo.py after every other page."""

from __future__ import annotations

import math
from collections.abc import Iterator

from generator.explain.overlay import payload_json
from generator.i18n import Lang
from generator.publish.pages.kinds import PageKind
from generator.publish.pages.photo import PhotoPages
from generator.report import analysis
from generator.report.summary import Report, photo_summary


def set_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict | PhotoPages]]:
    """Per set: the gallery pages, then one page per photo; each record is read once, and the set's photos.js
    (which needs every photo's map) is written after its photo pages."""
    settings = report.settings
    lang: Lang = ctx["lang_obj"]
    words = payload_json({
        "cat": lang._("cat"), "dog": lang._("dog"), "neither": lang._("neither"),
        "label": lang._("label %(label)s", label="%(label)s"),
        "alt": lang._("%(name)s: predicted %(pred)s (%(conf)s)", name="%(name)s", pred="%(pred)s", conf="%(conf)s"),
        "alt-label": lang._(", labeled %(label)s", label="%(label)s")})
    b = report.truth.baselines
    annotated = set(b["set"]) if not b.empty else set()
    for summary in report.eval_sets:
        df = report.rows(summary.key)
        photos = [photo_summary(r, report) for r in df.to_dict("records")]
        n_pages = max(1, math.ceil(len(photos) / settings.page_size))
        names = ["index.html"] + [f"page-{i + 1}.html" for i in range(1, n_pages)]
        tag_counts = {t: sum(p["tag"] == t for p in photos) for t in analysis.TAGS}
        page_of = {}
        for i in range(n_pages):
            chunk = photos[i * settings.page_size:(i + 1) * settings.page_size]
            for ph in chunk:
                page_of[ph["slug"]] = names[i]
            yield f"sets/{summary.slug}/{names[i]}", {
                "template": "gallery.html", "set": summary, "photos": chunk, "tag_counts": tag_counts,
                "labeled": bool(summary.counts["labeled"]), "has_truth": summary.key in annotated,
                "page_no": i + 1, "pages": n_pages, "page_names": names,
                "words": words}
        # Not a page model: the set's image pages, rendered in parallel after every other page, then photos.js
        yield f"sets/{summary.slug}/photos.js", PhotoPages(summary, photos, page_of,
                                                                 list(summary.signed_scales))


KIND = PageKind("sets", "gallery.html", None, None, set_pages)
