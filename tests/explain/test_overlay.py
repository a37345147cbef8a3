"""The Python reference overlay: payload round trip, upsampling against torch, colour rule, CAM box against cam.py."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from generator.explain import overlay

ROOT = Path(__file__).resolve().parents[2]
SHAPES = [(56, 56), (28, 28), (14, 14), (7, 7)]


def smooth_map(rng: np.random.Generator, h: int, w: int, noise: float = 0.1) -> np.ndarray:
    """A CAM-like map: two Gaussian bumps plus noise, float32 as the explainer produces."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    m = np.zeros((h, w))
    for _ in range(2):
        cy, cx, s, a = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.08, 0.3), rng.uniform(-3, 6)
        m += a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return (m + noise * rng.normal(size=(h, w))).astype(np.float32)


# ---- payload ----------------------------------------------------------------------------------------------------


def test_round_trip_error_is_at_most_half_a_step():
    rng = np.random.default_rng(0)
    maps = [smooth_map(rng, h, w) for h, w in SHAPES] + [rng.normal(size=(5, 9)) * 1e-3 + 7, rng.normal(size=(3, 3))]
    payload = json.loads(json.dumps(overlay.encode_maps([(f"m{i}", m) for i, m in enumerate(maps)])))
    decoded = overlay.decode_maps(payload)
    assert [k for k, _ in decoded] == [f"m{i}" for i in range(len(maps))]
    for (_, d), m, meta in zip(decoded, maps, payload["maps"]):
        m = m.astype(np.float64)
        lo, hi = m.min(), m.max()
        assert (meta["lo"], meta["hi"]) == (lo, hi)  # exact through JSON
        assert d.dtype == np.float64 and d.shape == m.shape
        slack = 4 * np.finfo(np.float64).eps * max(abs(lo), abs(hi))  # the last rounding of lo + q / 255 * range
        assert np.abs(d - m).max() <= (hi - lo) / 510 + slack
        assert d.min() == lo


def test_constant_map_stores_zeros_and_decodes_to_the_constant():
    payload = overlay.encode_maps([("flat", np.full((7, 7), 2.5))], find_neg=False)
    assert payload["maps"][0]["lo"] == payload["maps"][0]["hi"] == 2.5
    assert zlib.decompress(base64.b64decode(payload["data"])) == bytes(49)  # zeros compress: "u8z"
    (key, d), = overlay.decode_maps(payload)
    assert key == "flat" and (d == 2.5).all()


def test_neg_entries_cost_no_bytes_and_decode_to_minus_the_source():
    rng = np.random.default_rng(1)
    a, b = smooth_map(rng, 14, 14), smooth_map(rng, 7, 7)
    explicit = overlay.encode_maps([("cat", a), ("dog", 0), ("g", b)], find_neg=False)
    found = overlay.encode_maps([("cat", a), ("g", b), ("dog", -a)])
    assert explicit["maps"][1] == {"key": "dog", "neg": 0}
    assert found["maps"][2] == {"key": "dog", "neg": 0}
    plain = overlay.encode_maps([("cat", a), ("g", b)])
    assert found["data"] == plain["data"]
    d = dict(overlay.decode_maps(found))
    assert np.array_equal(d["dog"], -d["cat"])
    with pytest.raises(ValueError, match="earlier entry"):
        overlay.encode_maps([("dog", 0)])


def test_u8z_is_chosen_only_when_smaller_and_decodes_right():
    rng = np.random.default_rng(2)
    smooth = [(f"s{i}", smooth_map(rng, h, w, noise=0.0).astype(np.float64)) for i, (h, w) in enumerate(SHAPES)]
    noise = [("n", rng.uniform(size=(7, 7)))]  # 49 random bytes do not compress
    for entries, enc in ((smooth, "u8z"), (noise, "u8")):
        payload = overlay.encode_maps(entries)
        assert payload["enc"] == enc
        raw = b"".join(np.rint((m - m.min()) / (m.max() - m.min()) * 255).astype(np.uint8).tobytes()
                       for _, m in entries)
        stored = base64.b64decode(payload["data"])
        assert (zlib.decompress(stored) if enc == "u8z" else stored) == raw
        assert len(stored) <= len(raw) and len(stored) <= len(zlib.compress(raw, 9))
        for (k, d), (k0, m) in zip(overlay.decode_maps(payload), entries):
            assert k == k0 and np.abs(d - m).max() <= (m.max() - m.min()) / 510 * (1 + 1e-9)


