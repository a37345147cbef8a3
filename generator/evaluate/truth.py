"""Ground truth through the pipeline: every map of every annotated photo scored against its head and pet regions.

No network pass: the maps come from the photos' records (explain/record.py) in the cache. Per annotated photo of
an eval set, for every map method at every tap in its record: the map of the labelled class, and on a mistake
also the map of the predicted class (methods that make one map per photo, not one per class, map the predicted
class: on a mistake that map is the predicted class's only). Each map against each region (head, pet) with
localisation.score_maps; the baselines (centre point, centred Gaussian, area share) once per photo and region.

Output: two tables (one row per photo x map x region; one row per photo x region for the baselines) carried in the
bundle, and `summarise_truth` for the Report: method x tap x region means with 95% intervals, baselines beside.
Imports numpy and pandas, no torch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from generator.data.annotations import HEAD, PET, Annotations, PhotoTruth, load_annotations
from generator.evaluate import localisation as L
from generator.explain.overlay import Box
from generator.explain.record import PhotoRecord
from generator.i18n import N_

REGIONS = (HEAD, PET)
REGION_TITLES = {HEAD: N_("head"), PET: N_("pet")}  # as the pages name the regions (translated there)
SCORE_COLUMNS = ("hit", "hit_tolerant", "energy", "iou", "located")
OF_LABEL, OF_PREDICTION = "label", "prediction"


@dataclass(frozen=True)
class SetTruth:
    """What the ground truth of one set gave: the file read, the photos matched, and what was not used."""

    set: str
    source: str
    photos: int  # annotated photos of the set that were scored
    left_out: tuple[str, ...]  # one sentence per bad entry
    not_in_set: int  # annotated photos that are not in this set (not errors: a small build links only a few)


@dataclass(frozen=True)
class Truth:
    """The bundle's part: per-photo scores, per-photo baselines, and what each annotated set gave."""

    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    baselines: pd.DataFrame = field(default_factory=pd.DataFrame)
    sets: tuple[SetTruth, ...] = ()


def read_truth(sources: Mapping[str, Path], results: pd.DataFrame) -> dict[str, Annotations]:
    """Set -> its annotations, matched to the set's photos that were explained, at their decoded upright sizes
    (results.csv width and height: the size the records' maps are drawn on)."""
    out = {}
    for set_key, path in sources.items():
        rows = results[(results["set"] == set_key) & (results["status"] == "ok")]
        rows = rows[rows["width"].notna()]
        sizes = {f: (int(w), int(h)) for f, w, h in zip(rows["file"], rows["width"], rows["height"])}
        out[set_key] = load_annotations(path, list(sizes), kinds=REGIONS, sizes=sizes)
    return out


def _page_box(r: Mapping) -> Box | None:
    """The CAM box the explain stage computed (CAM of the predicted class, last tap), as overlay.Box, if any."""
    try:
        v = [float(r[f"box_{k}"]) for k in ("x0", "y0", "x1", "y1", "area", "mass")]
    except (KeyError, TypeError, ValueError):
        return None
    return Box(*v) if np.isfinite(v).all() else None


