"""The results table and everything computed from it: accuracy, confusion, calibration, errors, attention,
out-of-distribution scores, the leaderboard of map methods and the sanity check. Numbers only; the pages and
the story's sentences are made from these (pages.py, findings.py). Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .datasets import CLASSES

ECE_BINS = 10  # equal-width confidence bins of the reliability diagram and the ECE
BOOTSTRAP = 2000  # resamples of the photos for every confidence interval
RESULT_COLUMNS = ["set", "file", "label", "prediction", "p_cat", "p_dog", "correct", "neither", "tag", "page",
                  "status"]
TAGS = ("correct", "wrong", "neither", "unlabeled")
BASELINES = ("random", "gaussian")  # the leaderboard's reference maps (faithfulness.py draws them)


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


def bootstrap_mean(values: np.ndarray, seed: int, n: int = BOOTSTRAP) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95% percentile interval over n resamples of the values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    means = np.random.default_rng(seed).choice(values, size=(n, values.size), replace=True).mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)


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


# ---- verdicts: each comparison that matters, decided or not ----------------------------------------------------

ALPHA = 0.05  # family-wise: every interval of a board's comparisons at once
# Two methods whose mean insertion minus deletion differ by less than MARGIN (AUC units, the score's range is
# -1..1) are called equivalent. Why 0.03: it is about a tenth of what separates a good map from the random one
# on this model (0.2 to 0.3, README), so a reader choosing between two equivalent maps loses little; and it is
# above the error the curves' few steps add to a paired difference (measured against 48 steps on 3 photos x 6
# maps: median 0.022 at the default 8 steps; its 95th percentile, 0.054, is not below it, so "equivalent" speaks
# of the 8-step score).
MARGIN = 0.03
# Fewer photos than this decide nothing: a percentile bootstrap of 2 or 3 values has a handful of distinct means,
# and its intervals are far too narrow (a real build on 2 photos called every method "better" than random).
MIN_PHOTOS = 10
TAIL_RESAMPLES = 25  # bootstrap resamples in each tail of the strictest interval (sets the number of resamples)


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str  # a method or a baseline
    n: int  # photos both were scored on
    mean: float  # mean of a - b (insertion minus deletion)
    lo: float
    hi: float  # the interval at the corrected level
    verdict: str  # better | worse | equivalent | undecided | same map
    needed: float  # photos a decision would need if the mean and spread held (interval ~ 1 / sqrt(n)); nan


def decide(mean: float, lo: float, hi: float, margin: float = MARGIN) -> str:
    """One comparison's verdict from its interval: inside +-margin = equivalent, else above 0 = better, below 0 =
    worse, else undecided."""
    if -margin < lo and hi < margin:
        return "equivalent"
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "undecided"


def photos_needed(n: int, mean: float, lo: float, hi: float, margin: float = MARGIN) -> float:
    """Photos at which the interval (its half width shrinking as 1 / sqrt(n)) would decide, if the mean stayed:
    the sooner of clearing zero (better or worse) and fitting inside the margin (equivalent)."""
    half = (hi - lo) / 2
    if half <= 0:
        return float(n)
    mu = abs(mean)
    ways = [n * (half / mu) ** 2] if mu > 0 else []
    if mu < margin:
        ways.append(n * (half / (margin - mu)) ** 2)
    return float(np.ceil(min(ways))) if ways else float("inf")


def paired_intervals(diffs: np.ndarray, alpha: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means and (1 - alpha) percentile bootstrap intervals of each column of diffs (n photos, m comparisons),
    from the same resamples of the photos for every column. Enough resamples that each tail holds
    TAIL_RESAMPLES of them."""
    n, m = diffs.shape
    b = int(min(400_000, max(BOOTSTRAP, np.ceil(2 * TAIL_RESAMPLES / alpha))))
    rng = np.random.default_rng(seed)
    means = np.empty((b, m))
    for a in range(0, b, 4096):  # (resamples, photos) counts, a block at a time
        k = min(4096, b - a)
        counts = rng.multinomial(n, np.full(n, 1 / n), size=k)
        means[a:a + k] = counts @ diffs / n
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=0)
    return diffs.mean(0), lo, hi


def comparisons(scores: pd.DataFrame, tap: int, seed: int, looks: int = 1, margin: float = MARGIN,
                alpha: float = ALPHA) -> list[Comparison]:
    """At `tap`, pooled over sets, on insertion minus deletion: every method against each baseline, and each pair
    of methods (the better-scoring one first). Paired over the photos all were scored on. Bonferroni: each
    interval is at level 1 - alpha / (comparisons x looks), `looks` being how many times a stopping rule may
    look at the data, so that all the verdicts of all the looks hold together with probability 1 - alpha. Maps
    equal on every photo (scored once, e.g. Grad-CAM and HiResCAM at a linear head) are "same map" and count
    for nothing."""
    d = scores[scores["tap"] == tap]
    if d.empty:
        return []
    wide = (d.assign(c=d["insertion_auc"] - d["deletion_auc"])
            .pivot_table(index=["set", "file"], columns="method", values="c", aggfunc="first").dropna())
    if wide.empty:
        return []
    methods = sorted((m for m in wide.columns if m not in BASELINES), key=lambda m: -wide[m].mean())
    pairs = [(m, b) for m in methods for b in BASELINES if b in wide.columns]
    pairs += [(a, b) for i, a in enumerate(methods) for b in methods[i + 1:]]
    # Maps equal on every photo are one map: compared once (their first in `methods` stands for all of them).
    rep = {}
    for m in wide.columns:
        rep[m] = next(r for r in wide.columns if (wide[r] == wide[m]).all())
    live = list(dict.fromkeys((rep[a], rep[b]) for a, b in pairs if rep[a] != rep[b]))
    alpha_each = alpha / max(1, len(live) * looks)
    decided = {}
    if live:
        diffs = np.stack([(wide[a] - wide[b]).to_numpy() for a, b in live], axis=1)
        mean, lo, hi = paired_intervals(diffs, alpha_each, seed)
        for (a, b), mu, low, high in zip(live, mean, lo, hi):
            v = decide(mu, low, high, margin) if len(wide) >= MIN_PHOTOS else "undecided"
            need = max(MIN_PHOTOS, photos_needed(len(wide), mu, low, high, margin)) if v == "undecided" \
                else float("nan")
            decided[a, b] = (float(mu), float(low), float(high), v, need)
    out = []
    for a, b in pairs:
        if rep[a] == rep[b]:
            out.append(Comparison(a, b, len(wide), 0.0, 0.0, 0.0, "same map", float("nan")))
        else:
            out.append(Comparison(a, b, len(wide), *decided[rep[a], rep[b]]))
    return out


def live_comparisons(comps: list[Comparison]) -> int:
    """How many distinct comparisons the Bonferroni correction counted (maps equal on every photo are one)."""
    return len({(c.mean, c.lo, c.hi, c.verdict) for c in comps if c.verdict != "same map"})


def comparison_table(comps: list[Comparison]) -> pd.DataFrame:
    return pd.DataFrame([c.__dict__ for c in comps],
                        columns=["a", "b", "n", "mean", "lo", "hi", "verdict", "needed"])


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
