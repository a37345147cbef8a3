"""generator/publish/pages/methods.py: what methods.html computes for its reader."""

from __future__ import annotations

import pytest

from generator.evaluate import stats
from generator.frames import pd
from generator.publish.pages.methods import margin_share


def _comparisons(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return stats.comparison_table([stats.Comparison(a, b, 20, mean, mean - 0.1, mean + 0.1, "undecided", 30.0)
                                   for a, b, mean in rows])


def test_the_margin_is_shown_as_a_share_of_the_best_maps_gain_over_the_random_map():
    comps = _comparisons([("cam", "random", 0.15), ("gradcam", "random", 0.2), ("cam", "gradcam", 0.1),
                          ("cam", "gaussian", 0.5)])  # only the comparisons with the random map count
    assert margin_share(comps, 0.03) == pytest.approx(0.03 / 0.2)
    assert margin_share(_comparisons([("cam", "random", -0.05)]), 0.03) is None  # no map gains anything
    assert margin_share(_comparisons([]), 0.03) is None
