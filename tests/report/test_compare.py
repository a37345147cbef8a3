"""generator/report/compare.py: flip counts, McNemar's p and the rank correlations match a hand computation on
small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from generator.frames import pd
from generator.report import compare


def results(preds: list[str], labels: list[str], set_name: str = "test", probe: list[str] | None = None):
    rows = []
    for i, (p, lab) in enumerate(zip(preds, labels)):
        rows.append({"set": set_name, "file": f"{i}.jpg", "label": lab, "prediction": p, "status": "ok",
                     "sha256": f"sha{set_name}{i}", "page": f"sets/{set_name}/{i}.html",
                     "p_cat": 0.9 if p == "cat" else 0.1 - i / 100, "p_dog": 0.1 if p == "cat" else 0.9 + i / 100,
                     "probe0_prediction": (probe or preds)[i]})
    return pd.DataFrame(rows)


LABELS = ["cat"] * 6 + ["dog"] * 6
# A (the site's model) is right on 0-9; B (the other) is right on 0-5 and 10-11: A only right on 6-9 (four
# photos), B only right on 10-11 (two)
A = LABELS[:10] + ["cat", "cat"]
B = LABELS[:6] + ["cat"] * 4 + LABELS[10:]


def test_mcnemar_matches_the_binomial_by_hand():
    ra, rb = results(A, LABELS), results(B, LABELS)
    pairs = compare.paired(ra, rb, ["test"])
    t = compare.mcnemar(pairs["correct_a"], pairs["correct_b"])
    assert (t.n, t.a_right, t.b_right, t.a_only, t.b_only) == (12, 10, 8, 4, 2)
    # two-sided exact: 2 * P(X <= 2), X ~ Binomial(6, 1/2) = 2 * (1 + 6 + 15) / 64
    assert t.p == pytest.approx(2 * 22 / 64)
    none = compare.mcnemar(np.ones(5, bool), np.ones(5, bool))
    assert none.p == 1.0 and none.discordant == 0


def test_flips_name_the_photos_each_way():
    pairs = compare.paired(results(A, LABELS), results(B, LABELS), ["test"])
    broke, fixed = compare.flips(pairs)
    assert sorted(broke["file"]) == ["10.jpg", "11.jpg"]  # right under B, wrong under A
    assert sorted(fixed["file"]) == ["6.jpg", "7.jpg", "8.jpg", "9.jpg"]
    table = compare.accuracy_table(pairs, ["test"])
    row = table.iloc[0]
    assert (row["n"], row["right_to_wrong"], row["wrong_to_right"]) == (12, 2, 4)
    assert row["acc_a"] == pytest.approx(10 / 12) and row["acc_b"] == pytest.approx(8 / 12)
    assert row["acc_a_lo"] < 10 / 12 < row["acc_a_hi"] and not row["decided"]


def test_wilson_interval_by_hand():
    # 8 of 10, z = 1.959964: centre (k + z^2/2) / (n + z^2), half-width z sqrt(k(n-k)/n + z^2/4) / (n + z^2)
    z = 1.959963984540054
    centre = (8 + z * z / 2) / (10 + z * z)
    half = z * math.sqrt(8 * 2 / 10 + z * z / 4) / (10 + z * z)
    share, lo, hi = compare.wilson(8, 10)
    assert share == 0.8 and lo == pytest.approx(centre - half) and hi == pytest.approx(centre + half)
    assert all(math.isnan(v) for v in compare.wilson(0, 0))


def test_rank_correlation_by_hand():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert compare.rank_correlation(a, a * 10 + 3) == pytest.approx(1.0)  # same order of cells
    assert compare.rank_correlation(a, -a) == pytest.approx(-1.0)
    # ranks 1 2 3 4 against 2 1 4 3: d = 1 for every cell, rho = 1 - 6 * 4 / (4 * 15) = 0.6
    assert compare.rank_correlation(a, np.array([[2.0, 1.0], [4.0, 3.0]])) == pytest.approx(0.6)
    assert math.isnan(compare.rank_correlation(a, np.zeros((2, 2))))
    # a coarser map is resized to the finer grid: a 1x2 left-right ramp against a 4x4 one
    fine = np.tile(np.arange(4.0), (4, 1))
    assert compare.rank_correlation(np.array([[0.0, 1.0]]), fine) > 0.9


def test_compare_models_puts_the_most_moved_photo_first_and_takes_the_labelled_class():
    labels = ["cat", "dog", "cat"]
    ra, rb = results(labels, labels), results(labels, labels)
    base = np.array([[1.0, 2.0], [3.0, 4.0]])
    maps_a = {"shatest0": np.stack([base, -base]), "shatest1": np.stack([base, -base]),
              "shatest2": np.stack([base, -base])}
    # photo 0: same map; photo 1 (a dog: class 1 is read) reversed; photo 2 shuffled (rho 0.6)
    maps_b = {"shatest0": np.stack([base, -base]), "shatest1": np.stack([-base, base]),
              "shatest2": np.stack([np.array([[2.0, 1.0], [4.0, 3.0]]), -base])}
    c = compare.compare_models(ra, rb, ["test"], 1, maps_a.get, maps_b.get, {"recipe": "finetune"},
                               {"recipe": "probe"})
    assert list(c.moves["file"]) == ["1.jpg", "2.jpg", "0.jpg"]
    assert list(c.moves["rho"]) == pytest.approx([-1.0, 0.6, 1.0])
    assert c.rho[0] == pytest.approx(0.6) and c.rho[1] <= 0.6 <= c.rho[2]
    assert c.probes.iloc[0]["acc_a"] == 1.0 and c.broke.empty and c.fixed.empty


def test_median_interval_contains_the_median_and_is_seeded():
    v = np.arange(21.0)
    med, lo, hi = compare.median_interval(v, seed=3)
    assert med == 10.0 and lo < 10 < hi
    assert compare.median_interval(v, seed=3) == (med, lo, hi)
