"""The pages of the site: one registry (name, template, navigation title, model), models in, files out.

Models are made from the Report (report.py) and the per-photo records (maps) read one at a time from the
cache, so memory stays flat however many photos there are. Rendering only: nothing here computes a metric.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generator.config import Settings
from generator.data.scan import CLASSES
from generator.evaluate import stats
from generator.evaluate import truth as truth_mod
from generator.explain.overlay import colormaps_js, encode_maps, payload_json
from generator.explain.record import PhotoRecord, map_key
from generator.frames import pd
from generator.i18n import N_, Lang
from generator.publish import post
from generator.publish.render import SiteWriter
from generator.report import analysis, findings
from generator.report.names import safe_name
from generator.report.summary import Report, SetSummary, asset_path, map_titles, photo_summary, tap_labels

# Words the templates translate from data (class names, tags, outcomes, needs, randomisations).
DATA_WORDS = (N_("cat"), N_("dog"), N_("correct"), N_("wrong"), N_("neither"), N_("unlabeled"), N_("right"),
              N_("features"), N_("gradients"), N_("forwards"), N_("head"), N_("head + last stage"),
              # the leaderboard's verdicts (evaluate.stats.decide)
              N_("better"), N_("worse"), N_("equivalent"), N_("undecided"), N_("same map"))


@dataclass(frozen=True)
class PageKind:
    name: str
    template: str
    nav: str | None  # navigation title (a message id), None when not in the navigation
    href: str | None  # the page the navigation links to
    pages: Callable[[Report, dict], Iterator[tuple[str, dict]]]


# ---- maps as data ---------------------------------------------------------------------------------------------


class Maps:
    """Reads photo records from the cache and packs their maps for the browser."""

    def __init__(self, report: Report) -> None:
        self.record = report.record
        self.n_taps = report.n_taps
        self.chosen = list(report.run.methods_chosen)

    def entries(self, record: PhotoRecord, methods: list[str], taps: range | list[int],
                classes: str = "all") -> list[tuple[str, np.ndarray]]:
        """(key, map) of these methods at these taps; per-class maps for every class, or only the predicted
        one with classes="pred"."""
        out = []
        for name in methods:
            per_tap = record.maps.get(name)
            if per_tap is None:
                continue
            for t in taps:
                m = per_tap[t]
                if m is None:
                    continue
                m = np.asarray(m, np.float64)
                if m.ndim == 3:
                    ks = range(m.shape[0]) if classes == "all" else [record.pred]
                    out += [(map_key(name, t, k), m[k]) for k in ks]
                else:
                    out.append((map_key(name, t), m))
        return out

    def payload(self, record: PhotoRecord, methods: list[str], taps, classes: str = "all") -> dict:
        return encode_maps(self.entries(record, methods, taps, classes))


def method_info(report: Report, names: list[str]) -> list[dict]:
    """What the pages say about each method (its registry entry, recorded in the run facts: the pages never
    import the registry, which imports torch)."""
    return [dict(asdict(report.run.methods_info[n]), name=n) for n in names]


SIGNED_PERCENTILE = 99  # the signed maps' scale: this percentile of the set's photos (the page says so)


def signed_scales(report: Report, set_key: str) -> list[float]:
    """One scale per tap for a set's signed evidence maps: the SIGNED_PERCENTILE-th percentile over its photos of
    the largest |CAM_pred - CAM_other|, so one photo's colours compare with another's and a few outliers do not wash
    out the rest."""
    d = report.rows(set_key)
    out = []
    for t in range(report.n_taps):
        col = f"signed{t}_absmax"
        v = d[col].dropna().to_numpy() if col in d else np.zeros(0)
        scale = float(np.percentile(v, SIGNED_PERCENTILE)) if v.size else 0.0
        out.append(scale if scale > 0 else 1.0)
    return out


# ---- common model ---------------------------------------------------------------------------------------------


def common(report: Report, lang: Lang) -> dict[str, Any]:
    nav = [{"title": k.nav, "href": k.href, "raw": False} for k in PAGES if k.nav and k.name in NAV_BEFORE_SETS]
    nav += [{"title": s.name, "href": f"sets/{s.slug}/index.html", "raw": True} for s in report.eval_sets]
    nav += [{"title": k.nav, "href": k.href, "raw": False} for k in PAGES if k.nav and k.name not in NAV_BEFORE_SETS]
    run = report.run
    return {
        "nav": nav, "run": run, "classes": CLASSES, "settings": report.settings, "threshold": report.neither_threshold,
        "n_taps": report.n_taps, "tap_labels": tap_labels(run, lang),
        "generated": lang.date(run.started),
    }


# ---- the story ------------------------------------------------------------------------------------------------


def report_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    lang = ctx["lang_obj"]
    story = findings.story(report, lang)
    model = {"story": story, "figures": {f["file"]: f for f in report.figures}}
    yield "report.html", dict(model, canonical=None)
    yield "index.html", dict(model, canonical="report.html")


# ---- overview -------------------------------------------------------------------------------------------------


def overview_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    total = int(len(report.results))
    yield "overview.html", {"summaries": report.sets, "figures": report.figures, "total_files": total,
                            "antisymmetry": max(report.run.antisymmetry, default=math.inf)}


# ---- galleries and photo pages --------------------------------------------------------------------------------


def gallery_entry(p: dict, record: PhotoRecord | None, maps: Maps, truth: dict | None = None) -> dict:
    """One photo in sets/<set>/photos.js: what the gallery filters on, and the last-tap CAM of its predicted
    class for the thumbnail's overlay. truth (annotated photos): "loc" = [peak off the head, peak off the pet,
    share of the map on the head, on the pet] of the last-tap CAM of the labelled class (None where not scored)."""
    entry = {"name": p["name"], "slug": p["slug"], "page": p["page"], "thumb": p["thumb"], "label": p["label"] or "",
             "pred": p["prediction"], "conf": p["confidence"], "tag": p["tag"], "size": p["thumb_size"]}
    if record is not None:
        entry["map"] = maps.payload(record, ["cam"], [maps.n_taps - 1], classes="pred")
    if truth and p["label"]:
        s = truth["maps"].get(f"cam/{maps.n_taps - 1}/{p['label']}", {})
        head, pet = s.get("head"), s.get("pet")
        entry["loc"] = [None if head is None else 1 - head[0], None if pet is None else 1 - pet[0],
                        None if head is None else head[2], None if pet is None else pet[2]]
    return entry


def gallery_script(entries: list[dict]) -> str:
    """The gallery's data as a script file (it loads from file:// too, unlike fetched JSON); <, >, & escaped."""
    return f"window.CAM_PHOTOS = {payload_json(entries)};\n"


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
        yield f"sets/{summary.slug}/photos.js", PhotoPages(summary, photos, page_of, signed_scales(report, summary.key))