def test_one_photos_maps_fit_in_a_few_kilobytes():
    """Per photo: CAM of one class at four taps (the other class is its "neg"), plus Grad-CAM at each tap."""
    rng = np.random.default_rng(11)
    items: list[tuple[str, np.ndarray | int]] = [(f"cam{t}/cat", smooth_map(rng, h, w))
                                                for t, (h, w) in enumerate(SHAPES)]
    items += [(f"cam{t}/dog", -m) for t, (_, m) in enumerate(list(items))]
    items += [(f"gradcam{t}", np.maximum(smooth_map(rng, h, w), 0)) for t, (h, w) in enumerate(SHAPES)]
    payload = overlay.encode_maps(items)
    assert [m.get("neg") for m in payload["maps"][4:8]] == [0, 1, 2, 3]
    size = len(overlay.payload_json(payload))
    print(f"\none photo's maps ({payload['enc']}): {size} bytes of JSON")
    assert size < 4 * 2 * 4165 / 3 + 1000  # base64 of the 2 x 4165 quantised bytes, plus the entries' text


def test_payload_json_is_safe_inside_a_script_element():
    payload = overlay.encode_maps([("</script><b>&amp;", np.eye(3))])
    text = overlay.payload_json(payload)
    assert not set("<>&") & set(text)
    assert json.loads(text) == payload


def test_bad_payloads_are_refused():
    payload = overlay.encode_maps([("a", np.eye(4))])
    with pytest.raises(ValueError, match="version"):
        overlay.decode_maps({**payload, "v": 2})
    with pytest.raises(ValueError, match="encoding"):
        overlay.decode_maps({**payload, "enc": "png"})
    with pytest.raises(ValueError, match="NaN"):
        overlay.encode_maps([("a", np.full((2, 2), np.nan))])


# ---- upsampling -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w", "width", "height"), [
    (7, 7, 224, 224), (7, 7, 192, 192), (14, 14, 500, 375), (28, 28, 375, 500), (56, 56, 512, 341),
    (5, 9, 17, 3), (56, 56, 20, 10), (7, 7, 7, 7), (1, 1, 4, 6), (2, 3, 1, 1),
])
def test_upsample_equals_torch_bilinear_without_aligned_corners(h, w, width, height):
    m = np.random.default_rng(h * 100 + w).normal(size=(h, w))
    ref = F.interpolate(torch.from_numpy(m)[None, None], size=(height, width), mode="bilinear",
                        align_corners=False)[0, 0].numpy()
    up = overlay.upsample(m, width, height)
    assert up.shape == (height, width) and up.dtype == np.float64
    np.testing.assert_allclose(up, ref, rtol=0, atol=1e-12)


def test_upsample_to_the_native_size_is_the_identity():
    m = np.random.default_rng(3).normal(size=(14, 14))
    assert np.array_equal(overlay.upsample(m, 14, 14), m)


# ---- colour -----------------------------------------------------------------------------------------------------


def test_lut_index_at_the_edges():
    v = [0.0, 1.0, 0.9999999999, np.nan, -0.5, 1.5, 1 / 256, np.nextafter(1 / 256, 0), 255 / 256, 0.5]
    assert overlay.lut_index(v).tolist() == [0, 255, 255, 0, 0, 255, 1, 0, 255, 128]


