"""Localisation scores on tiny maps and regions whose pointing game, mass inside and IoU are worked out by hand.

Everything here is float64 (the map, the upsampling, the sums): the values worked out by hand are sums of a few
exact binary fractions (quarters, sixteenths), so they are compared exactly or to 1e-12, far above float64's
rounding of such short sums and far below any difference that would matter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as mask_utils

from generator.data.annotations import Region
from generator.evaluate import localisation as L
from generator.explain.overlay import cam_box, fold_mask, upsample


def region(mask: np.ndarray, boxes: list[tuple[float, float, float, float]] | None = None) -> Region:
    """A region from a mask drawn here (its box: the mask's bounds unless given)."""
    mask = np.asarray(mask, dtype=bool)
    if boxes is None:
        ys, xs = np.nonzero(mask)
        boxes = [(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)]
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return Region("pet", mask.shape[1], mask.shape[0], tuple(tuple(float(v) for v in b) for b in boxes), rle)


def box_mask(x0: int, y0: int, x1: int, y1: int, width: int, height: int) -> np.ndarray:
    m = np.zeros((height, width), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# ---- the pointing game ------------------------------------------------------------------------------------------


def test_the_peak_is_the_first_maximum_and_a_constant_map_has_none():
    m = np.zeros((3, 4))
    m[2, 1] = 5.0
    assert L.peak(m) == (1, 2)  # (x, y)
    m[0, 3] = 5.0  # a tie earlier in raster order wins
    assert L.peak(m) == (3, 0)
    assert L.peak(np.full((3, 4), 2.5)) is None


def test_pointing_exact_and_with_torchrays_tolerance():
    mask = box_mask(20, 0, 21, 1, width=40, height=30)  # one pixel at (20, 0)
    assert L.pointing((20, 0), mask) and not L.pointing((19, 0), mask)
    # TorchRay: a hit when a region pixel is at a distance < 15 from the point.
    assert L.pointing((6, 0), mask, 15)  # distance 14
    assert not L.pointing((5, 0), mask, 15)  # distance 15: not below
    assert L.pointing((10, 11), mask, 15)  # 10^2 + 11^2 = 221 < 225
    assert not L.pointing((9, 11), mask, 15)  # 11^2 + 11^2 = 242
    assert not L.pointing(None, mask, 15)  # no peak: a miss


def test_a_constant_map_misses_even_where_the_region_covers_the_corner():
    r = region(box_mask(0, 0, 2, 2, width=4, height=4))
    s = L.score_map(np.ones((7, 7)), r)
    assert s.peak is None and not s.hit and not s.hit_tolerant


def test_the_peak_of_the_upsampled_map_is_found_on_the_photo():
    # A 3x3 map whose maximum is its centre cell: upsampled to 30x30 (10 photo pixels per cell), the maximum sits
    # at the cell's centre, where sx = (x + 0.5) * 3 / 30 - 0.5 = 1, i.e. x = 14.5: pixels 14 and 15 tie at the
    # value of the cell, as do rows 14 and 15; the first in raster order is (14, 14).
    m = np.zeros((3, 3))
    m[1, 1] = 1.0
    inside = region(box_mask(14, 14, 15, 15, width=30, height=30))
    s = L.score_map(m, inside)
    assert s.peak == (14, 14) and s.hit and s.hit_tolerant
    beside = region(box_mask(0, 14, 1, 15, width=30, height=30))  # 14 pixels to the left of the peak
    s = L.score_map(m, beside)
    assert not s.hit and s.hit_tolerant


# ---- the energy-based pointing game -----------------------------------------------------------------------------


def test_energy_is_the_positive_mass_inside():
    up = np.array([[3.0, -1.0], [1.0, 0.0]])  # positive mass 4
    assert L.energy(up, np.array([[True, False], [False, False]])) == 0.75
    assert L.energy(up, np.array([[False, True], [False, True]])) == 0.0  # only non-positive values inside
    assert math.isnan(L.energy(-np.abs(up), np.ones((2, 2), dtype=bool)))  # no positive mass at all


def test_energy_with_a_float_mask_and_a_map_known_to_be_nonnegative():
    up = np.array([[3.0, 0.0], [1.0, 0.5]])
    mask = np.array([[True, False], [False, True]])
    assert L.energy(up, mask) == 3.5 / 4.5
    assert L.energy(up, mask.astype(np.float64), nonnegative=True) == 3.5 / 4.5


def test_energy_after_upsampling_worked_out_by_hand():
    # A 2x2 map with 1 in its top-left cell, upsampled to 4x4: along each axis the weights of that cell are
    # 1, 3/4, 1/4, 0 (sx = -1/4 clamped to 0, then 1/4, 3/4, 5/4 clamped to 1), so the picture is their outer
    # product; its total is 2 * 2 = 4 and its top-left 2x2 quarter holds (1 + 3/4)^2 = 49/16.
    m = np.array([[1.0, 0.0], [0.0, 0.0]])
    w = np.array([1, 0.75, 0.25, 0])
    np.testing.assert_array_equal(upsample(m, 4, 4), np.outer(w, w))
    s = L.score_map(m, region(box_mask(0, 0, 2, 2, width=4, height=4)))
    assert s.energy == (49 / 16) / 4


def test_a_flat_map_scores_the_area_share_in_the_energy_game():
    r = region(box_mask(1, 2, 4, 6, width=10, height=8))  # 12 of 80 pixels
    assert r.area_share == 12 / 80
    assert abs(L.score_map(np.full((7, 7), 0.3), r).energy - 12 / 80) < 1e-12
    assert L.baselines(r).area_share == 12 / 80


# ---- the CAM box and its IoU ------------------------------------------------------------------------------------


def test_box_iou_by_hand():
    assert L.box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == 1 / 7  # overlap 1, union 4 + 4 - 1
    assert L.box_iou((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0  # touching edges share no area
    assert L.box_iou((1, 2, 5, 7), (1, 2, 5, 7)) == 1.0
    assert L.box_iou((0, 0, 10, 10), (0, 0, 10, 5)) == 0.5


def test_cam_box_iou_and_localisation_by_hand():
    # A 4x4 map with ones in its top-left 2x2 cells, upsampled to the 8x8 grid: along each axis the values are
    # 1, 1, 1, 3/4, 1/4, 0, 0, 0, so at threshold 0.5 the box is the grid's top-left 4x4: half of each side.
    # On a 20x10 photo that is (0, 0, 10, 5).
    m = np.zeros((4, 4))
    m[:2, :2] = 1.0
    assert L.cam_box_pixels(m, 20, 10, threshold=0.5, grid=8) == (0.0, 0.0, 10.0, 5.0)
    same = region(box_mask(0, 0, 10, 5, width=20, height=10))
    s = L.score_map(m, same, threshold=0.5, grid=8)
    assert s.box == (0.0, 0.0, 10.0, 5.0) and s.iou == 1.0 and s.located
    twice = region(box_mask(0, 0, 10, 10, width=20, height=10))  # IoU 50 / 100: just located
    s = L.score_map(m, twice, threshold=0.5, grid=8)
    assert s.iou == 0.5 and s.located
    thrice = region(box_mask(0, 0, 15, 10, width=20, height=10))  # IoU 50 / 150
    s = L.score_map(m, thrice, threshold=0.5, grid=8)
    assert s.iou == 1 / 3 and not s.located


def test_the_best_of_several_boxes_counts():
    mask = box_mask(0, 0, 10, 5, width=20, height=10) | box_mask(15, 5, 20, 10, width=20, height=10)
    r = region(mask, boxes=[(15, 5, 20, 10), (0, 0, 10, 5)])
    m = np.zeros((4, 4))
    m[:2, :2] = 1.0
    assert L.score_map(m, r, threshold=0.5, grid=8).iou == 1.0


def test_score_maps_scores_each_map_as_score_map_does():
    rng = np.random.default_rng(0)
    r = region(box_mask(3, 2, 9, 7, width=12, height=9))
    maps = [rng.normal(size=(7, 7)) for _ in range(3)] + [rng.random(size=(5, 6))]  # the last one >= 0
    assert L.score_maps(maps, r) == [L.score_map(m, r) for m in maps]
    boxes = [cam_box(m, 0.2, 224) for m in maps]  # the boxes the explain stage already has: the same scores
    assert L.score_maps(maps, r, cam_boxes=boxes) == L.score_maps(maps, r)
    with pytest.raises(ValueError, match="4 maps but 1 CAM boxes"):
        L.score_maps(maps, r, cam_boxes=boxes[:1])
    with pytest.raises(ValueError, match="NaN"):
        L.score_map(np.full((2, 2), np.nan), r)


# ---- baselines --------------------------------------------------------------------------------------------------


def test_the_centre_point_baseline():
    assert L.centre_point(10, 8) == (5, 4) and L.centre_point(9, 7) == (4, 3)
    middle = L.baselines(region(box_mask(5, 4, 6, 5, width=10, height=8)))  # just the centre pixel
    assert middle.centre_hit and middle.centre_hit_tolerant
    corner = L.baselines(region(box_mask(0, 0, 1, 1, width=10, height=8)))  # 6.4 pixels from the centre
    assert not corner.centre_hit and corner.centre_hit_tolerant
    far = L.baselines(region(box_mask(0, 0, 1, 1, width=40, height=40)))  # 28.3 pixels away
    assert not far.centre_hit and not far.centre_hit_tolerant


def test_the_gaussian_baseline_is_centred_with_a_quarter_side_sigma():
    g = L.gaussian_map(9)
    assert g[4, 4] == 1.0 and L.peak(g) == (4, 4)
    np.testing.assert_array_equal(g, g.T)
    np.testing.assert_array_equal(g, g[::-1, ::-1])
    # sigma = 9 / 4 cells: one sigma from the centre along an axis, the value is exp(-1/2); checked by
    # interpolating between the two cells around 4 + 2.25 in log space, where a Gaussian is a parabola.
    log_at_sigma = np.interp(2.25, [2, 3], np.log(g[4, [6, 7]]))
    assert abs(log_at_sigma - (-0.5)) < 0.02  # the parabola is not linear between cells: a small gap
    with pytest.raises(ValueError):
        g[0, 0] = 0.0  # shared by every caller: read-only
    b = L.baselines(region(box_mask(4, 4, 6, 6, width=10, height=10)))
    assert b.gaussian.hit  # the Gaussian's peak falls on the photo's middle
    assert b.gaussian.energy > b.area_share  # and it holds more than a flat map's share there


# ---- over photos ------------------------------------------------------------------------------------------------


def fake_score(hit: bool, energy: float, iou: float) -> L.PhotoScore:
    return L.PhotoScore((0, 0), hit, hit, energy, iou, (0.0, 0.0, 1.0, 1.0))


def test_summaries_are_means_with_seeded_intervals():
    scores = [fake_score(True, 0.5, 0.6), fake_score(False, 0.25, 0.2), fake_score(True, float("nan"), 0.5),
              fake_score(True, 1.0, 0.1)]
    s = L.summarise(scores, seed=3)
    assert s.n == 4
    assert s.pointing.mean == 0.75 and s.pointing.n == 4
    assert s.energy.mean == (0.5 + 0.25 + 1.0) / 3 and s.energy.n == 3  # the NaN is no photo's score
    assert abs(s.iou.mean - 1.4 / 4) < 1e-12
    assert s.accuracy.mean == 0.5  # IoU 0.6 and 0.5 reach 0.5
    for iv in (s.pointing, s.energy, s.iou, s.accuracy):
        assert iv.lo <= iv.mean <= iv.hi
    assert L.summarise(scores, seed=3) == s  # seeded: the same intervals again
    constant = L.interval([0.4] * 5, seed=0)
    assert constant == L.Interval(0.4, 0.4, 0.4, 5)
    empty = L.interval([], seed=0)
    assert empty.n == 0 and math.isnan(empty.mean)


def test_baselines_over_photos():
    photos = [region(box_mask(5, 4, 6, 5, width=10, height=8)), region(box_mask(0, 0, 1, 1, width=40, height=40))]
    b = L.summarise_baselines([L.baselines(r) for r in photos], seed=0)
    assert b.n == 2 and b.centre.mean == 0.5 and b.centre_tolerant.mean == 0.5
    assert b.area_share.mean == (1 / 80 + 1 / 1600) / 2
    assert b.gaussian.n == 2


# ---- properties -------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(m=hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)),
                    elements=st.floats(-4, 4, allow_nan=False)),
       cells=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 8)), min_size=1, max_size=20))
