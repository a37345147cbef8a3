"""The results table and everything computed from it: accuracy, confusion, calibration, errors, attention,
out-of-distribution scores, the leaderboard of map methods and the sanity check. Numbers only; the pages and
the story's sentences are made from these (the pages, findings.py). Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.data.scan import CLASSES
from generator.evaluate.stats import BASELINES, BOOTSTRAP, bootstrap_mean, comparisons
from generator.frames import pd

ECE_BINS = 10  # equal-width confidence bins of the reliability diagram and the ECE
RESULT_COLUMNS = ["set", "file", "label", "prediction", "p_cat", "p_dog", "correct", "neither", "tag", "page",
                  "status"]
TAGS = ("correct", "wrong", "neither", "unlabeled")


def confidence(df: pd.DataFrame) -> pd.Series:
    """Probability of the predicted class."""
    return df[[f"p_{c}" for c in CLASSES]].max(axis=1)


def labeled_ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & (df["label"].isin(CLASSES))]


def accuracy(df: pd.DataFrame, column: str = "prediction") -> float:
    d = labeled_ok(df)
    return float((d[column] == d["label"]).mean()) if len(d) else float("nan")


def confusion(df: pd.DataFrame) -> pd.DataFrame:
    """Counts, rows = true label, columns = prediction, over CLASSES (zeros included)."""
    d = labeled_ok(df)
    table = pd.crosstab(d["label"], d["prediction"]).reindex(index=list(CLASSES), columns=list(CLASSES))
    return table.fillna(0).astype(int)


def tag_rows(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Columns correct (yes/no/''), neither (yes/no/'') and tag (correct, wrong, neither, unlabeled, skipped).

    'neither': the backbone's summed cat+dog probability is below `threshold`: whatever the two-class head
    says, the photo is no cat or dog to the network. It takes precedence over correct/wrong as the tag;
    `correct` still says whether the head's answer matched the label."""
    ok = (df["status"] == "ok") & (df["prediction"] != "")
    labeled = ok & df["label"].isin(CLASSES)
    right = df["prediction"] == df["label"]
    neither = ok & (df["pet_p"] < threshold)
    out = df.copy()
    out["correct"] = np.where(labeled, np.where(right, "yes", "no"), "")
    out["neither"] = np.where(ok, np.where(neither, "yes", "no"), "")
    out["tag"] = np.select([~ok, neither, labeled & right, labeled], ["skipped", "neither", "correct", "wrong"],
                           "unlabeled")
    return out


@dataclass(frozen=True)
class Reliability:
    """Calibration of the predicted-class confidence in equal-width bins over [0.5, 1] (two classes)."""

    edges: np.ndarray  # (n_bins + 1,)
    counts: np.ndarray  # (n_bins,)
    accuracy: np.ndarray  # (n_bins,), NaN where empty
    confidence: np.ndarray  # (n_bins,), NaN where empty
    ece: float  # sum_b |acc_b - conf_b| * n_b / N (Guo et al. 2017)