@dataclass
class PhotoPages:
    """The image pages of one set, rendered by `render_photo_pages` (in parallel), and then its photos.js."""

    summary: SetSummary
    photos: list[dict]
    page_of: dict[str, str]  # photo slug -> the gallery page that shows it
    scales: list[float]  # per tap, the set's scale of the signed evidence maps


def photo_page(report: Report, maps: Maps, pp: PhotoPages, i: int, record: PhotoRecord,
               truth: dict | None = None) -> dict[str, Any]:
    """The model of the image page of photo i of a set; truth: truth.photo_truth of the photo, if annotated."""
    ph, photos = pp.photos[i], pp.photos
    return {"truth": truth, "truth_data": truth_data(truth, ph, maps.n_taps) if truth else None,
            "truth_rows": truth_rows(truth, ph, maps.n_taps) if truth else [],
            "set": pp.summary, "photo": ph, "index": i + 1, "count": len(photos),
            "prev": photos[i - 1] if i > 0 else None, "next": photos[i + 1] if i + 1 < len(photos) else None,
            "gallery_page": pp.page_of[ph["slug"]], "data": photo_page_data(report, maps, record, pp.scales),
            "facts": photo_facts(report, record), "methods": method_info(report, maps.chosen),
            "signed_scale": pp.scales[-1], "signed_percentile": SIGNED_PERCENTILE / 100}


@dataclass
class PhotoJob:
    """What rendering image pages needs (most of a re-render's time): forked workers inherit it, and each renders
    slices of a set's photos."""

    build_dir: Path
    report: Report
    maps: Maps
    base: dict[str, Any]
    sets: list[PhotoPages]
    lang: str

    @functools.cached_property
    def truth(self) -> dict[tuple[str, str], dict]:  # (set, file) -> what its page shows of the ground truth
        return truth_mod.photo_index(self.report.truth)

    @functools.cached_property
    def writer(self) -> SiteWriter:  # one Jinja2 environment per worker process
        return SiteWriter(self.build_dir, Lang(self.lang))


