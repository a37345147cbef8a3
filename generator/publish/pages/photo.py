"""The image pages (one per photo, rendered in parallel by forked workers) and each set's photos.js."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from generator.evaluate import truth as truth_mod
from generator.explain.overlay import payload_json
from generator.explain.record import PhotoRecord
from generator.i18n import Lang
from generator.publish.pages.kinds import method_info
from generator.publish.pages.maps import Maps
from generator.publish.pages.pagedata import Entry, PageDataCache, PhotoData, decode_record, read_record
from generator.publish.render import SiteWriter
from generator.report import analysis
from generator.report.summary import Report, SetSummary


def gallery_entry(p: dict, record: PhotoRecord | PhotoData | None, maps: Maps, truth: dict | None = None) -> dict:
    """One photo in sets/<set>/photos.js: what the gallery filters on, and the last-tap CAM of its predicted
    class for the thumbnail's overlay. truth (annotated photos): "loc" = [peak off the head, peak off the pet,
    share of the map on the head, on the pet] of the last-tap CAM of the labelled class (None where not scored)."""
    entry = {"name": p["name"], "slug": p["slug"], "page": p["page"], "thumb": p["thumb"], "label": p["label"] or "",
             "pred": p["prediction"], "conf": p["confidence"], "tag": p["tag"], "size": p["thumb_size"]}
    if isinstance(record, PhotoData):
        entry["map"] = record.gallery_map
    elif record is not None:
        entry["map"] = gallery_map(record, maps)
    if truth and p["label"]:
        s = truth["maps"].get(f"cam/{maps.n_taps - 1}/{p['label']}", {})
        head, pet = s.get("head"), s.get("pet")
        entry["loc"] = [None if head is None else 1 - head[0], None if pet is None else 1 - pet[0],
                        None if head is None else head[2], None if pet is None else pet[2]]
    return entry


def gallery_map(record: PhotoRecord, maps: Maps) -> dict:
    """The last stage's CAM of the predicted class, or the gradient map where the model has no CAM."""
    return maps.payload(record, [record.lead_method(-1)], [maps.n_taps - 1], classes="pred")


def gallery_script(entries: list[dict]) -> str:
    """The gallery's data as a script file (it loads from file:// too, unlike fetched JSON); <, >, & escaped."""
    return f"window.CAM_PHOTOS = {payload_json(entries)};\n"


@dataclass
class PhotoPages:
    """The image pages of one set, rendered by `render_photo_pages` (in parallel), and then its photos.js."""

    summary: SetSummary
    photos: list[dict]
    page_of: dict[str, str]  # photo slug -> the gallery page that shows it
    scales: list[float]  # per tap, the set's scale of the signed evidence maps


def photo_page(report: Report, maps: Maps, pp: PhotoPages, i: int, record: PhotoRecord | PhotoData,
               truth: dict | None = None) -> dict[str, Any]:
    """The model of the image page of photo i of a set; truth: the photo's entry of truth.photo_index, if annotated.
    record: the photo's record, or what the page takes from it (photo_data, cached by the build)."""
    ph, photos = pp.photos[i], pp.photos
    if not isinstance(record, PhotoData):
        record = photo_data(report, maps, record, pp.scales, ph["label"] or "")
    return {"truth": truth, "truth_data": truth_data(truth, ph, maps.n_taps, report.run.last_method) if truth else None,
            "truth_rows": truth_rows(truth, ph, maps.n_taps) if truth else [],
            "set": pp.summary, "photo": ph, "index": i + 1, "count": len(photos),
            "prev": photos[i - 1] if i > 0 else None, "next": photos[i + 1] if i + 1 < len(photos) else None,
            "gallery_page": pp.page_of[ph["slug"]], "data": record.data, "order": list(record.order),
            "facts": record.facts, "methods": method_info(report, main_methods(report, maps)),
            "signed_scale": pp.scales[-1], "signed_percentile": analysis.SIGNED_PERCENTILE / 100,
            "other": report.compare.photo(pp.summary.key, ph["file"]) if report.compare is not None else None}


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
    cache: PageDataCache = field(default_factory=lambda: PageDataCache(None))
    site_writer: SiteWriter | None = None  # the writer of the other pages: its templates are compiled already

    @functools.cached_property
    def truth(self) -> dict[tuple[str, str], dict]:  # (set, file) -> what its page shows of the ground truth
        return truth_mod.photo_index(self.report.truth)

    @functools.cached_property
    def writer(self) -> SiteWriter:  # one Jinja2 environment per worker process (a copy of site_writer's)
        return self.site_writer or SiteWriter(self.build_dir, Lang(self.lang))


def photo_data(report: Report, maps: Maps, record: PhotoRecord, scales: list[float], label: str = "") -> PhotoData:
    """What the image page and the gallery entry take from the record (cached by the build: pagedata.py)."""
    return PhotoData(gallery_map(record, maps), photo_page_data(report, maps, record, scales, label),
                     photo_facts(report, record), tuple(report.classes[k] for k in maps.shown(record, label)))


def _photo_data(job: PhotoJob, sha: str, scales: list[float], label: str, made: dict[str, Entry]) -> PhotoData | None:
    """The photo's PhotoData from the job's cache while its record file is the same, else from the record (and
    then added to `made`); None when the photo has no readable record."""
    report = job.report
    read = read_record(report.settings.cache_dir, report.run.model_fingerprint, sha)
    if read is None:
        return None
    digest, raw = read
    key = tuple(float(s) for s in scales)
    hit = job.cache.lookup(sha, digest, key, label)
    if hit is not None:
        return hit
    record = decode_record(raw, job.maps.n_taps)
    if record is None:
        return None
    value = photo_data(report, job.maps, record, scales, label)
    made[sha] = Entry(digest, key, label, value)
    return value


