"""Numbers of the error analysis, on small tables whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from generator.frames import pd
from generator.report import analysis


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


def test_tags_put_neither_before_right_and_wrong():
    df = HAND.assign(pet_p=[0.9, 0.05, 0.9, 0.2, 0.01], prediction=HAND["prediction"])
    tagged = analysis.tag_rows(df, threshold=0.1)
    assert list(tagged["tag"]) == ["correct", "neither", "wrong", "correct", "neither"]
    assert list(tagged["correct"]) == ["yes", "yes", "no", "yes", "no"]  # what the head said, still recorded
    assert list(tagged["neither"]) == ["no", "yes", "no", "no", "yes"]
    # the tag flips when the sum crosses the threshold
    assert list(analysis.tag_rows(df, threshold=0.04)["tag"]) == ["correct", "correct", "wrong", "correct", "neither"]
    unlabeled = df.assign(label="")
    assert set(analysis.tag_rows(unlabeled, 0.1)["tag"]) == {"unlabeled", "neither"}
    counts = analysis.set_summary(tagged)
    assert counts["neither"] == 2 and counts["coverage"] == pytest.approx(3 / 5)
    assert counts["covered_accuracy"] == pytest.approx(2 / 3)


def test_keep_threshold_keeps_the_share_asked_for():
    train = np.arange(1, 201) / 200.0  # 0.005 .. 1.0
    t = analysis.keep_threshold(train, 0.995)
    assert (train >= t).mean() >= 0.995 and (train >= np.nextafter(t, 2)).mean() < 0.995
    assert analysis.keep_threshold(train, 1.0) == train.min()


def test_auroc_by_hand():
    assert analysis.auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert analysis.auroc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert analysis.auroc([0.5, 0.9], [0.5, 0.1]) == pytest.approx((1 + 0.5 + 1 + 1) / 4)  # a tie counts half
    assert np.isnan(analysis.auroc([], [0.1]))


def test_ood_separation_uses_training_photos_for_the_threshold():
    rng = np.random.default_rng(0)
    pets = pd.DataFrame({"set": "test", "status": "ok", "pet_p": rng.uniform(0.3, 1, 50), "energy": -10.0,
                         "p_cat": 0.9, "p_dog": 0.1})
    other = pd.DataFrame({"set": "unrelated", "status": "ok", "pet_p": rng.uniform(0, 0.2, 10), "energy": -8.0,
                          "p_cat": 0.3, "p_dog": 0.7})
    train = pd.DataFrame({"set": "train", "status": "ok", "pet_p": np.linspace(0.25, 1, 100), "energy": -10.0,
                          "p_cat": 0.9, "p_dog": 0.1})
    out = analysis.ood_separation(pd.concat([pets, other]), train, ["test"], "unrelated", 0.99).set_index("score")
    assert out.loc["pet_p", "auroc"] == 1.0 and out.loc["pet_p", "unrelated_flagged"] == 1.0
    assert out.loc["pet_p", "threshold"] == pytest.approx(analysis.keep_threshold(train["pet_p"], 0.99))
    # a different unrelated set does not move the threshold (it is chosen on the training photos only)
    moved = analysis.ood_separation(pd.concat([pets, other.assign(pet_p=0.01)]), train, ["test"], "unrelated", 0.99)
    assert moved.set_index("score").loc["pet_p", "threshold"] == out.loc["pet_p", "threshold"]


def _scores(gap: float, n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.uniform(0.3, 0.7)
        for m, shift in (("cam", 0.0), ("gradcam", gap), ("random", 0.3), ("gaussian", 0.2)):
            rows.append({"set": "test", "file": f"f{i}", "method": m, "tap": 3, "deletion_auc": base + shift,
                         "insertion_auc": 0.9 - shift, "average_drop": 0.2, "increase": float(i % 2)})
    return pd.DataFrame(rows)


def test_leaderboard_means_and_intervals():
    board = analysis.leaderboard(_scores(0.05), seed=0)
    cam = board[(board["set"] == "all") & (board["method"] == "cam")].iloc[0]
    assert cam["n"] == 20 and cam["increase"] == pytest.approx(0.5)
    assert cam["deletion_auc_lo"] < cam["deletion_auc"] < cam["deletion_auc_hi"]
    assert cam["combined"] == pytest.approx(cam["insertion_auc"] - cam["deletion_auc"])
    assert set(board["set"]) == {"test", "all"}


def test_verdict_calls_a_tie_a_tie():
    clear = analysis.verdict(_scores(0.05), last_tap=3, seed=0)
    assert clear.best == "cam" and clear.beaten == ("gradcam",) and clear.tied == () and clear.beats_baselines
    # gradcam differs from cam by noise only: the paired interval includes zero
    noisy = _scores(0.0)
    rng = np.random.default_rng(1)
    mask = noisy["method"] == "gradcam"
    noisy.loc[mask, "deletion_auc"] += rng.normal(0, 0.05, mask.sum())
    tie = analysis.verdict(noisy, last_tap=3, seed=0)
    assert {tie.best} | set(tie.tied) == {"cam", "gradcam"}


def test_sanity_summary():
    df = pd.DataFrame({"method": ["cam"] * 3 + ["eigencam"] * 3, "randomised": "head",
                       "spearman": [0.1, -0.2, 0.05, 1.0, 0.99, 0.98]})
    out = analysis.sanity_summary(df).set_index("method")
    assert out.loc["cam", "median"] == pytest.approx(0.05) and out.loc["cam", "unchanged"] == 0.0
    assert out.loc["eigencam", "unchanged"] == 1.0
    for m in ("cam", "eigencam"):  # the median's bootstrap interval, within the values' range
        r = out.loc[m]
        assert df[df["method"] == m]["spearman"].min() <= r["median_lo"] <= r["median"] <= r["median_hi"]


def test_verdict_from_a_board_already_made_is_the_same_verdict():
    s = _scores(0.05)
    assert analysis.verdict(s, 3, 0, analysis.leaderboard(s, 0)) == analysis.verdict(s, 3, 0)


# ---- K classes -------------------------------------------------------------------------------------------------

THREE = ("ginger", "black", "tabby")


def table3(rows):
    """rows: (label, p_ginger, p_black, p_tabby); the prediction is the most probable class."""
    df = pd.DataFrame(rows, columns=["label", *(f"p_{c}" for c in THREE)])
    p = df[[f"p_{c}" for c in THREE]].to_numpy()
    df["prediction"] = [THREE[i] for i in p.argmax(1)]
    df["status"], df["set"] = "ok", "test"
    df["file"] = [f"f{i}.jpg" for i in range(len(df))]
    df["pet_p"], df["energy"] = 0.9, -10.0
    return df


HAND3 = table3([
    ("ginger", 0.8, 0.1, 0.1),
    ("ginger", 0.3, 0.2, 0.5),  # ginger called tabby, runner-up ginger
    ("ginger", 0.2, 0.1, 0.7),  # ginger called tabby
    ("black", 0.1, 0.6, 0.3),
    ("black", 0.5, 0.4, 0.1),   # black called ginger
    ("tabby", 0.1, 0.2, 0.7),
    ("", 0.4, 0.35, 0.25),      # unlabeled: counted nowhere below
])


def test_k_class_confusion_pairs_and_runner_up():
    m = analysis.confusion(HAND3, THREE)
    assert list(m.index) == list(m.columns) == list(THREE)  # the classes' order, not sorted
    assert m.to_numpy().tolist() == [[1, 0, 2], [1, 1, 0], [0, 0, 1]]
    pairs = analysis.confusion_pairs(HAND3, THREE)
    assert list(zip(pairs["label"], pairs["prediction"], pairs["n"])) == [("ginger", "tabby", 2),
                                                                          ("black", "ginger", 1)]
    assert pairs["share"].tolist() == pytest.approx([2 / 3, 1 / 2])
    assert list(analysis.runner_up(HAND3, THREE))[:3] == ["black", "ginger", "ginger"]
    assert analysis.accuracy(HAND3, classes=THREE) == pytest.approx(3 / 6)
    assert len(analysis.confusion_cells(HAND3, THREE)) == 9


def test_per_class_accuracy_and_calibration():
    pc = analysis.per_class(HAND3, THREE).set_index("cls")
    assert pc.loc["ginger", ["n", "right", "n_predicted"]].tolist() == [3, 1, 2]
    assert pc.loc["ginger", "accuracy"] == pytest.approx(1 / 3)
    assert pc.loc["ginger", "precision"] == pytest.approx(1 / 2)  # of the two called ginger, one is
    assert pc.loc["ginger", "confidence"] == pytest.approx((0.8 + 0.5) / 2)
    assert pc.loc["ginger", "calibration_gap"] == pytest.approx(0.65 - 0.5)
    assert pc.loc["tabby", "precision"] == pytest.approx(1 / 3)
    lo, hi = pc.loc["ginger", "accuracy_lo"], pc.loc["ginger", "accuracy_hi"]
    assert 0 < lo < 1 / 3 < hi < 1  # the Wilson interval holds the share
    z, n, p = 1.959964, 3, 1 / 3  # Wilson's interval as the textbooks write it
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (
        1 + z * z / n)
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-5)
    assert np.isnan(analysis.proportion_interval(0, 0)).all()


def test_k_class_reliability_starts_at_one_over_k():
    rel = analysis.set_reliability(HAND3, classes=THREE)
    assert rel.edges[0] == pytest.approx(1 / 3) and rel.counts.sum() == 6


def test_neither_from_the_heads_own_confidence_when_the_classes_are_not_cat_and_dog():
    assert analysis.neither_score(("cat", "dog")) == "pet_p" and analysis.neither_score(THREE) == "msp"
    tagged = analysis.tag_rows(HAND3, 0.55, THREE, "msp")
    # max probabilities 0.8 0.5 0.7 0.6 0.5 0.7 0.4: below 0.55 are rows 1, 4 and 6
    assert list(tagged["neither"]) == ["no", "yes", "no", "no", "yes", "no", "yes"]
    assert list(tagged["tag"]) == ["correct", "neither", "wrong", "correct", "neither", "correct", "neither"]
    summary = analysis.set_summary(tagged, THREE)
    assert summary["labeled"] == 6 and summary["predicted_tabby"] == 3 and summary["neither"] == 3


def test_the_msp_threshold_is_chosen_on_cross_validated_training_scores():
    """In-sample, a head is surer of its training photos than of new ones: where the build gives each training
    photo's cross-validated MSP (msp_cv), the threshold is chosen on that."""
    train = table3([("ginger", 0.98, 0.01, 0.01), ("black", 0.02, 0.97, 0.01), ("tabby", 0.01, 0.01, 0.98)])
    assert analysis.training_scores(train, "msp", THREE).tolist() == [0.98, 0.97, 0.98]
    honest = train.assign(msp_cv=[0.6, 0.7, 0.5])
    assert analysis.training_scores(honest, "msp", THREE).tolist() == [0.6, 0.7, 0.5]
    assert analysis.training_scores(honest, "pet_p", THREE).tolist() == [0.9, 0.9, 0.9]
