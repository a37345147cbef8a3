"""generator/evaluate/stats.py: intervals over photos and the verdicts read off them, on numbers whose answer is
known by construction."""

from __future__ import annotations

import numpy as np

from generator.evaluate import stats


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
