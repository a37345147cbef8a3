"""How a map is shipped and drawn: the one specification, and its Python reference implementation.

The site ships each photo's maps as quantised numbers; the browser (templates/static/maps.js) upsamples and
colours them on a canvas. This module draws the same pictures for the blog figures and for the tests, which
check that both sides give the same pixels and the same CAM box (tests/test_maps_js.py). Every step is written
in float64 (JS numbers are doubles) in the operation order given below, and maps.js follows that order term by
term, so the two agree bit for bit; keep them in step when either changes.

A map is a small 2-D float array m of shape (h, w), row-major, e.g. 7x7 to 56x56.

1. Payload (`encode_maps`, `decode_maps`): a JSON-serialisable dict
   {"v": 1, "enc": "u8" | "u8z", "maps": [entry, ...], "data": base64 text}.
   An entry {"key", "h", "w", "lo", "hi"} owns h*w bytes of `data` (entries in order, rows in order):
   q = round((m - lo) / (hi - lo) * 255) as uint8, lo = min(m), hi = max(m) (all q = 0 when hi == lo);
   lo and hi are JSON numbers that round-trip exactly. Decoded value: lo + q / 255 * (hi - lo).
   An entry {"key", "neg": i} owns no bytes: its values are the negated values of the earlier entry i (the
   other class of a two-class head, whose map is exactly minus the first).
   "u8z": the concatenated bytes are zlib-compressed (RFC 1950, level 6) before base64; chosen only when
   smaller. Inside HTML the JSON goes in <script type="application/json"> with <, >, & escaped (`payload_json`).
2. Normalise (`normalize`), on the native map: "minmax": v = (m - lo) / (hi - lo) with lo, hi the map's min and
   max (a constant map gives v = 0); "signed": v = 0.5 + m / (2 * scale), clipped to [0, 1], with scale > 0
   given by the caller (one scale for a whole set of maps, so that their colours compare).
3. Upsample (`upsample`) v to (W_out, H_out): bilinear, half-pixel centres, edges clamped; for output column x,
   sx = (x + 0.5) * w / W_out - 0.5 clamped to [0, w - 1], x0 = floor(sx), x1 = min(x0 + 1, w - 1),
   fx = sx - x0 (rows alike: sy, y0, y1, fy). First along rows, then along columns:
   r(y, x) = v[y, x0] * (1 - fx) + v[y, x1] * fx;  out(y, x) = r(y0, x) * (1 - fy) + r(y1, x) * fy.
   This is torch.nn.functional.interpolate(mode="bilinear", align_corners=False) up to rounding.
4. Colour (`lut`, `lut_index`, `heat_rgb`): 256-entry RGB tables from matplotlib ("jet", "viridis", "RdBu_r");
   index = min(255, floor(v * 256)) after clipping v to [0, 1] (NaN -> 0): matplotlib's rule for N = 256.
   The browser gets the same tables from `colormaps_js()` and paints them opaque (alpha 255); the page fades the
   canvas over the photo with CSS opacity, so the canvas holds exactly `heat_rgb`.
5. CAM box (`cam_box`, Zhou et al. 2016): upsample the raw map (step 3, no normalising)
   to grid x grid, subtract its min, keep pixels >= threshold * max (a flat map: the whole image), label
   4-connected regions, take the largest (ties: the region whose first pixel comes first in raster order) and
   return its bounding box in fractions of the image, its area share and the share of the map's total inside it.

Imports numpy and scipy only (matplotlib lazily, for the tables): builds that never touch torch use it.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 1
COLORMAPS = ("jet", "viridis", "RdBu_r")  # jet as in the CAM paper's figures; viridis; RdBu_r for signed maps
MODES = ("minmax", "signed")


@dataclass(frozen=True)
class Box:
    """The CAM box in fractions of the image (x0, y0 inclusive; x1, y1 exclusive), and what it holds."""

    x0: float
    y0: float
    x1: float
    y1: float
    area: float  # share of the image the box covers, 0..1
    mass: float  # share of the min-subtracted upsampled map's total inside the box, 0..1


def _as_map(m: np.ndarray) -> np.ndarray:
    a = np.asarray(m, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"a map is a non-empty 2-D array (h, w), got shape {a.shape}")
    return a


# ---- 1. payload -------------------------------------------------------------------------------------------------


def encode_maps(entries: Iterable[tuple[str, np.ndarray | int]], find_neg: bool = True) -> dict:
    """[(key, map (h, w) | i), ...] -> payload dict (spec step 1).

    An int i in place of a map marks the exact negation of entry i. With `find_neg`, a map that is exactly minus
    an earlier one is stored that way too (a two-class head's second map costs no bytes).
    """
    metas: list[dict] = []
    owned: list[np.ndarray | None] = []  # the exact input of each entry that owns bytes, for find_neg
    chunks: list[bytes] = []
    for key, value in entries:
        if not isinstance(key, str):
            raise TypeError(f"map keys are strings, got {type(key).__name__}")
        if isinstance(value, int | np.integer):
            i = int(value)
            if not 0 <= i < len(metas) or "neg" in metas[i]:
                raise ValueError(f"entry {key!r}: 'neg' must name an earlier entry that holds data, got {i}")
            metas.append({"key": key, "neg": i})
            owned.append(None)
            continue
        m = _as_map(value)
        if not np.isfinite(m).all():
            raise ValueError(f"map {key!r} holds NaN or infinite values")
        if find_neg:
            twin = next((j for j, a in enumerate(owned) if a is not None and a.shape == m.shape
                         and np.array_equal(a, -m)), None)
            if twin is not None:
                metas.append({"key": key, "neg": twin})
                owned.append(None)
                continue
        lo, hi = float(m.min()), float(m.max())
        if hi == lo:
            q = np.zeros(m.shape, dtype=np.uint8)
        else:
            q = np.clip(np.rint((m - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
        chunks.append(q.tobytes())
        # Python floats print as the shortest text that reads back to the same float64: lo, hi round-trip.
        metas.append({"key": key, "h": int(m.shape[0]), "w": int(m.shape[1]), "lo": lo, "hi": hi})
        owned.append(m)
    raw = b"".join(chunks)
    packed = zlib.compress(raw, 6)  # level 9 is 3x slower for under 1% fewer bytes on these maps
    enc, data = ("u8z", packed) if len(packed) < len(raw) else ("u8", raw)
    return {"v": FORMAT_VERSION, "enc": enc, "maps": metas, "data": base64.b64encode(data).decode("ascii")}


def decode_maps(payload: dict) -> list[tuple[str, np.ndarray]]:
    """Payload dict -> [(key, map (h, w) float64), ...] in entry order (spec step 1)."""
    if payload.get("v") != FORMAT_VERSION:
        raise ValueError(f"map payload version {payload.get('v')!r} is not {FORMAT_VERSION}")
    raw = base64.b64decode(payload["data"], validate=True)
    if payload.get("enc") == "u8z":
        raw = zlib.decompress(raw)
    elif payload.get("enc") != "u8":
        raise ValueError(f"map payload encoding {payload.get('enc')!r} is neither 'u8' nor 'u8z'")
    out: list[tuple[str, np.ndarray]] = []
    offset = 0
    for i, meta in enumerate(payload["maps"]):
        if "neg" in meta:
            j = meta["neg"]
            if not isinstance(j, int) or not 0 <= j < i:
                raise ValueError(f"entry {meta['key']!r}: 'neg' must name an earlier entry, got {j!r}")
            out.append((meta["key"], -out[j][1]))
            continue
        h, w, lo, hi = int(meta["h"]), int(meta["w"]), float(meta["lo"]), float(meta["hi"])
        if offset + h * w > len(raw):
            raise ValueError(f"map payload too short for entry {meta['key']!r}")
        q = np.frombuffer(raw, dtype=np.uint8, count=h * w, offset=offset).reshape(h, w).astype(np.float64)
        offset += h * w
        out.append((meta["key"], lo + q / 255 * (hi - lo)))  # this order, as maps.js
    if offset != len(raw):
        raise ValueError(f"map payload has {len(raw) - offset} bytes no entry owns")
    return out


def payload_json(payload: dict) -> str:
    """The payload as compact JSON that is safe inside <script type="application/json"> (<, >, & escaped)."""
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


# ---- 2. normalise, 3. upsample ----------------------------------------------------------------------------------


def normalize(m: np.ndarray, mode: str = "minmax", scale: float | None = None) -> np.ndarray:
    """Map (h, w) -> values (h, w) float64 in [0, 1] (spec step 2)."""
    m = _as_map(m)
    if mode == "minmax":
        lo, hi = m.min(), m.max()
        if hi == lo:
            return np.zeros_like(m)
        return (m - lo) / (hi - lo)
    if mode == "signed":
        if scale is None or not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"mode 'signed' needs a finite scale > 0, got {scale!r}")
        return np.clip(0.5 + m / (2 * float(scale)), 0.0, 1.0)
    raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


@functools.lru_cache(maxsize=512)
def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For n_out output pixels over n_in source pixels: first source index, second, weight of the second.
    Kept for the sizes in use (a build asks for the same few thousand times) and read-only: shared by callers."""
    s = np.clip((np.arange(n_out, dtype=np.float64) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(s).astype(np.intp)
    out = i0, np.minimum(i0 + 1, n_in - 1), s - i0
    for a in out:
        a.flags.writeable = False
    return out


def upsample(m: np.ndarray, width: int, height: int) -> np.ndarray:
    """Map (h, w) -> (height, width) float64, bilinear with half-pixel centres (spec step 3); also shrinks."""
    m = _as_map(m)
    if width < 1 or height < 1:
        raise ValueError(f"output size must be at least 1x1, got {width}x{height}")
    x0, x1, fx = _taps(m.shape[1], width)
    y0, y1, fy = _taps(m.shape[0], height)
    rows = m[:, x0] * (1 - fx) + m[:, x1] * fx  # (h, width)
    return rows[y0] * (1 - fy)[:, None] + rows[y1] * fy[:, None]


def upsample_at(m: np.ndarray, width: int, height: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """upsample(m, width, height)[np.ix_(rows, cols)], computed on those pixels only, with the same operations in
    the same order: the values are bit for bit those of the whole picture. rows, cols: output pixel indices."""
    m = _as_map(m)
    x0, x1, fx = (a[cols] for a in _taps(m.shape[1], width))
    y0, y1, fy = (a[rows] for a in _taps(m.shape[0], height))
    part = m[:, x0] * (1 - fx) + m[:, x1] * fx
    return part[y0] * (1 - fy)[:, None] + part[y1] * fy[:, None]


def upsample_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis of upsample: per output pixel, its first source index, its second, the weight of the
    second (the first's is 1 - that)."""
    return _taps(n_in, n_out)


def running_sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along the last axis of values (n_out pixels): the running sums of v and of x * v, each with a 0 in front
    (float64). What fold_last needs; computed once, they serve every grid size."""
    v = np.asarray(values)
    x = np.arange(v.shape[-1], dtype=np.float64)
    c0, c1 = np.empty(v.shape[:-1] + (v.shape[-1] + 1,)), np.empty(v.shape[:-1] + (v.shape[-1] + 1,))
    c0[..., 0] = c1[..., 0] = 0.0
    np.cumsum(v, axis=-1, dtype=np.float64, out=c0[..., 1:])
    np.cumsum(np.multiply(v, x, dtype=np.float64), axis=-1, out=c1[..., 1:])
    return c0, c1


def fold_last(sums: tuple[np.ndarray, np.ndarray], n_in: int) -> np.ndarray:
    """The transpose of upsample along the last axis: values over n_out pixels (given as running_sums) -> n_in
    grid cells, each pixel's value split between its two source cells by their upsample weights. Folding both
    axes of v gives f with sum(upsample(m) * v) == sum(m * f) for every map m of that grid, up to rounding: one
    fold serves every map of a grid size.

    No matrix: inside a run of pixels that share their first source cell, the second cell's weight is linear in
    the pixel's index x (s = (x + 0.5) * n_in / n_out - 0.5, weight s - floor(s)), so a run's share is
    a * sum(x * v) + (b - i0) * sum(v), two differences of running sums. Where s is clamped (the borders) the
    weight is 0."""
    c0, c1 = sums
    n_out = c0.shape[-1] - 1
    i0, i1, _ = _taps(n_in, n_out)
    a = n_in / n_out
    s = (np.arange(n_out, dtype=np.float64) + 0.5) * a - 0.5
    clamped = (s <= 0) | (s >= n_in - 1)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(i0 * 2 + clamped)) + 1))
    ends = np.concatenate((starts[1:], [n_out]))
    s0 = c0[..., ends] - c0[..., starts]
    s1 = c1[..., ends] - c1[..., starts]
    lo, hi = i0[starts], i1[starts]
    sf = np.where(clamped[starts], 0.0, a * s1 + (0.5 * a - 0.5 - lo) * s0)
    out = np.zeros(c0.shape[:-1] + (n_in,))
    for idx, part in ((lo, s0 - sf), (hi, sf)):  # idx runs in order: add the runs that share a cell with reduceat
        first = np.concatenate(([0], np.flatnonzero(np.diff(idx)) + 1))
        out[..., idx[first]] += np.add.reduceat(part, first, axis=-1)
    return out


@functools.lru_cache(maxsize=256)
def prefix_folds(n_out: int, n_in: int) -> np.ndarray:
    """(n_out + 1, n_in): row x is the fold onto n_in cells of the pixels 0..x-1 of n_out (1 there, 0 elsewhere),
    the running sum of each pixel's two upsample weights. Kept per size pair (read-only, shared)."""
    i0, i1, f = _taps(n_in, n_out)
    per_pixel = np.zeros((n_out + 1, n_in))
    np.add.at(per_pixel, (np.arange(1, n_out + 1), i0), 1.0 - f)
    np.add.at(per_pixel, (np.arange(1, n_out + 1), i1), f)
    out = np.cumsum(per_pixel, axis=0)
    out.flags.writeable = False
    return out


def mask_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each row of a 0/1 mask switches: (row, x, +1 where a run starts at x or -1 where one ends before x),
    in raster order. A drawn outline switches a few times a row, so a fold from these is cheap (fold_mask)."""
    m = np.asarray(mask, dtype=bool)
    rows, xs = np.nonzero(m[:, 1:] != m[:, :-1])
    xs += 1
    first, last = np.flatnonzero(m[:, 0]), np.flatnonzero(m[:, -1])  # runs that start or end at the frame
    rows = np.concatenate((rows, first, last))
    xs = np.concatenate((xs, np.zeros_like(first), np.full_like(last, m.shape[1])))
    signs = np.where(m[rows, np.minimum(xs, m.shape[1] - 1)] & (xs < m.shape[1]), 1.0, -1.0)
    order = np.lexsort((xs, rows))  # raster order
    return rows[order], xs[order], signs[order]


def fold_mask(mask: np.ndarray, shape: tuple[int, int], runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
              ) -> np.ndarray:
    """A 0/1 mask (height, width) folded onto a grid of `shape`: the transpose of upsample on both axes, so that
    sum(upsample(m) * mask) == sum(m * fold_mask(mask)) for every map m of that grid, up to rounding. Along the
    rows, from the mask's runs: a run a..b-1 of a row folds to P[b] - P[a], where P[x]
    is the fold of the pixels before x (prefix_folds); then down the columns with fold_last. It costs the mask's
    switches, not its pixels: measured on the 370 annotated pet outlines, running sums of the whole mask were a
    quarter of the localisation stage. runs: mask_runs(mask), when the caller keeps them for several grid sizes."""
    height, width = np.shape(mask)
    rows, xs, signs = runs if runs is not None else mask_runs(mask)
    out = np.zeros((height, shape[1]))
    if rows.size:
        parts = -signs[:, None] * prefix_folds(width, shape[1])[xs]  # +P[b] at an end, -P[a] at a start
        first = np.concatenate(([0], np.flatnonzero(np.diff(rows)) + 1))
        out[rows[first]] = np.add.reduceat(parts, first, axis=0)
    return fold_last(running_sums(out.T), shape[0]).T


# ---- 4. colour --------------------------------------------------------------------------------------------------


@functools.cache
def _lut(name: str) -> np.ndarray:
    import matplotlib  # lazily: only builds that draw need it, and it costs a noticeable import time

    table = matplotlib.colormaps[name].resampled(256)(np.arange(256), bytes=True)[:, :3].copy()
    table.flags.writeable = False  # shared by every caller
    return table


def lut(name: str) -> np.ndarray:
    """Colormap `name` as (256, 3) uint8 RGB, matplotlib's own bytes (read-only)."""
    if name not in COLORMAPS:
        raise ValueError(f"colormap must be one of {', '.join(COLORMAPS)}, got {name!r}")
    return _lut(name)


def lut_index(v: np.ndarray | float) -> np.ndarray:
    """Values (any shape) -> table indices 0..255: min(255, floor(v * 256)) after clipping to [0, 1], NaN -> 0."""
    v = np.asarray(v, dtype=np.float64)
    v = np.where(np.isnan(v), 0.0, np.clip(v, 0.0, 1.0))
    return np.minimum(np.floor(v * 256), 255).astype(np.intp)


def colormaps_js() -> str:
    """A script defining window.CAM_COLORMAPS = {name: base64 of the 768 RGB bytes}, for maps.js."""
    body = ",\n".join(f'  "{name}": "{base64.b64encode(lut(name).tobytes()).decode("ascii")}"' for name in COLORMAPS)
    return ("// Written by generator/explain/overlay.py (colormaps_js) from matplotlib: 256 RGB triples per colormap.\n"
            f"window.CAM_COLORMAPS = {{\n{body}\n}};\n")


def heat_rgb(m: np.ndarray, width: int, height: int, cmap: str = "jet", mode: str = "minmax",
             scale: float | None = None) -> np.ndarray:
    """Map (h, w) -> the opaque heat picture (height, width, 3) uint8: normalise, upsample, colour (steps 2-4)."""
    return lut(cmap)[lut_index(upsample(normalize(m, mode, scale), width, height))]


def blend(photo: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 photo and heat -> (H, W, 3) uint8, round((1 - alpha) * photo + alpha * heat)."""
    photo, heat = np.asarray(photo), np.asarray(heat)
    if photo.shape != heat.shape or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"photo and heat must both be (H, W, 3), got {photo.shape} and {heat.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    mixed = (1 - alpha) * photo.astype(np.float64) + alpha * heat.astype(np.float64)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


# ---- 5. the CAM box ---------------------------------------------------------------------------------------------


def cam_box(m: np.ndarray, threshold: float = 0.2, grid: int = 224) -> Box:
    """Native map (h, w) -> the CAM box on the grid x grid network input (spec step 5); threshold in [0, 1]."""
    if not 0 <= threshold <= 1:  # above 1 no pixel would pass, not even the peak
        raise ValueError(f"threshold is a fraction of the map's range, in [0, 1], got {threshold}")
    from scipy import ndimage  # here: scipy costs import time that builds which only render pages need not pay

    up = upsample(m, grid, grid)
    up = up - up.min()
    top = up.max()
    if not top > 0:  # a flat map points nowhere: the box is the whole image
        return Box(0.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    above = up >= threshold * top
    rows, cols = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1  # every pixel above
    # labelled inside those bounds only (no pixel outside passes): the same regions, in the same raster order
    labels, n = ndimage.label(above[y0:y1, x0:x1])  # 4-connected
    if n > 1:  # several regions: the box of the biggest (one region, the usual case, fills those bounds)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        biggest = int(sizes.argmax())  # argmax: the first of equal sizes
        r, c = ndimage.find_objects(labels, max_label=biggest)[biggest - 1]  # its bounding box, in one C pass
        y0, y1, x0, x1 = y0 + r.start, y0 + r.stop, x0 + c.start, x0 + c.stop
    mass = float(up[y0:y1, x0:x1].sum() / up.sum())
    return Box(x0 / grid, y0 / grid, x1 / grid, y1 / grid, (y1 - y0) * (x1 - x0) / (grid * grid), mass)