def _render_slice(job: PhotoJob, task: tuple[int, int, int]) -> list[dict]:
    which, start, stop = task
    report, maps, pp = job.report, job.maps, job.sets[which]
    entries = []
    for i in range(start, stop):
        record = maps.record(pp.photos[i]["sha256"])
        truth = job.truth.get((pp.summary.key, pp.photos[i]["file"]))
        entries.append(gallery_entry(pp.photos[i], record, maps, truth))
        if record is not None:
            job.writer.page(pp.photos[i]["page"], "photo.html", **job.base,
                            **photo_page(report, maps, pp, i, record, truth))
    return entries


def render_photo_pages(build_dir: Path, report: Report, base: dict, sets: list[PhotoPages], lang: str,
                       processes: int, per_task: int = 64) -> list[list[dict]]:
    """Every image page of these sets; returns each set's gallery entries (for its photos.js), in order."""
    from generator.data.workers import forked_map

    job = PhotoJob(build_dir=build_dir, report=report, maps=Maps(report), base=base, sets=sets, lang=lang)
    tasks = [(k, start, min(start + per_task, len(pp.photos)))
             for k, pp in enumerate(sets) for start in range(0, len(pp.photos), per_task)]
    done = forked_map(_render_slice, job, tasks, processes)
    out: list[list[dict]] = [[] for _ in sets]
    for (k, _, _), entries in zip(tasks, done):
        out[k] += entries
    return out


def photo_page_data(report: Report, maps: Maps, record: PhotoRecord, scales: list[float]) -> str:
    """The image page's maps and what the browser needs to draw them, as JSON for a script element."""
    s = report.settings
    payload = maps.payload(record, maps.chosen, range(maps.n_taps))
    # Only what maps.js and app.js read of each method: the page pays these bytes 1,384 times over.
    methods = [{k: m[k] for k in ("name", "title", "per_class", "last_tap_only")}
               for m in method_info(report, maps.chosen)]
    data = {"payload": payload, "methods": methods, "classes": list(CLASSES),
            "pred": record.pred, "taps": list(report.run.tap_modules), "grid": s.input_size,
            "threshold": s.box_threshold, "cmap": s.colormap, "signedScale": scales}
    return payload_json(data)


def truth_data(truth: dict, ph: dict, n_taps: int) -> str:
    """What static/truth.js draws, as JSON for a script element: the regions' boxes and the pet's outline
    (fractions of the photo), and the peak (pixels of the photo) of the labelled class's CAM at the last stage."""
    s = truth["maps"].get(f"cam/{n_taps - 1}/{ph['label']}", {})
    return payload_json({"boxes": truth["boxes"], "outline": truth.get("outline"), "peak": s.get("peak"),
                         "w": ph["width"], "h": ph["height"]})


def truth_rows(truth: dict, ph: dict, n_taps: int) -> list[dict]:
    """The photo's scores as its page lists them: the CAM of the labelled class at each stage, head and pet."""
    out = []
    for t in range(n_taps):
        s = truth["maps"].get(f"cam/{t}/{ph['label']}")
        if s:
            out.append({"tap": t, **{k: s.get(k) for k in ("head", "pet")}})
    return out


def photo_facts(report: Report, record: PhotoRecord) -> dict[str, Any]:
    """Numbers an image page states: the signed map's identity (mean + bias difference = logit margin)."""
    pred = record.pred
    other = record.runner_up
    cam = record.cam(-1).astype(np.float64)
    bias = report.run.head_bias
    signed_mean = float((cam[pred] - cam[other]).mean())
    margin = float(record.logits[pred] - record.logits[other])
    return {"other": CLASSES[other], "signed_mean": signed_mean, "bias_diff": float(bias[pred] - bias[other]),
            "margin": margin}


def cell_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    for summary in report.labeled_sets:
        for (t, p), cell in analysis.confusion_cells(report.rows(summary.key)).items():
            yield f"sets/{summary.slug}/cell-{t}-as-{p}.html", {
                "set": summary, "label": t, "pred": p,
                "photos": [photo_summary(r, report) for r in cell.to_dict("records")]}


# ---- errors, layers, methods, figures, skipped ----------------------------------------------------------------