def score_photo(record: PhotoRecord, truth: PhotoTruth, label: int, page_box: Box | None = None,
                threshold: float = L.BOX_THRESHOLD, grid: int = L.GRID, *, classes: tuple[str, ...],
                masks: Mapping[str, np.ndarray] | None = None) -> list[dict]:
    """One row per (method, tap, class map, region) of this photo. page_box: the explain stage's CAM box of the
    predicted class at the last tap (passed in, not computed twice); classes: the names of the head's outputs;
    masks: the regions' decoded masks, when the caller has them."""
    pred = record.pred
    n_taps = len(record.probe_logits)
    maps, keys, boxes = [], [], []
    for method, per_tap in record.maps.items():
        for t, m in enumerate(per_tap):
            if m is None:
                continue
            if m.ndim == 3:
                wanted = [(label, OF_LABEL)] + ([(pred, OF_PREDICTION)] if pred != label else [])
                for c, of in wanted:
                    maps.append(m[c])
                    keys.append((method, t, c, of))
                    given = method == "cam" and t == n_taps - 1 and c == pred and page_box is not None
                    boxes.append(page_box if given else None)
            else:  # one map per photo: the predicted class's
                maps.append(m)
                keys.append((method, t, pred, OF_LABEL if pred == label else OF_PREDICTION))
                boxes.append(None)
    rows = []
    if not maps:
        return rows
    by_region = L.score_maps_regions(maps, dict(truth.regions), threshold, grid, cam_boxes=boxes, masks=masks)
    for kind, scored in by_region.items():
        for (method, t, c, of), s in zip(keys, scored):
            px, py = s.peak if s.peak is not None else (None, None)
            rows.append({"method": method, "tap": t, "cls": classes[c], "of": of, "region": kind,
                         "hit": s.hit, "hit_tolerant": s.hit_tolerant, "energy": s.energy, "iou": s.iou,
                         "located": s.located, "peak_x": px, "peak_y": py})
    return rows