def reliability(conf: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS, low: float | None = None) -> Reliability:
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    low = 1.0 / len(CLASSES) if low is None else low
    edges = np.linspace(low, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    acc = np.full(n_bins, np.nan)
    mean_conf = np.full(n_bins, np.nan)
    for b in range(n_bins):
        m = which == b
        if m.any():
            acc[b] = correct[m].mean()
            mean_conf[b] = conf[m].mean()
    n = max(len(conf), 1)
    filled = counts > 0
    ece = float(np.sum(np.abs(acc[filled] - mean_conf[filled]) * counts[filled]) / n) if len(conf) else float("nan")
    return Reliability(edges, counts, acc, mean_conf, ece)


def set_reliability(df: pd.DataFrame, n_bins: int = ECE_BINS) -> Reliability:
    d = labeled_ok(df)
    return reliability(confidence(d).to_numpy(), (d["prediction"] == d["label"]).to_numpy(), n_bins)


def mistakes(df: pd.DataFrame) -> pd.DataFrame:
    """Misclassified photos, most confident first."""
    d = labeled_ok(df)
    wrong = d[d["prediction"] != d["label"]]
    return wrong.assign(confidence=confidence(wrong)).sort_values("confidence", ascending=False, kind="stable")


def near_misses(df: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    """Correct predictions with the lowest confidence."""
    d = labeled_ok(df)
    right = d[d["prediction"] == d["label"]]
    return right.assign(confidence=confidence(right)).sort_values("confidence", kind="stable").head(n)


SIGNED_PERCENTILE = 99  # the signed maps' scale: this percentile of the set's photos (the page says so)


def signed_scales(df: pd.DataFrame, n_taps: int) -> list[float]:
    """One scale per tap for a set's signed evidence maps: the SIGNED_PERCENTILE-th percentile over its photos of
    the largest |CAM_pred - CAM_other|, so one photo's colours compare with another's and a few outliers do not wash
    out the rest."""
    out = []
    for t in range(n_taps):
        col = f"signed{t}_absmax"
        v = df[col].dropna().to_numpy() if col in df else np.zeros(0)
        scale = float(np.percentile(v, SIGNED_PERCENTILE)) if v.size else 0.0
        out.append(scale if scale > 0 else 1.0)
    return out


def attention_by_outcome(df: pd.DataFrame) -> pd.DataFrame:
    """Median (and mean) CAM box area share and in-box mass share, for correct vs wrong predictions."""
    d = labeled_ok(df)
    cols = ["outcome", "n", "box_area_median", "box_area_mean", "box_mass_median", "box_mass_mean"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    outcome = np.where(d["prediction"] == d["label"], "correct", "wrong")
    g = d.assign(outcome=outcome).groupby("outcome")
    out = pd.DataFrame({
        "n": g.size(),
        "box_area_median": g["box_area"].median(),
        "box_area_mean": g["box_area"].mean(),
        "box_mass_median": g["box_mass"].median(),
        "box_mass_mean": g["box_mass"].mean(),
    }).reset_index()
    return out[cols]


def probe_accuracy(df: pd.DataFrame, n_taps: int) -> list[float]:
    """Accuracy of each tap's linear probe on the labeled photos of `df`."""
    return [accuracy(df, f"probe{t}_prediction") for t in range(n_taps)]


def set_summary(df: pd.DataFrame) -> dict:
    """Counts and scores of one set, for the overview. Coverage and covered accuracy leave out 'neither'."""
    ok = df[df["status"] == "ok"]
    lab = labeled_ok(df)
    summary = {
        "files": int(len(df)),
        "ok": int(len(ok)),
        "skipped": int(len(df) - len(ok)),
        "labeled": int(len(lab)),
        "accuracy": accuracy(df) if len(lab) else None,
        "wrong": int((lab["prediction"] != lab["label"]).sum()) if len(lab) else 0,
        "neither": int((ok["tag"] == "neither").sum()) if "tag" in ok else 0,
    }
    if len(lab) and "tag" in lab:
        covered = lab[lab["tag"] != "neither"]
        summary["coverage"] = len(covered) / len(lab)
        summary["covered_accuracy"] = float((covered["prediction"] == covered["label"]).mean()) if len(covered) \
            else None
    for c in CLASSES:
        summary[f"predicted_{c}"] = int((ok["prediction"] == c).sum()) if len(ok) else 0
    return summary


def confusion_cells(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """The photos of each confusion-matrix cell (label, prediction)."""
    d = labeled_ok(df)
    return {(t, p): d[(d["label"] == t) & (d["prediction"] == p)] for t in CLASSES for p in CLASSES}


def ood_table(df: pd.DataFrame) -> pd.DataFrame:
    """Photos by how sure the cat/dog head is (max softmax probability, MSP), most sure first."""
    d = df[df["status"] == "ok"]
    d = d.assign(msp=confidence(d))
    return d.sort_values("msp", ascending=False, kind="stable")


# ---- out of distribution: is it a cat or a dog at all? --------------------------------------------------------

# Each score, oriented so that higher = more like a cat or dog photo.
OOD_SCORES = {
    "pet_p": lambda d: d["pet_p"],
    "msp": confidence,
    "neg_energy": lambda d: -d["energy"],
}


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half): the area under
    the ROC curve, via the Mann-Whitney U statistic."""
    from scipy import stats  # here: importing scipy.stats costs half a second that a re-render need not pay

    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if not len(positive) or not len(negative):
        return float("nan")
    return float(stats.mannwhitneyu(positive, negative, alternative="two-sided").statistic
                 / (len(positive) * len(negative)))


def keep_threshold(train_scores: np.ndarray, keep: float) -> float:
    """The largest threshold that keeps at least `keep` of the training photos at or above it."""
    values = np.sort(np.asarray(train_scores, dtype=np.float64))
    if values.size == 0:
        return float("-inf")
    may_drop = int(np.floor((1.0 - keep) * values.size + 1e-9))
    return float(values[min(may_drop, values.size - 1)])


def ood_separation(results: pd.DataFrame, train: pd.DataFrame, labeled_sets: list[str], unrelated: str,
                   keep: float) -> pd.DataFrame:
    """For each score and labeled set: AUROC against the unrelated set, the threshold that keeps `keep` of the
    training photos, and at it the share of the unrelated photos flagged and of the set's photos flagged."""
    ok = results[results["status"] == "ok"]
    neg = ok[ok["set"] == unrelated]
    train_ok = train[(train["status"] == "ok") & train["pet_p"].notna()]
    rows = []
    for score, of in OOD_SCORES.items():
        threshold = keep_threshold(of(train_ok).to_numpy(), keep)
        neg_s = of(neg).to_numpy() if len(neg) else np.zeros(0)
        for s in labeled_sets:
            pos_s = of(ok[ok["set"] == s]).to_numpy()
            rows.append({"score": score, "set": s, "n_set": len(pos_s), "n_unrelated": len(neg_s),
                         "auroc": auroc(pos_s, neg_s), "threshold": threshold,
                         "unrelated_flagged": float((neg_s < threshold).mean()) if len(neg_s) else float("nan"),
                         "set_flagged": float((pos_s < threshold).mean()) if len(pos_s) else float("nan")})
    return pd.DataFrame(rows)


# ---- the leaderboard: which map explains the model? -----------------------------------------------------------


def leaderboard(scores: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One row per (set, method, tap): n photos, each score's mean and 95% interval, and the combined score
    insertion - deletion (higher = the map's order finds what the model uses), with its interval.

    The set "all" pools every set's photos."""
    if scores.empty:
        return pd.DataFrame()
    scores = scores.assign(combined=scores["insertion_auc"] - scores["deletion_auc"])
    pooled = scores.assign(set="all")
    rows = []
    for (s, method, tap), g in pd.concat([scores, pooled]).groupby(["set", "method", "tap"], sort=False):
        row = {"set": s, "method": method, "tap": int(tap), "n": len(g)}
        for col in ("deletion_auc", "insertion_auc", "average_drop", "increase", "combined"):
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = bootstrap_mean(g[col].to_numpy(), seed)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Verdict:
    """What the leaderboard says at the last tap, pooled over all sets."""

    best: str  # method with the highest combined score
    n: int  # photos
    tied: tuple[str, ...]  # methods whose difference from the best has a 95% interval that includes 0
    beaten: tuple[str, ...]  # methods clearly below the best
    beats_baselines: bool  # the best is clearly above both baselines


def verdict(scores: pd.DataFrame, last_tap: int, seed: int, board: pd.DataFrame | None = None,
            looks: int = 1) -> Verdict | None:
    """`board`: leaderboard(scores, seed) when the caller has it already (the bootstrap is the costly part).
    Ties, wins and the baselines are read off `comparisons` (the corrected intervals the verdicts table shows),
    so that the sentence and the table agree."""
    board = leaderboard(scores, seed) if board is None else board
    if board.empty:
        return None
    last = board[(board["set"] == "all") & (board["tap"] == last_tap)]
    methods = last[~last["method"].isin(BASELINES)]
    if methods.empty:
        return None
    best = str(methods.sort_values("combined", ascending=False, kind="stable").iloc[0]["method"])
    said = {}
    for c in comparisons(scores, last_tap, seed, looks):
        said[c.a, c.b] = c.verdict
        said[c.b, c.a] = {"better": "worse", "worse": "better"}.get(c.verdict, c.verdict)
    tied, beaten = [], []
    for m in methods["method"]:
        if m != best:
            (beaten if said.get((best, m)) == "better" else tied).append(str(m))
    above = all(said.get((best, b)) == "better" for b in BASELINES)
    return Verdict(best, int(methods.iloc[0]["n"]), tuple(tied), tuple(beaten), above)


def sanity_summary(sanity: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Median Spearman correlation (original vs randomised map) per method and randomisation, with its 95%
    bootstrap interval over the photos, and the share of photos whose map barely changed (|rho| >= 0.5)."""
    columns = ["method", "randomised", "n", "median", "median_lo", "median_hi", "unchanged"]
    if sanity.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (method, how), g in sanity.groupby(["method", "randomised"], sort=False)["spearman"]:
        v = g.dropna().to_numpy()
        lo = hi = float("nan")
        if v.size:
            idx = np.random.default_rng(seed).integers(0, v.size, size=(BOOTSTRAP, v.size))
            lo, hi = (float(q) for q in np.percentile(np.median(v[idx], axis=1), [2.5, 97.5]))
        rows.append({"method": method, "randomised": how, "n": int(v.size),
                     "median": float(np.median(v)) if v.size else float("nan"), "median_lo": lo, "median_hi": hi,
                     "unchanged": float((np.abs(v) >= 0.5).mean()) if v.size else float("nan")})
    return pd.DataFrame(rows, columns=columns)
