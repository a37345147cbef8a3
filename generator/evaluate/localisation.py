"""Does a map point at the head? Scores of a map against a ground-truth region, with baselines beside them.

A map (2-D float array at any resolution) is scored as if upsampled to the photo's size exactly as the site draws it
(generator/explain/overlay.py, bilinear with half-pixel centres); the region is a mask at the photo's size and its boxes
(generator/data/annotations.py). Per photo:
- pointing game (Zhang et al. 2016, "Top-down neural attention by excitation backprop"): the map's peak pixel
  (the first maximum in raster order) lies inside the region. With a tolerance t, as TorchRay scores it: a hit
  when any region pixel lies at a distance < t pixels from the peak (t = 15). A constant map has no peak: a miss.
- energy-based pointing game (Wang et al. 2020, Score-CAM): the share of the map's positive mass that lies inside
  the region (NaN when no value is positive: there is no mass to share). The positive part is taken on the map's
  own grid, then upsampled (Grad-CAM takes its ReLU there too); for a map >= 0 that is the picture itself. Being
  linear, it is computed on the map's grid against the mask folded onto that grid (overlay.fold_mask, from where
  each row of the mask switches), not on a picture drawn at the photo's size.
- the CAM paper's measure (Zhou et al. 2016): IoU of the CAM box (overlay.cam_box on the network's square input,
  scaled to the photo) with the region's box (the best of its boxes when there are several), and localisation
  accuracy: IoU >= 0.5.
Baselines on the same photos, so that a score is never read alone:
- the photo's centre point (the pixel that holds (width / 2, height / 2)) in the pointing game;
- a centred Gaussian map (sigma = a quarter of each side, as the leaderboard's Gaussian baseline), scored like
  any map;
- the region's own area share: what a flat map scores in the energy game (and a random point in the pointing
  game, on average).
Over photos: the mean with a seeded 95% bootstrap interval (generator/evaluate/stats.py's bootstrap_mean), as frozen
dataclasses that pages can show directly.

Imports numpy (scipy through overlay.cam_box) and no torch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from generator.data.annotations import BoxXYXY, Region
from generator.evaluate.stats import bootstrap_mean
from generator.explain import overlay
from generator.explain.overlay import Box, cam_box, upsample, upsample_at, upsample_taps

TOLERANCE = 15  # pixels: TorchRay's pointing game default
IOU_HIT = 0.5  # the CAM paper's localisation threshold
GAUSSIAN_SIGMA = 0.25  # of each side, as faithfulness.gaussian_map
BOX_THRESHOLD = 0.2  # the CAM paper's box threshold (Settings.box_threshold's default)
GRID = 224  # the network input's side (Settings.input_size's default)


@dataclass(frozen=True)
class PhotoScore:
    """One map against one region of one photo."""

    peak: tuple[int, int] | None  # (x, y) pixel of the upsampled map's maximum; None for a constant map
    hit: bool  # pointing game: the peak pixel is inside the region
    hit_tolerant: bool  # pointing game with TOLERANCE pixels of slack
    energy: float  # share of the positive mass inside the region, 0..1 (NaN: no positive value)
    iou: float  # IoU of the CAM box with the region's (best) box, 0..1
    box: BoxXYXY  # the CAM box in pixels of the photo (x0, y0 inclusive; x1, y1 exclusive)

    @property
    def located(self) -> bool:
        return self.iou >= IOU_HIT


def peak(up: np.ndarray, native: np.ndarray | None = None) -> tuple[int, int] | None:
    """(x, y) of the first maximum in raster order, or None when every value is the same (no peak).

    `native`: the map `up` was upsampled from; a constant map is recognised on it, which is cheaper."""
    flat_map = native if native is not None else up
    if flat_map.max() == flat_map.min():
        return None
    y, x = divmod(int(np.argmax(up)), up.shape[1])
    return x, y


def pointing(point: tuple[int, int] | None, mask: np.ndarray, tolerance: int = 0) -> bool:
    """Whether the point hits the mask: the pixel itself (tolerance 0), else any mask pixel at a distance below
    `tolerance` pixels (TorchRay: (u - x)^2 + (v - y)^2 < tolerance^2)."""
    if point is None:
        return False
    x, y = point
    if tolerance <= 0:
        return bool(mask[y, x])
    h, w = mask.shape
    y0, y1, x0, x1 = max(0, y - tolerance), min(h, y + tolerance + 1), max(0, x - tolerance), min(w, x + tolerance + 1)
    vv, uu = np.ogrid[y0:y1, x0:x1]
    near = (uu - x) ** 2 + (vv - y) ** 2 < tolerance ** 2
    return bool((mask[y0:y1, x0:x1] & near).any())


def energy(up: np.ndarray, mask: np.ndarray, nonnegative: bool = False) -> float:
    """Share of the positive part of the (upsampled) map inside the mask; NaN when nothing is positive.

    mask: bool, or float 0/1 (a sum of products, faster when one mask serves many maps); `nonnegative`: the caller
    knows up >= 0 everywhere (bilinear values are weighted means, so a map >= 0 upsamples to values >= 0)."""
    pos = up if nonnegative else np.maximum(up, 0.0)
    total = pos.sum()
    if not total > 0:
        return float("nan")
    # einsum, not np.dot: BLAS would wake its threads for every map, which costs more than the sum on a busy CPU
    inside = np.einsum("ij,ij->", pos, mask) if mask.dtype != bool else pos[mask].sum()
    return float(inside / total)


def box_iou(a: BoxXYXY, b: BoxXYXY) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1), in continuous coordinates."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def cam_box_pixels(m: np.ndarray, width: int, height: int, threshold: float = BOX_THRESHOLD,
                   grid: int = GRID) -> BoxXYXY:
    """overlay.cam_box on the grid x grid network input (the whole photo resized), in pixels of the photo."""
    return _in_pixels(cam_box(m, threshold, grid), width, height)


def _in_pixels(b: Box, width: int, height: int) -> BoxXYXY:
    return b.x0 * width, b.y0 * height, b.x1 * width, b.y1 * height


def score_maps(maps: Sequence[np.ndarray], region: Region, threshold: float = BOX_THRESHOLD, grid: int = GRID,
               tolerance: int = TOLERANCE, cam_boxes: Sequence[Box | None] | None = None) -> list[PhotoScore]:
    """Every map of one photo against one region (the mask is decoded once).

    cam_boxes: overlay.cam_box(map, threshold, grid) of each map when the caller has them already (the explain
    stage computes them for the pages): the same boxes, not computed twice."""
    return score_maps_regions(maps, {"region": region}, threshold, grid, tolerance, cam_boxes)["region"]


def score_maps_regions(maps: Sequence[np.ndarray], regions: dict[str, Region], threshold: float = BOX_THRESHOLD,
                       grid: int = GRID, tolerance: int = TOLERANCE,
                       cam_boxes: Sequence[Box | None] | None = None,
                       masks: Mapping[str, np.ndarray] | None = None) -> dict[str, list[PhotoScore]]:
    """Every map of one photo against each of its regions, without drawing any map at the photo's size: the peak
    is found on a window of the picture (peak_at), the mass inside from the map's own grid and the region's mask
    folded onto that grid (fold), the CAM box on the network's grid. Measured on the 370 annotated photos, drawing
    every map at the photo's size was half the stage's time. cam_boxes: as in score_maps, None where a map's box
    is not known; masks: the regions' decoded masks when the caller has them (decoding costs time too)."""
    if cam_boxes is not None and len(cam_boxes) != len(maps):
        raise ValueError(f"{len(maps)} maps but {len(cam_boxes)} CAM boxes")
    out: dict[str, list[PhotoScore]] = {k: [] for k in regions}
    if not regions:
        return out
    first = next(iter(regions.values()))
    w, h = first.width, first.height
    if any((r.width, r.height) != (w, h) for r in regions.values()):
        raise ValueError("the regions of one photo must share its size")
    masks = dict(masks) if masks is not None else {k: r.mask for k, r in regions.items()}
    rects = {k: _rectangle(mk) for k, mk in masks.items()}  # a box folds from its sides, any other mask from
    runs = {k: overlay.mask_runs(mk) for k, mk in masks.items() if rects[k] is None}  # its runs
    folded: dict[tuple[int, int], tuple[dict[str, np.ndarray], np.ndarray]] = {}  # per map shape
    for i, m in enumerate(maps):
        m = np.asarray(m, dtype=np.float64)
        if not np.isfinite(m).all():
            raise ValueError("a map holds NaN or infinite values")
        p = peak_at(m, w, h)
        given = cam_boxes[i] if cam_boxes is not None else None
        box = _in_pixels(given if given is not None else cam_box(m, threshold, grid), w, h)
        if m.shape not in folded:
            folded[m.shape] = fold(masks, m.shape, w, h, runs, rects)
        inside, whole = folded[m.shape]
        pos = np.maximum(m, 0.0)
        total = float(np.einsum("ij,ij->", pos, whole))
        for k, region in regions.items():
            e = float(np.einsum("ij,ij->", pos, inside[k]) / total) if total > 0 else float("nan")
            out[k].append(PhotoScore(p, pointing(p, masks[k]), pointing(p, masks[k], tolerance), e,
                                     max(box_iou(box, r) for r in region.boxes), box))
    return out


