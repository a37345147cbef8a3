"""Numbers of the error analysis, on small tables whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generator import analysis


def table(rows):
    """rows: (label, prediction, p_cat, box_area, box_mass)."""
    df = pd.DataFrame(rows, columns=["label", "prediction", "p_cat", "box_area", "box_mass"])
    df["p_dog"] = 1 - df["p_cat"]
    df["status"] = "ok"
    df["set"] = "test"
    df["file"] = [f"f{i}.jpg" for i in range(len(df))]
    return df


HAND = table([
    ("cat", "cat", 0.95, 0.5, 0.9),
    ("cat", "cat", 0.65, 0.6, 0.8),
    ("cat", "dog", 0.30, 1.0, 1.0),   # wrong, confidence 0.70
    ("dog", "dog", 0.10, 0.4, 0.95),
    ("dog", "cat", 0.92, 0.9, 0.7),   # wrong, confidence 0.92
])


def test_accuracy_and_confusion_counts():
    assert analysis.accuracy(HAND) == pytest.approx(3 / 5)
    m = analysis.confusion(HAND)
    assert m.loc["cat", "cat"] == 2 and m.loc["cat", "dog"] == 1
    assert m.loc["dog", "cat"] == 1 and m.loc["dog", "dog"] == 1
    cells = analysis.confusion_cells(HAND)
    assert list(cells[("dog", "cat")]["file"]) == ["f4.jpg"]


def test_unlabeled_and_skipped_rows_do_not_count():
    extra = pd.concat([HAND, table([("", "cat", 0.9, 0.5, 0.5)])], ignore_index=True)
    extra.loc[len(extra)] = {**extra.iloc[0].to_dict(), "status": "skipped: empty file (0 bytes)"}
    assert analysis.accuracy(extra) == pytest.approx(3 / 5)
    assert analysis.set_summary(extra)["skipped"] == 1


def test_ece_by_hand():
    # confidences 0.95 0.65 0.70 0.90 0.92; 5 bins over [0.5, 1]: [.5,.6] (.6,.7] (.7,.8] (.8,.9] (.9,1]
    rel = analysis.set_reliability(HAND, n_bins=5)
    assert list(rel.counts) == [0, 2, 0, 1, 2]
    # bin (.6,.7]: f1 0.65 correct, f2 0.70 wrong -> acc 0.5, conf 0.675
    # bin (.8,.9]: f3 0.90 correct -> acc 1, conf 0.9
    # bin (.9,1]: f0 0.95 correct, f4 0.92 wrong -> acc 0.5, conf 0.935
    expected = (2 * abs(0.5 - 0.675) + 1 * abs(1 - 0.9) + 2 * abs(0.5 - 0.935)) / 5
    assert rel.ece == pytest.approx(expected)


def test_perfect_calibration_has_zero_ece():
    conf = np.array([0.75] * 4)
    correct = np.array([1, 1, 1, 0])
    assert analysis.reliability(conf, correct).ece == pytest.approx(0.0)


def test_mistakes_most_confident_first_and_near_misses():
    wrong = analysis.mistakes(HAND)
    assert list(wrong["file"]) == ["f4.jpg", "f2.jpg"]
    near = analysis.near_misses(HAND, n=2)
    assert list(near["file"]) == ["f1.jpg", "f3.jpg"]


def test_attention_by_outcome():
    att = analysis.attention_by_outcome(HAND).set_index("outcome")
    assert att.loc["correct", "n"] == 3
    assert att.loc["correct", "box_area_median"] == pytest.approx(0.5)
    assert att.loc["wrong", "box_area_mean"] == pytest.approx(0.95)
    assert att.loc["wrong", "box_mass_median"] == pytest.approx(0.85)


def test_probe_accuracy_per_tap():
    df = HAND.assign(probe0_prediction=["dog", "dog", "dog", "dog", "dog"], probe1_prediction=HAND["label"])
    assert analysis.probe_accuracy(df, 2) == [pytest.approx(2 / 5), pytest.approx(1.0)]


def test_faithfulness_summary_averages_scored_rows_only():
    df = HAND.copy()
    for m in ("cam", "random", "gaussian"):
        for s in ("deletion_auc", "insertion_auc", "average_drop", "increase"):
            df[f"{s}_{m}"] = np.nan
    df.loc[0, "deletion_auc_cam"] = 0.2
    df.loc[1, "deletion_auc_cam"] = 0.4
    for c in [c for c in df.columns if c.endswith(("_random", "_gaussian")) or c.startswith(("insertion", "average",
                                                                                             "increase"))]:
        df.loc[[0, 1], c] = 0.5
    out = analysis.faithfulness_summary(df).set_index("method")
    assert out.loc["cam", "n"] == 2
    assert out.loc["cam", "deletion_auc"] == pytest.approx(0.3)