def error_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    maps: Maps = ctx["maps"]
    groups, data = [], {}
    for summary in report.eval_sets:
        df = report.rows(summary.key)
        group: dict[str, Any] = {"set": summary, "labeled": bool(summary.counts["labeled"])}
        if group["labeled"]:
            group["mistakes"] = [photo_summary(r, report) for r in analysis.mistakes(df).to_dict("records")]
            group["near"] = [photo_summary(r, report) for r in analysis.near_misses(df).to_dict("records")]
            group["cells"] = {t: {p: {"count": len(c), "href": f"sets/{summary.slug}/cell-{t}-as-{p}.html"}
                                  for (tt, p), c in analysis.confusion_cells(df).items() if tt == t}
                              for t in CLASSES}
            group["attention"] = analysis.attention_by_outcome(df).to_dict("records")
            for p in group["mistakes"]:
                record = maps.record(p["sha256"])
                if record is not None:
                    data[p["slug"]] = maps.payload(record, ["cam"], [maps.n_taps - 1])
        group["neither"] = [photo_summary(r, report) for r in df[df["tag"] == "neither"].to_dict("records")]
        groups.append(group)
    unrelated = report.unrelated
    ood_photos = []
    if unrelated is not None:
        ood_photos = [dict(photo_summary(r, report), msp=float(r["msp"]))
                      for r in analysis.ood_table(report.rows(unrelated.key)).to_dict("records")]
    yield "errors.html", {"groups": groups, "data": payload_json(data), "ood": report.ood.to_dict("records"),
                          "ood_photos": ood_photos,
                          "ece_bins": analysis.ECE_BINS,
                          "unrelated": unrelated}


def layer_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    maps: Maps = ctx["maps"]
    rng = np.random.default_rng(report.settings.seed)
    groups, data = [], {}
    for summary in report.eval_sets:
        df = report.rows(summary.key)
        take = rng.choice(len(df), size=min(report.settings.layer_sample, len(df)), replace=False) if len(df) \
            else np.zeros(0, int)
        sample = [photo_summary(r, report) for r in df.iloc[np.sort(take)].to_dict("records")]
        wrong = [photo_summary(r, report) for r in df[df["correct"] == "no"].to_dict("records")]
        for p in sample + wrong:
            record = maps.record(p["sha256"])
            if record is not None and p["slug"] not in data:
                data[p["slug"]] = maps.payload(record, maps.chosen, range(maps.n_taps), classes="pred")
        groups.append({"set": summary, "photos": sample, "mistakes": wrong})
    methods = method_info(report, maps.chosen)
    yield "layers.html", {"groups": groups, "data": payload_json({"methods": methods, "photos": data}),
                          "summaries": report.sets, "methods": methods}


def method_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    lang: Lang = ctx["lang_obj"]
    board = report.board
    titles = map_titles(report, lang)
    v = report.verdict
    verdict = None if v is None else {"n": v.n, "best": titles.get(v.best, v.best),
                                      "tied": ", ".join(titles.get(m, m) for m in v.tied),
                                      "beaten": ", ".join(titles.get(m, m) for m in v.beaten),
                                      "beats_baselines": v.beats_baselines}
    last = report.n_taps - 1
    rows = board.to_dict("records") if not board.empty else []

    def at_last(set_key: str) -> list[dict]:
        return sorted((r for r in rows if r["set"] == set_key and r["tap"] == last), key=lambda r: -r["combined"])

    per_tap: dict[str, list[dict | None]] = {}
    for r in rows:
        if r["set"] == "all" and getattr(report.run.methods_info.get(r["method"]), "needs", None) == "gradients":
            per_tap.setdefault(r["method"], [None] * report.n_taps)[r["tap"]] = r
    yield "methods.html", {
        "titles": titles, "verdict": verdict, "pooled": at_last("all"),
        "per_set": [(s.name, at_last(s.key)) for s in report.eval_sets if at_last(s.key)],
        "per_tap": sorted(per_tap.items(), key=lambda kv: -(kv[1][last] or {"combined": -9})["combined"]),
        "sanity": report.sanity_table.to_dict("records"),
        "methods": method_info(report, list(report.run.methods_scored)),
        "sample": report.settings.faithfulness_sample, "steps": report.settings.faithfulness_steps,
        "bootstrap": stats.BOOTSTRAP,
        "outcome": report.run.leaderboard, "margin": stats.MARGIN,
        "comparisons": report.comparisons.to_dict("records") if not report.comparisons.empty else [],
        "live": stats.live_comparisons([stats.Comparison(**r) for r in report.comparisons.to_dict("records")]),
        # Columns other evaluations add to the board (e.g. localisation where a set has ground truth): dicts of
        # title (shown), key (a column of the board's rows, with key_lo and key_hi for its interval) and digits.
        "extra_columns": [],
        "localisation": localisation_table(report),
        "truth_sets": truth_sets(report),
    }