def peak_at(m: np.ndarray, width: int, height: int) -> tuple[int, int] | None:
    """peak(upsample(m, width, height)), exactly (the same pixel, ties included), from a window of the picture.

    Each pixel of the picture is a weighted mean of the 4 map values around it, so it can reach a value only if
    one of those 4 does. The picture's pixels around the map's largest value give a value the peak reaches at
    least; only the map values that reach it (less a rounding slack) can lie under the peak, and the picture is
    drawn on their rows and columns only (upsample_at: bit for bit the same values)."""
    m = np.asarray(m, dtype=np.float64)
    if m.max() == m.min():
        return None
    y0, y1, _ = upsample_taps(m.shape[0], height)
    x0, x1, _ = upsample_taps(m.shape[1], width)

    def under(ii: np.ndarray, jj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, c = np.zeros(m.shape[0], dtype=bool), np.zeros(m.shape[1], dtype=bool)
        r[ii], c[jj] = True, True
        return np.flatnonzero(r[y0] | r[y1]), np.flatnonzero(c[x0] | c[x1])

    i, j = divmod(int(np.argmax(m)), m.shape[1])
    rows, cols = under(np.array([i]), np.array([j]))
    if rows.size == 0 or cols.size == 0:  # a shrinking picture can skip the map's largest value
        return peak(upsample(m, width, height), native=m)
    reached = upsample_at(m, width, height, rows, cols).max()
    slack = 1e-9 * float(np.abs(m).max())  # far above the few ulps a weighted mean can overshoot by
    ii, jj = np.nonzero(m >= reached - slack)
    rows, cols = under(ii, jj)
    window = upsample_at(m, width, height, rows, cols)
    r, c = divmod(int(np.argmax(window)), window.shape[1])  # sorted rows and columns: raster order is kept
    return int(cols[c]), int(rows[r])


def fold(masks: Mapping[str, np.ndarray], shape: tuple[int, int], width: int, height: int,
         runs: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
         rects: Mapping[str, tuple[tuple[int, int], tuple[int, int]] | None] | None = None,
         ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each mask folded onto a map grid of `shape` (overlay.fold_mask: the transpose of upsampling), so
    that the picture's mass inside the mask, sum(upsample(m) * mask), is sum(m * fold) for every map m of that
    shape; and the fold of the whole photo (the picture's total mass). float64 throughout. runs and rects: each
    mask's overlay.mask_runs and _rectangle, when the caller keeps them for all the grid sizes of a photo."""
    runs = runs or {}
    inside = {}
    for k, mk in masks.items():
        rect = rects[k] if rects is not None and k in rects else _rectangle(mk)
        if rect is None:
            inside[k] = overlay.fold_mask(mk, shape, runs.get(k))
        else:  # a box (a head, usually): its fold is the outer product of its two sides' folds
            (y0, y1), (x0, x1) = rect
            inside[k] = np.outer(_fold_interval(y0, y1, height, shape[0]), _fold_interval(x0, x1, width, shape[1]))
    return inside, np.outer(_fold_interval(0, height, height, shape[0]), _fold_interval(0, width, width, shape[1]))


def _fold_interval(a: int, b: int, n_out: int, n_in: int) -> np.ndarray:
    """The fold onto n_in cells of the pixels a..b-1 of n_out (1 there, 0 elsewhere): a difference of two rows of
    overlay.prefix_folds, kept per size pair (each photo's head box is a new interval)."""
    p = overlay.prefix_folds(n_out, n_in)
    return p[b] - p[a]


def _rectangle(mask: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The (rows, columns) half-open ranges of a mask that is exactly one filled rectangle, else None."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if int(np.count_nonzero(mask)) != (y1 - y0) * (x1 - x0):
        return None
    return (y0, y1), (x0, x1)


def score_map(m: np.ndarray, region: Region, threshold: float = BOX_THRESHOLD, grid: int = GRID,
              tolerance: int = TOLERANCE) -> PhotoScore:
    return score_maps([m], region, threshold, grid, tolerance)[0]


# ---- baselines ------------------------------------------------------------------------------------------------


@functools.cache
def gaussian_map(size: int, sigma: float = GAUSSIAN_SIGMA) -> np.ndarray:
    """A centred isotropic Gaussian on the size x size network input (sigma = sigma * size), peak 1: on the photo
    it has a sigma of a quarter of each side. Read-only (shared by every caller)."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (sigma * size) ** 2))
    g = g / g.max()
    g.flags.writeable = False
    return g


def centre_point(width: int, height: int) -> tuple[int, int]:
    """The pixel that holds the photo's centre (width / 2, height / 2)."""
    return width // 2, height // 2


@dataclass(frozen=True)
class PhotoBaselines:
    """The baselines on one photo and region."""

    centre_hit: bool
    centre_hit_tolerant: bool
    gaussian: PhotoScore
    area_share: float  # the region's share of the photo: a flat map's energy score


def baselines(region: Region, threshold: float = BOX_THRESHOLD, grid: int = GRID,
              tolerance: int = TOLERANCE, mask: np.ndarray | None = None) -> PhotoBaselines:
    """The baselines on one photo and region (mask: the region's decoded mask, when the caller has it).

    The Gaussian is scored like any map, but cheaply: its CAM box does not depend on the photo (computed once),
    and its mass inside comes from its two 1-D profiles, since a centred isotropic Gaussian is the outer product
    of its rows and columns (upsampling acts on each axis alone)."""
    mask = region.mask if mask is None else mask
    w, h = region.width, region.height
    c = centre_point(w, h)
    p = _gaussian_peak(grid, w, h)
    box = _in_pixels(_gaussian_box(threshold, grid), w, h)
    g1 = _gaussian_profile(grid)
    uy, ux = upsample(g1[:, None], 1, h)[:, 0], upsample(g1[None, :], w, 1)[0]  # each axis upsampled alone
    e = float(uy @ np.asarray(mask, dtype=np.float64) @ ux / (uy.sum() * ux.sum()))
    g = PhotoScore(p, pointing(p, mask), pointing(p, mask, tolerance), e,
                   max(box_iou(box, r) for r in region.boxes), box)
    return PhotoBaselines(pointing(c, mask), pointing(c, mask, tolerance), g, region.area_share)


@functools.cache
def _gaussian_profile(size: int, sigma: float = GAUSSIAN_SIGMA) -> np.ndarray:
    """The 1-D profile whose outer product with itself is gaussian_map(size), up to rounding."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r ** 2) / (2 * (sigma * size) ** 2))
    return g / g.max()


@functools.lru_cache(maxsize=1024)
def _gaussian_peak(grid: int, width: int, height: int) -> tuple[int, int] | None:
    """The Gaussian's peak on a photo of that size (photo sizes recur)."""
    return peak_at(gaussian_map(grid), width, height)


@functools.cache
def _gaussian_box(threshold: float, grid: int) -> Box:
    return cam_box(gaussian_map(grid), threshold, grid)


# ---- over photos ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A mean over photos with its 95% bootstrap interval; n = the photos with a finite value."""

    mean: float
    lo: float
    hi: float
    n: int


def interval(values: Iterable[float], seed: int) -> Interval:
    v = np.asarray(list(values), dtype=np.float64)
    mean, lo, hi = bootstrap_mean(v, seed)
    return Interval(mean, lo, hi, int(np.isfinite(v).sum()))


@dataclass(frozen=True)
class Localisation:
    """A map method's localisation scores over photos (all shares 0..1)."""

    n: int  # photos scored
    pointing: Interval
    pointing_tolerant: Interval
    energy: Interval
    iou: Interval
    accuracy: Interval  # share of photos with IoU >= IOU_HIT


def summarise(scores: Sequence[PhotoScore], seed: int) -> Localisation:
    return Localisation(
        len(scores),
        interval((s.hit for s in scores), seed),
        interval((s.hit_tolerant for s in scores), seed),
        interval((s.energy for s in scores), seed),
        interval((s.iou for s in scores), seed),
        interval((s.located for s in scores), seed),
    )


@dataclass(frozen=True)
class Baselines:
    """The baselines over the same photos."""

    n: int
    centre: Interval  # pointing game of the centre point
    centre_tolerant: Interval
    gaussian: Localisation
    area_share: Interval  # the flat map's energy score


def summarise_baselines(per_photo: Sequence[PhotoBaselines], seed: int) -> Baselines:
    return Baselines(
        len(per_photo),
        interval((b.centre_hit for b in per_photo), seed),
        interval((b.centre_hit_tolerant for b in per_photo), seed),
        summarise([b.gaussian for b in per_photo], seed),
        interval((b.area_share for b in per_photo), seed),
    )
