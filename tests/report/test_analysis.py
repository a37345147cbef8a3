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