def localisation_table(report: Report) -> list[dict]:
    """methods.html's localisation table: one row per (region, method, tap), maps of the labelled class."""
    t = report.localisation
    if t is None or t.empty:
        return []
    order = {m: i for i, m in enumerate(report.run.methods_chosen)}
    rows = t.to_dict("records")
    return sorted(rows, key=lambda r: (r["region"] != "head", order.get(r["method"], 99), r["method"], r["tap"]))


def truth_sets(report: Report) -> list[dict]:
    """What each set's ground truth gave: photos scored, entries left out (their sentences), photos not in it."""
    return [{"set": safe_name(st.set), "source": safe_name(st.source), "photos": st.photos,
             "left_out": [safe_name(x) for x in st.left_out], "not_in_set": st.not_in_set}
            for st in report.truth.sets]


def figure_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    yield "figures.html", {"figures": report.figures}


def skipped_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    skipped = report.results[report.results["status"] != "ok"]
    yield "skipped.html", {"skipped": [{"set": safe_name(r["set"]), "file": safe_name(r["file"]),
                                        "status": r["status"]} for r in skipped.to_dict("records")]}


NAV_BEFORE_SETS = ("report", "overview")
PHOTO_KIND = "photo"  # the image pages, rendered by the "sets" kind after every other page
PAGES: tuple[PageKind, ...] = (
    PageKind("report", "report.html", N_("Report"), "report.html", report_pages),
    PageKind("overview", "overview.html", N_("Overview"), "overview.html", overview_pages),
    PageKind("sets", "gallery.html", None, None, set_pages),
    PageKind("cells", "cell.html", None, None, cell_pages),
    PageKind("errors", "errors.html", N_("Errors"), "errors.html", error_pages),
    PageKind("layers", "layers.html", N_("Layers"), "layers.html", layer_pages),
    PageKind("methods", "methods.html", N_("Methods"), "methods.html", method_pages),
    PageKind("figures", "figures.html", N_("Figures"), "figures.html", figure_pages),
    PageKind("skipped", "skipped.html", N_("Skipped"), "skipped.html", skipped_pages),
)


def write_site(build_dir: Path, report: Report, settings: Settings) -> dict[str, dict[str, Any]]:
    """Every page, the static files, the pictures, the tables, and the Jekyll post, into build_dir.

    Returns, per page kind of the registry (and PHOTO_KIND for the image pages the sets render), how many pages
    were written and the first three: run.json keeps it, and the browser tests visit one page of each kind."""
    lang = Lang(settings.lang)
    writer = SiteWriter(build_dir, lang)
    writer.static()
    writer.text("static/colormaps.js", colormaps_js())
    link_pictures(writer, report.results)
    ctx = dict(common(report, lang), lang_obj=lang, maps=Maps(report), writer=writer)
    base = {k: v for k, v in ctx.items() if k not in ("maps", "writer")}
    deferred: list[tuple[str, PhotoPages]] = []
    written: dict[str, list[str]] = {kind.name: [] for kind in PAGES}
    for kind in PAGES:
        for rel, model in kind.pages(report, ctx):
            if isinstance(model, PhotoPages):
                deferred.append((rel, model))
                continue
            template = model.pop("template", kind.template)
            writer.page(rel, template, **base, **model)
            written[kind.name].append(rel)
    entries = render_photo_pages(build_dir, report, base, [pp for _, pp in deferred], settings.lang,
                                 settings.n_workers)
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
    cols = analysis.RESULT_COLUMNS + [c for c in results.columns
                                      if c not in analysis.RESULT_COLUMNS and c not in internal]
    csv = results[cols].copy()
    csv["file"] = csv["file"].map(safe_name)
    csv["set"] = csv["set"].map(safe_name)
    writer.text("results.csv", csv.to_csv(index=False, float_format="%.6g"))
    scores = report.scores.copy()
    if len(scores):
        scores["file"] = scores["file"].map(safe_name)
        scores["set"] = scores["set"].map(safe_name)
    writer.text("leaderboard.csv", scores.to_csv(index=False, float_format="%.6g"))