def test_properties_of_any_map_and_region(m, cells):
    mask = np.zeros((9, 12), dtype=bool)
    for x, y in cells:
        mask[y, x] = True
    r = region(mask)
    s = L.score_map(m, r)
    if s.hit:
        assert s.hit_tolerant  # slack never loses a hit
    assert 0.0 <= s.iou <= 1.0
    if not math.isnan(s.energy):  # the mass inside and outside add up to all of it (float64 sums: 1e-9)
        rest = L.energy(upsample(np.maximum(m, 0), 12, 9), ~mask)
        assert abs(s.energy + rest - 1.0) < 1e-9 and 0.0 <= s.energy <= 1.0
    # the definition, on the picture drawn at the photo's size: the positive part taken on the map's grid
    whole = L.energy(upsample(np.maximum(m, 0), 12, 9), mask)
    assert (math.isnan(s.energy) and math.isnan(whole)) or abs(s.energy - whole) < 1e-9
    assert s.peak == L.peak(upsample(m, 12, 9), native=m)  # found on a window: the same pixel, ties included


@settings(max_examples=60, deadline=None)
@given(m=hnp.arrays(np.float64, st.tuples(st.integers(1, 9), st.integers(1, 9)),
                    elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0])),  # few values: many ties
       size=st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_the_windowed_peak_is_the_pictures_first_maximum(m, size):
    """peak_at draws only a window of the picture; upsampling to any size (shrinking too) it finds the pixel that
    drawing the whole picture finds, the first in raster order among equal values."""
    w, h = size
    assert L.peak_at(m, w, h) == L.peak(upsample(m, w, h), native=m)


