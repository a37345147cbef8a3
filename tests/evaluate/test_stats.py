"""generator/evaluate/stats.py: intervals over photos and the verdicts read off them, on numbers whose answer is
known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from generator.evaluate import stats
from generator.frames import pd


def test_bootstrap_mean_is_the_mean_inside_its_interval_and_narrows_with_more_photos():
    rng = np.random.default_rng(0)
    few, many = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    m, lo, hi = stats.bootstrap_mean(few, seed=1)
    assert np.isclose(m, few.mean()) and lo < m < hi
    m2, lo2, hi2 = stats.bootstrap_mean(many, seed=1)
    assert (hi2 - lo2) < (hi - lo) / 5 and lo2 < 1.0 < hi2  # width ~ 1/sqrt(n): 10x the photos, 1/10 the width
    assert all(np.isnan(v) for v in stats.bootstrap_mean(np.array([np.nan]), seed=0))


def test_decide_reads_the_interval_against_zero_and_the_margin():
    mg = stats.MARGIN
    assert stats.decide(0.2, 0.1, 0.3) == "better"
    assert stats.decide(-0.2, -0.3, -0.1) == "worse"
    assert stats.decide(0.0, -mg / 2, mg / 2) == "equivalent"
    assert stats.decide(0.0, -0.2, 0.2) == "undecided"


def test_photos_needed_follows_one_over_root_n():
    # half width 0.1 at n = 10 around a mean of 0.05: clearing zero needs the half width to fall to 0.05,
    # i.e. 10 * (0.1 / 0.05)^2 = 40 photos; fitting inside a margin of 0.03 is impossible (|mean| > margin)
    assert stats.photos_needed(10, 0.05, -0.05, 0.15, margin=0.03) == 40
    # a mean of 0 can only become equivalent: 10 * (0.1 / 0.03)^2 = 111.1 -> 112
    assert stats.photos_needed(10, 0.0, -0.1, 0.1, margin=0.03) == 112


def _scores(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"set": "s", "file": f"f{i}", "method": m, "tap": 0, "insertion_auc": 0.5 + v / 2,
             "deletion_auc": 0.5 - v / 2, "average_drop": 0.0, "increase": 0.0}
            for m, vs in values.items() for i, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_a_method_is_held_to_the_random_maps_expectation_not_to_its_draw():
    """Against the random map the difference is the method's own score (the random map's expectation is 0
    exactly): what the random map drew on each photo changes nothing; against the Gaussian it is paired."""
    rng = np.random.default_rng(0)
    method = list(0.2 + rng.normal(0, 0.1, 30))
    gauss = list(0.1 + rng.normal(0, 0.1, 30))
    a = {(c.a, c.b): c for c in stats.comparisons(_scores({"m": method, "random": list(rng.normal(0, 0.2, 30)),
                                                           "gaussian": gauss}), 0, seed=1)}
    b = {(c.a, c.b): c for c in stats.comparisons(_scores({"m": method, "random": list(rng.normal(0.5, 0.2, 30)),
                                                           "gaussian": gauss}), 0, seed=1)}
    assert a["m", "random"].mean == pytest.approx(np.mean(method))
    assert (a["m", "random"].lo, a["m", "random"].hi) == (b["m", "random"].lo, b["m", "random"].hi)
    assert a["m", "gaussian"].mean == pytest.approx(np.mean(method) - np.mean(gauss))


def test_levels_give_half_of_alpha_to_the_random_map_and_add_up_to_alpha():
    live = [("a", "random"), ("b", "random"), ("a", "gaussian"), ("b", "gaussian"), ("a", "b")]
    lv = stats.levels(live, looks=3, alpha=0.05)
    assert lv[:2] == pytest.approx([0.025 / 6] * 2) and lv[2:] == pytest.approx([0.025 / 9] * 3)
    assert lv.sum() * 3 == pytest.approx(0.05)  # every comparison at every look: alpha in all
    only = stats.levels([("a", "gaussian"), ("a", "b")], looks=1, alpha=0.05)  # no random map: all to the rest
    assert only == pytest.approx([0.025, 0.025])


def test_a_looser_level_gives_a_narrower_interval_from_the_same_resamples():
    rng = np.random.default_rng(2)
    col = rng.normal(0.1, 0.2, 40)
    mean, lo, hi = stats.paired_intervals(np.stack([col, col], 1), np.array([0.05, 0.001]), seed=0)
    assert mean[0] == mean[1] and lo[0] > lo[1] and hi[0] < hi[1]
    one = stats.paired_intervals(col[:, None], 0.05, seed=0)
    assert one[1][0] < mean[0] < one[2][0]