def _render_slice(job: PhotoJob, task: tuple[int, int, int]) -> tuple[list[dict], dict[str, Entry]]:
    which, start, stop = task
    report, maps, pp = job.report, job.maps, job.sets[which]
    entries, made = [], {}
    for i in range(start, stop):
        data = _photo_data(job, pp.photos[i]["sha256"], pp.scales, pp.photos[i]["label"] or "", made)
        truth = job.truth.get((pp.summary.key, pp.photos[i]["file"]))
        entries.append(gallery_entry(pp.photos[i], data, maps, truth))
        if data is not None:
            job.writer.page(pp.photos[i]["page"], "photo.html", **job.base,
                            **photo_page(report, maps, pp, i, data, truth))
    return entries, made


def render_photo_pages(build_dir: Path, report: Report, base: dict, sets: list[PhotoPages], lang: str,
                       processes: int, per_task: int = 64, cache: PageDataCache | None = None,
                       writer: SiteWriter | None = None) -> list[list[dict]]:
    """Every image page of these sets; returns each set's gallery entries (for its photos.js), in order.
    cache: the photos' page data of earlier builds (pagedata.py); what is made anew is added to it and saved.
    writer: the writer of the site's other pages, if any (its compiled templates are inherited by the workers)."""
    with photo_pages_started(build_dir, report, base, sets, lang, processes, per_task, cache, writer) as wait:
        return wait()


@contextmanager
def photo_pages_started(build_dir: Path, report: Report, base: dict, sets: list[PhotoPages], lang: str,
                        processes: int, per_task: int = 64, cache: PageDataCache | None = None,
                        writer: SiteWriter | None = None) -> Iterator[Callable[[], list[list[dict]]]]:
    """render_photo_pages, its workers started on entry so that the caller renders other pages meanwhile; the
    function it yields waits for them and returns each set's gallery entries."""
    from generator.data.workers import forked_map_started

    cache = cache if cache is not None else PageDataCache(None)
    job = PhotoJob(build_dir=build_dir, report=report, maps=Maps(report), base=base, sets=sets, lang=lang,
                   cache=cache, site_writer=writer)
    job.writer.env.get_template("photo.html")  # compiled once here: the forked workers inherit it
    job.truth  # noqa: B018 (indexed once here too, not once per worker)
    tasks = [(k, start, min(start + per_task, len(pp.photos)))
             for k, pp in enumerate(sets) for start in range(0, len(pp.photos), per_task)]
    with forked_map_started(_render_slice, job, tasks, processes) as results:

        def wait() -> list[list[dict]]:
            out: list[list[dict]] = [[] for _ in sets]
            for (k, _, _), (entries, made) in zip(tasks, results()):
                out[k] += entries
                cache.update(made)
            cache.save()
            return out

        yield wait


def main_methods(report: Report, maps: Maps) -> list[str]:
    """The methods the main view offers (it draws the last stage): the chosen ones, less CAM where the model has
    none there (a user's model without a linear head), so that the first one, drawn by default, is never CAM."""
    return [n for n in maps.chosen if n != "cam" or not report.run.no_cam_reason]


def photo_page_data(report: Report, maps: Maps, record: PhotoRecord, scales: list[float], label: str = "") -> str:
    """The image page's maps and what the browser needs to draw them, as JSON for a script element: the maps of
    the classes Maps.shown picks (all of them for up to three classes)."""
    s = report.settings
    shown = maps.shown(record, label)
    payload = maps.payload(record, maps.chosen, range(maps.n_taps),
                           "all" if len(shown) == len(report.classes) else shown)
    # Only what maps.js and app.js read of each method: the page pays these bytes 1,384 times over.
    methods = [{k: m[k] for k in ("name", "title", "per_class", "last_tap_only", "no_last") if k != "no_last" or m[k]}
               for m in method_info(report, maps.chosen)]  # no_last only where it is true (CAM of a no-CAM model)
    data = {"payload": payload, "methods": methods, "classes": list(report.classes),
            "pred": record.pred, "taps": list(report.run.tap_modules), "grid": s.input_size,
            "threshold": s.box_threshold, "cmap": s.colormap, "signedScale": scales}
    if len(report.classes) > 2:  # the signed map's other class: the runner-up (with two, the other one)
        data["other"] = record.runner_up
    return payload_json(data)


def truth_data(truth: dict, ph: dict, n_taps: int, last_method: str = "cam") -> str:
    """What static/truth.js draws, as JSON for a script element: the regions' boxes and the pet's outline
    (fractions of the photo), and the peak (pixels of the photo) of the labelled class's CAM at the last stage;
    where the model has no CAM there, the peak of the map drawn in its place (last_method, the predicted class's)."""
    if last_method == "cam":
        s = truth["maps"].get(f"cam/{n_taps - 1}/{ph['label']}", {})
    else:
        s = truth["maps"].get(f"{last_method}/{n_taps - 1}/{ph['prediction']}", {})
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
    """Numbers an image page states: the signed map's identity (mean + bias difference = logit margin); None where
    the last stage has no CAM (no signed map there)."""
    pred = record.pred
    other = record.runner_up
    if not record.has_cam(-1):
        return {"other": report.classes[other], "signed_mean": None, "bias_diff": None,
                "margin": float(record.logits[pred] - record.logits[other])}
    cam = record.cam(-1).astype(np.float64)
    bias = report.run.head_bias
    signed_mean = float((cam[pred] - cam[other]).mean())
    margin = float(record.logits[pred] - record.logits[other])
    return {"other": report.classes[other], "signed_mean": signed_mean, "bias_diff": float(bias[pred] - bias[other]),
            "margin": margin}