@settings(max_examples=40, deadline=None)
@given(grid=st.tuples(st.integers(1, 9), st.integers(1, 9)), size=st.tuples(st.integers(1, 30), st.integers(1, 30)),
       seed=st.integers(0, 2 ** 16))
def test_folding_a_mask_is_the_transpose_of_upsampling(grid, size, seed):
    """fold_mask(v, grid) is Ry.T @ v @ Rx with the upsample's own weight matrices (built here from upsample itself,
    one unit map at a time), so sum(upsample(m) * v) == sum(m * fold_mask(v)) for any map m."""
    (gh, gw), (w, h) = grid, size
    rng = np.random.default_rng(seed)
    v = rng.random((h, w)) > 0.5
    unit = np.eye(gh * gw).reshape(gh * gw, gh, gw)
    expected = np.array([(upsample(u, w, h) * v).sum() for u in unit]).reshape(gh, gw)
    np.testing.assert_allclose(fold_mask(v, (gh, gw)), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(grid=st.tuples(st.integers(1, 8), st.integers(1, 8)), size=st.tuples(st.integers(1, 25), st.integers(1, 25)),
       corners=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)))
def test_a_box_folds_as_the_outer_product_of_its_sides(grid, size, corners):
    """A region that is one filled rectangle (a head box) takes the cheap path; it folds as any mask does."""
    (gh, gw), (w, h) = grid, size
    xs = sorted((min(int(corners[0] * w), w - 1), min(int(corners[1] * w), w - 1)))
    ys = sorted((min(int(corners[2] * h), h - 1), min(int(corners[3] * h), h - 1)))
    mask = box_mask(xs[0], ys[0], xs[1] + 1, ys[1] + 1, width=w, height=h)
    inside, whole = L.fold({"head": mask}, (gh, gw), w, h)
    np.testing.assert_allclose(inside["head"], fold_mask(mask, (gh, gw)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(whole, fold_mask(np.ones((h, w), dtype=bool), (gh, gw)), rtol=1e-12, atol=1e-12)
    assert L._rectangle(mask) is not None
    if xs[1] > xs[0] and ys[1] > ys[0]:  # at least 2 x 2: a corner pixel off leaves no rectangle
        holed = mask.copy()
        holed[np.argwhere(mask)[0][0], np.argwhere(mask)[0][1]] = False  # a corner pixel off: not a box
        assert L._rectangle(holed) is None