@pytest.mark.parametrize("name", overlay.COLORMAPS)
def test_lut_is_matplotlibs_colormap_with_matplotlibs_index_rule(name):
    table = overlay.lut(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8
    v = np.concatenate([np.random.default_rng(4).uniform(size=5000), np.arange(257) / 256, [0.0, 1.0]])
    expected = matplotlib.colormaps[name](v, bytes=True)[:, :3]
    assert np.array_equal(table[overlay.lut_index(v)], expected)


def test_colormaps_js_carries_the_same_tables():
    text = overlay.colormaps_js()
    tables = json.loads(re.search(r"window\.CAM_COLORMAPS = (\{.*\});", text, re.S).group(1))
    assert list(tables) == list(overlay.COLORMAPS)
    for name, data in tables.items():
        assert base64.b64decode(data) == overlay.lut(name).tobytes()


def test_unknown_colormap_and_mode_are_refused():
    with pytest.raises(ValueError, match="colormap"):
        overlay.lut("hot")
    with pytest.raises(ValueError, match="mode"):
        overlay.normalize(np.eye(2), "log")
    with pytest.raises(ValueError, match="scale"):
        overlay.normalize(np.eye(2), "signed")


def test_heat_rgb_is_the_coloured_upsampled_normalised_map():
    m = smooth_map(np.random.default_rng(5), 7, 7)
    heat = overlay.heat_rgb(m, 500, 375, cmap="viridis")
    assert heat.shape == (375, 500, 3) and heat.dtype == np.uint8
    v = overlay.upsample(overlay.normalize(m), 500, 375)
    assert np.array_equal(heat, overlay.lut("viridis")[overlay.lut_index(v)])
    assert np.array_equal(overlay.heat_rgb(np.full((7, 7), 3.0), 4, 2), np.tile(overlay.lut("jet")[0], (2, 4, 1)))


def test_signed_mode_puts_zero_at_the_middle_of_the_table():
    table = overlay.lut("RdBu_r")
    zero = overlay.heat_rgb(np.zeros((7, 7)), 10, 10, cmap="RdBu_r", mode="signed", scale=2.0)
    assert (zero == table[128]).all()
    m = np.array([[-5.0, -1.0, 0.0, 1.0, 5.0]])
    assert overlay.normalize(m, "signed", scale=2.0).tolist() == [[0.0, 0.25, 0.5, 0.75, 1.0]]
    ends = overlay.heat_rgb(np.array([[-9.0, 9.0]]), 2, 1, cmap="RdBu_r", mode="signed", scale=1.0)
    assert np.array_equal(ends[0], table[[0, 255]])


def test_blend_mixes_photo_and_heat():
    photo = np.full((2, 3, 3), 100, dtype=np.uint8)
    heat = np.full((2, 3, 3), 201, dtype=np.uint8)
    assert (overlay.blend(photo, heat) == 150).all()  # 150.5 rounds to even
    assert (overlay.blend(photo, heat, alpha=0.0) == 100).all()
    with pytest.raises(ValueError, match="shape|must both"):
        overlay.blend(photo, heat[:1])


# ---- the CAM box ------------------------------------------------------------------------------------------------


def _blobs(h: int, w: int, centres: list[tuple[int, int]]) -> np.ndarray:
    """Equal 3x3 Gaussian blobs. Not single pixels: their upsampled values are products of multiples of 1/56,
    some exactly at a threshold, where float32 (cam.py) and float64 rounding decide differently."""
    m = np.zeros((h, w))
    for y, x in centres:
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                m[y + dy, x + dx] += np.exp(-(dy * dy + dx * dx) / 1.3)
    return m.astype(np.float32)


def box_maps() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(6)
    maps = {f"random{h}": rng.uniform(size=(h, h)).astype(np.float32) for h in (7, 14, 28, 56)}
    maps.update({f"smooth{h}": smooth_map(rng, h, h) for h in (7, 14, 28, 56)})
    maps["negative"] = smooth_map(rng, 7, 7) - 10.0
    maps["two_blobs"] = _blobs(8, 8, [(2, 1), (5, 6)]) + _blobs(8, 8, [(5, 6)])  # one blob twice as strong
    # Equal blobs 5 of 10 pixels (112 grid pixels) apart, clear of the clamped edges: ties.
    maps["tie_side_by_side"] = _blobs(10, 10, [(3, 2), (3, 7)])
    maps["tie_diagonal"] = _blobs(10, 10, [(7, 2), (2, 7)])  # the upper one starts first in raster order
    maps["flat"] = np.full((7, 7), 0.3, dtype=np.float32)
    return maps


def reference_box(m: np.ndarray, threshold: float, grid: int = 224) -> overlay.Box:
    """An independent implementation of the paper's rule, the one this project used before overlay.py: torch's
    bilinear upsampling in float32, every labelled pixel's coordinates, float32 sums."""
    from scipy import ndimage

    up = F.interpolate(torch.from_numpy(np.asarray(m, np.float32))[None, None], size=(grid, grid),
                       mode="bilinear", align_corners=False)[0, 0].numpy()
    up = up - float(up.min())
    top = float(up.max())
    if top <= 0:
        return overlay.Box(0.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    labels, _ = ndimage.label(up >= threshold * top)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    ys, xs = np.nonzero(labels == int(sizes.argmax()))
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    mass = float(up[y0:y1, x0:x1].sum() / up.sum())
    return overlay.Box(x0 / grid, y0 / grid, x1 / grid, y1 / grid, (y1 - y0) * (x1 - x0) / grid**2, mass)


@pytest.mark.parametrize("threshold", [0.1, 0.2, 0.35, 0.5])
@pytest.mark.parametrize("name", list(box_maps()))
def test_cam_box_equals_an_independent_implementation(name, threshold):
    m = box_maps()[name]
    ref = reference_box(m, threshold)
    got = overlay.cam_box(m, threshold, grid=224)
    assert (got.x0, got.y0, got.x1, got.y1, got.area) == (ref.x0, ref.y0, ref.x1, ref.y1, ref.area)
    assert got.mass == pytest.approx(ref.mass, abs=1e-5)  # the reference sums float32


def test_cam_box_ties_go_to_the_region_that_starts_first():
    from scipy import ndimage

    for name, first in (("tie_side_by_side", (3, 2)), ("tie_diagonal", (2, 7))):
        m = box_maps()[name]
        up = overlay.upsample(m, 224, 224)
        labels, n = ndimage.label(up - up.min() >= 0.2 * (up.max() - up.min()))
        sizes = np.bincount(labels.ravel())[1:]
        assert n == 2 and sizes[0] == sizes[1]  # really a tie
        got, alone = overlay.cam_box(m, 0.2), overlay.cam_box(_blobs(10, 10, [first]), 0.2)
        assert (got.x0, got.y0, got.x1, got.y1) == (alone.x0, alone.y0, alone.x1, alone.y1)
        assert got.mass == pytest.approx(alone.mass / 2)
    assert overlay.cam_box(box_maps()["flat"]) == overlay.Box(0.0, 0.0, 1.0, 1.0, 1.0, 1.0)


def test_overlay_imports_without_torch():
    code = "import sys, generator.explain.overlay as o; " \
           "o.cam_box(o.decode_maps(o.encode_maps([('a', [[0, 1]])]))[0][1]); " \
           "print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("seed", range(12))
def test_a_mask_folds_from_its_runs_as_from_its_pixels(seed):
    """fold_mask (from where each row switches) is, by definition, sum(upsample(unit map) * mask) for each cell
    of the grid, for any 0/1 mask: random sizes and densities, full and empty masks, runs that touch the frame,
    one-pixel rows and columns, grids that shrink."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 60, size=2))
    grid = (int(rng.integers(1, 12)), int(rng.integers(1, 12)))
    units = [overlay.upsample(u, w, h) for u in np.eye(grid[0] * grid[1]).reshape(-1, *grid)]
    for mask in (rng.random((h, w)) < rng.random(), np.ones((h, w), bool), np.zeros((h, w), bool),
                 np.asfortranarray(rng.random((h, w)) < 0.3)):  # pycocotools decodes in column order
        expected = np.array([(u * mask).sum() for u in units]).reshape(grid)
        # a difference of two prefix folds costs a few ulps of the prefix (at most w / grid): 1e-12 is far above
        np.testing.assert_allclose(overlay.fold_mask(mask, grid), expected, rtol=1e-12, atol=1e-12)
    rows, xs, signs = overlay.mask_runs(np.array([[1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 1, 1]], bool))
    assert list(zip(rows.tolist(), xs.tolist(), signs.tolist())) == [
        (0, 0, 1.0), (0, 2, -1.0), (0, 3, 1.0), (0, 4, -1.0), (2, 1, 1.0), (2, 4, -1.0)]