def score_truth(results: pd.DataFrame, annotations: Mapping[str, Annotations],
                record_of: Callable[[str], PhotoRecord | None], threshold: float = L.BOX_THRESHOLD,
                grid: int = L.GRID, *, classes: tuple[str, ...], processes: int = 1) -> Truth:
    """Every annotated, explained photo of every annotated set, from its cached record. processes: photos are
    scored by that many forked workers (data/workers.forked_map), each with its own share of the photos; the
    rows come back in the photos' order, so the tables do not depend on it."""
    from generator.data.workers import forked_map

    if any(PET in ann.kinds for ann in annotations.values()):
        import cv2  # noqa: F401  the outlines' library: imported once, before the workers fork

    jobs = []
    for set_key, ann in annotations.items():
        rows = results[(results["set"] == set_key) & (results["status"] == "ok")]
        by_file = {r["file"]: r for r in rows.to_dict("records")}
        jobs += [(set_key, file, truth, by_file[file]) for file, truth in ann.photos.items()
                 if file in by_file and by_file[file].get("label") in classes]
    context = (record_of, threshold, grid, classes)
    done = forked_map(_score_job, context, jobs, processes, chunksize=max(1, len(jobs) // (8 * max(processes, 1))))
    scores = [row for got in done if got is not None for row in got[0]]
    base = [row for got in done if got is not None for row in got[1]]
    scored = Counter(job[0] for job, got in zip(jobs, done) if got is not None)  # photos with a record, per set
    sets = tuple(SetTruth(k, str(ann.source), scored[k], ann.left_out, len(ann.not_in_set))
                 for k, ann in annotations.items())
    return Truth(pd.DataFrame(scores), pd.DataFrame(base), sets)


def _score_job(context, job) -> tuple[list[dict], list[dict]] | None:
    """One annotated photo: its map rows and its baseline rows; None when its record is not in the cache."""
    record_of, threshold, grid, classes = context
    set_key, file, truth, r = job
    record = record_of(r.get("sha256") or "")
    if record is None:
        return None
    ident = {"set": set_key, "file": file, "label": r["label"], "prediction": classes[record.pred]}
    masks = {kind: region.mask for kind, region in truth.regions.items()}  # decoded once per photo
    scores = [ident | row for row in score_photo(record, truth, classes.index(r["label"]), _page_box(r), threshold,
                                                 grid, classes=classes, masks=masks)]
    base = []
    for kind, region in truth.regions.items():
        b = L.baselines(region, threshold, grid, mask=masks[kind])
        base.append(ident | {"region": kind, "area_share": b.area_share, "centre_hit": b.centre_hit,
                             "centre_hit_tolerant": b.centre_hit_tolerant, "gaussian_hit": b.gaussian.hit,
                             "gaussian_hit_tolerant": b.gaussian.hit_tolerant,
                             "gaussian_energy": b.gaussian.energy, "gaussian_iou": b.gaussian.iou,
                             "gaussian_located": b.gaussian.located,
                             "box_x0": region.box[0] / region.width, "box_y0": region.box[1] / region.height,
                             "box_x1": region.box[2] / region.width, "box_y1": region.box[3] / region.height,
                             "cut": _cut(region),
                             "outline": outline(masks[kind]) if kind == PET else None})
    return scores, base


OUTLINE_SIDE = 80  # pixels a side of the mask the outline is traced on
MAX_POINTS = 32  # the pet's outline on a photo page: at most this many points (about 450 bytes; 64 took the
# ground-truth block of a page to a median 2,166 bytes, over its 2 KB budget)


def outline(mask: np.ndarray, max_points: int = MAX_POINTS) -> list[list[float]]:
    """The outer outline of the mask's largest part as a closed polygon of at most max_points (x, y) points, in
    fractions of the photo (3 decimals), simplified with Douglas-Peucker at a tolerance doubled until it fits.

    OpenCV traces and simplifies (findContours, approxPolyDP): measured on the 370 annotated pet outlines, 0.1 ms
    a photo against 3.6 ms for scikit-image's find_contours and approximate_polygon, a fifth of the localisation
    stage; the two polygons differ by the simplification's own tolerance (a median 2% of the photo)."""
    import cv2

    # The outline is drawn, not scored: traced on the mask subsampled to at most OUTLINE_SIDE pixels a side, a
    # step of 1/OUTLINE_SIDE of the photo, finer than its 3 decimals show (measured on the 370 annotated photos:
    # tracing at full size took 40% of the whole localisation stage).
    step = max(1, -(-max(mask.shape) // OUTLINE_SIDE))
    small = np.ascontiguousarray(mask[::step, ::step], dtype=np.uint8)
    contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)  # outer edges only
    if not contours:
        return []
    c = max(contours, key=cv2.contourArea)  # the first of equal areas
    tol = 1.0  # the subsampled grid's spacing: a smaller tolerance simplifies nothing
    poly = cv2.approxPolyDP(c, tol, True)
    while len(poly) > max_points:
        tol *= 2
        poly = cv2.approxPolyDP(c, tol, True)
    h, w = mask.shape
    # points are the centres of the subsampled grid's edge pixels: (index * step + 1/2) photo pixels
    return [[round(min((float(x) * step + 0.5) / w, 1.0), 3), round(min((float(y) * step + 0.5) / h, 1.0), 3)]
            for x, y in poly[:, 0]]


def _cut(region) -> bool:
    """Whether the region's box touches the photo's frame: a head cut by the edge of the picture."""
    x0, y0, x1, y1 = region.box
    return bool(x0 <= 0.5 or y0 <= 0.5 or x1 >= region.width - 0.5 or y1 >= region.height - 0.5)


# ---- over photos: what the Report shows ------------------------------------------------------------------------


def summarise_truth(truth: Truth, seed: int) -> pd.DataFrame:
    """One row per (method, tap, region), maps of the labelled class: n, each score's mean with its 95% bootstrap
    interval (columns <score>, <score>_lo, <score>_hi), and the baselines on the same photos (centre, centre_lo,
    centre_hi for the centre point's pointing game; gaussian (pointing), area_share (a flat map's energy))."""
    s = truth.scores
    if s.empty:
        return pd.DataFrame()
    s = s[s["of"] == OF_LABEL]
    base = truth.baselines.set_index(["set", "file", "region"])
    out = []
    for (method, tap, region), g in s.groupby(["method", "tap", "region"], sort=False):
        row = {"method": method, "tap": int(tap), "region": region, "n": len(g)}
        for col in SCORE_COLUMNS:
            iv = L.interval(g[col].astype(float), seed)
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = iv.mean, iv.lo, iv.hi
        b = base.loc[list(zip(g["set"], g["file"], g["region"]))]
        for name, col in (("centre", "centre_hit"), ("centre_tolerant", "centre_hit_tolerant"),
                          ("gaussian", "gaussian_hit"), ("gaussian_energy", "gaussian_energy"),
                          ("gaussian_iou", "gaussian_iou"), ("area_share", "area_share")):
            iv = L.interval(b[col].astype(float), seed)
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = iv.mean, iv.lo, iv.hi
        out.append(row)
    return pd.DataFrame(out)


@dataclass(frozen=True)
class ErrTest:
    """Are the heads of mistakes smaller (or cut by the frame more often) than those of right answers?"""

    n_right: int
    n_wrong: int
    share_right: L.Interval | None  # head area share, right answers
    share_wrong: L.Interval | None
    difference: tuple[float, float, float] | None  # wrong - right: mean, 95% bootstrap interval
    p_value: float | None  # Mann-Whitney U, two-sided
    cut_right: float | None  # share of heads touching the frame
    cut_wrong: float | None
    enough: bool  # whether there are enough mistakes to tell (MIN_MISTAKES)


MIN_MISTAKES = 10


def head_test(truth: Truth, seed: int) -> ErrTest | None:
    """Mistakes against head size: the head's area share of mistakes vs right answers, with a bootstrap interval of
    the difference in means and a Mann-Whitney rank test; None without head boxes."""
    b = truth.baselines
    if b.empty:
        return None
    b = b[b["region"] == HEAD]
    if b.empty:
        return None
    right = b[b["label"] == b["prediction"]]
    wrong = b[b["label"] != b["prediction"]]
    nr, nw = len(right), len(wrong)
    share_r = L.interval(right["area_share"], seed) if nr else None
    share_w = L.interval(wrong["area_share"], seed) if nw else None
    diff = p = None
    if nr and nw:
        rng = np.random.default_rng(seed)
        a, c = wrong["area_share"].to_numpy(float), right["area_share"].to_numpy(float)
        d = (rng.choice(a, (2000, a.size)).mean(1) - rng.choice(c, (2000, c.size)).mean(1))
        lo, hi = np.percentile(d, [2.5, 97.5])
        diff = (float(a.mean() - c.mean()), float(lo), float(hi))
        from scipy.stats import mannwhitneyu

        p = float(mannwhitneyu(a, c, alternative="two-sided").pvalue)
    return ErrTest(nr, nw, share_r, share_w, diff, p,
                   float(right["cut"].mean()) if nr else None, float(wrong["cut"].mean()) if nw else None,
                   nw >= MIN_MISTAKES)


def photo_index(truth: Truth) -> dict[tuple[str, str], dict]:
    """(set, file) -> what the photo's page shows of its ground truth, for every annotated photo: the head box
    (fractions of the photo), the pet's outline, and per (method, tap, class) map and region the peak (pixels of
    the photo) and scores. One pass over each table: filtering them photo by photo took about 2 ms a photo (0.70
    to 0.83 s for the 370 annotated photos, in each page worker), this 0.06 to 0.09 s (measured)."""
    out: dict[tuple[str, str], dict] = {}
    if truth.baselines.empty:
        return out
    for r in truth.baselines.to_dict("records"):
        entry = out.setdefault((r["set"], r["file"]), {"boxes": {}, "outline": None, "maps": {}})
        entry["boxes"][r["region"]] = [round(r[f"box_{k}"], 4) for k in ("x0", "y0", "x1", "y1")]
        if r["region"] == PET and isinstance(r.get("outline"), list) and r["outline"]:
            entry["outline"] = r["outline"]
    for r in truth.scores.to_dict("records") if not truth.scores.empty else ():
        entry = out.get((r["set"], r["file"]))
        if entry is None:  # scores of a photo without a baseline row: no ground truth to show
            continue
        m = entry["maps"].setdefault(f"{r['method']}/{r['tap']}/{r['cls']}",
                                     {"peak": None if r["peak_x"] is None or pd.isna(r["peak_x"])
                                      else [int(r["peak_x"]), int(r["peak_y"])]})
        m[r["region"]] = [int(bool(r["hit"])), int(bool(r["hit_tolerant"])),
                          None if pd.isna(r["energy"]) else round(float(r["energy"]), 3), round(float(r["iou"]), 3)]
    return out
