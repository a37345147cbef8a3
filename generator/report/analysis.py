"""The results table and everything computed from it: accuracy, confusion, calibration, errors, attention,
out-of-distribution scores, the leaderboard of map methods and the sanity check. Numbers only; the pages and
the story's sentences are made from these (the pages, findings.py). Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.data.scan import DEFAULT_CLASSES
from generator.evaluate.stats import BASELINES, BOOTSTRAP, bootstrap_mean, comparisons
from generator.frames import pd

ECE_BINS = 10  # equal-width confidence bins of the reliability diagram and the ECE
TAGS = ("correct", "wrong", "neither", "unlabeled")
Classes = tuple[str, ...]  # the names of the head's outputs, in order (RunFacts.classes)


def result_columns(classes: Classes) -> list[str]:
    """The first columns of results.csv: set, file, label, prediction, p_<class> of each class, then the tags."""
    return ["set", "file", "label", "prediction", *(f"p_{c}" for c in classes), "correct", "neither", "tag",
            "page", "status"]


RESULT_COLUMNS = result_columns(DEFAULT_CLASSES)


def confidence(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> pd.Series:
    """Probability of the predicted class."""
    return df[[f"p_{c}" for c in classes]].max(axis=1)


def runner_up(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> pd.Series:
    """The class of the second highest probability (for two classes: the other class)."""
    p = df[[f"p_{c}" for c in classes]].to_numpy(dtype=np.float64)
    if not len(p):
        return pd.Series([], index=df.index, dtype=object)
    second = np.argsort(-np.nan_to_num(p, nan=-1.0), axis=1, kind="stable")[:, 1]
    return pd.Series(np.asarray(classes, dtype=object)[second], index=df.index)


def labeled_ok(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> pd.DataFrame:
    return df[(df["status"] == "ok") & (df["label"].isin(classes))]


def accuracy(df: pd.DataFrame, column: str = "prediction", classes: Classes = DEFAULT_CLASSES) -> float:
    d = labeled_ok(df, classes)
    return float((d[column] == d["label"]).mean()) if len(d) else float("nan")


def confusion(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> pd.DataFrame:
    """K x K counts, rows = true label, columns = prediction, over `classes` in order (zeros included)."""
    d = labeled_ok(df, classes)
    table = pd.crosstab(d["label"], d["prediction"]).reindex(index=list(classes), columns=list(classes))
    return table.fillna(0).astype(int)


def confusion_pairs(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> pd.DataFrame:
    """The off-diagonal cells of the confusion matrix that hold photos, most photos first (ties in class order):
    columns label, prediction, n (photos), share (of the label's photos)."""
    table = confusion(df, classes)
    order = {c: k for k, c in enumerate(classes)}
    rows = [{"label": t, "prediction": p, "n": int(table.at[t, p]), "share": table.at[t, p] / table.loc[t].sum()}
            for t in classes for p in classes if t != p and table.at[t, p] > 0]
    out = pd.DataFrame(rows, columns=["label", "prediction", "n", "share"])
    if out.empty:
        return out
    out = out.assign(_t=out["label"].map(order), _p=out["prediction"].map(order))
    return out.sort_values(["n", "_t", "_p"], ascending=[False, True, True], kind="stable") \
        .drop(columns=["_t", "_p"]).reset_index(drop=True)


def proportion_interval(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n (NaN, NaN when n = 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest  # here: importing scipy.stats costs half a second that a re-render need not pay

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def per_class(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> pd.DataFrame:
    """One row per class: n photos labeled with it, the share of them called right (recall) with its 95% Wilson
    interval; n_predicted photos called it, the share of those right (precision) and their mean confidence, and
    calibration gap = mean confidence - precision (0 = calibrated, > 0 = overconfident when it says this class)."""
    d = labeled_ok(df, classes)
    conf = confidence(d, classes)
    rows = []
    for c in classes:
        mine = d["label"] == c
        said = d["prediction"] == c
        k, n = int((mine & said).sum()), int(mine.sum())
        lo, hi = proportion_interval(k, n)
        n_pred = int(said.sum())
        precision = k / n_pred if n_pred else float("nan")
        mean_conf = float(conf[said].mean()) if n_pred else float("nan")
        rows.append({"cls": c, "n": n, "right": k, "accuracy": k / n if n else float("nan"), "accuracy_lo": lo,
                     "accuracy_hi": hi, "n_predicted": n_pred, "precision": precision, "confidence": mean_conf,
                     "calibration_gap": mean_conf - precision})
    return pd.DataFrame(rows)


def tag_rows(df: pd.DataFrame, threshold: float, classes: Classes = DEFAULT_CLASSES,
             score: str = "pet_p") -> pd.DataFrame:
    """Columns correct (yes/no/''), neither (yes/no/'') and tag (correct, wrong, neither, unlabeled, skipped).

    'neither': the photo's `score` (neither_score: the backbone's summed cat+dog probability for cat and dog, the
    head's maximum softmax probability for other classes) is below `threshold`: whatever the head says, the photo
    is none of the classes to the network. It takes precedence over correct/wrong as the tag; `correct` still
    says whether the head's answer matched the label."""
    ok = (df["status"] == "ok") & (df["prediction"] != "")
    labeled = ok & df["label"].isin(classes)
    right = df["prediction"] == df["label"]
    neither = ok & (score_values(df, score, classes) < threshold)
    out = df.copy()
    out["correct"] = np.where(labeled, np.where(right, "yes", "no"), "")
    out["neither"] = np.where(ok, np.where(neither, "yes", "no"), "")
    out["tag"] = np.select([~ok, neither, labeled & right, labeled], ["skipped", "neither", "correct", "wrong"],
                           "unlabeled")
    return out


@dataclass(frozen=True)
class Reliability:
    """Calibration of the predicted-class confidence in equal-width bins over [1/K, 1] (K classes)."""

    edges: np.ndarray  # (n_bins + 1,)
    counts: np.ndarray  # (n_bins,)
    accuracy: np.ndarray  # (n_bins,), NaN where empty
    confidence: np.ndarray  # (n_bins,), NaN where empty
    ece: float  # sum_b |acc_b - conf_b| * n_b / N (Guo et al. 2017)


def reliability(conf: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS, low: float = 0.5) -> Reliability:
    """low: the least confidence a prediction can have, 1/K for K classes."""
    conf = np.asarray(conf, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
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


def set_reliability(df: pd.DataFrame, n_bins: int = ECE_BINS, classes: Classes = DEFAULT_CLASSES) -> Reliability:
    d = labeled_ok(df, classes)
    return reliability(confidence(d, classes).to_numpy(), (d["prediction"] == d["label"]).to_numpy(), n_bins,
                       1.0 / len(classes))


def mistakes(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> pd.DataFrame:
    """Misclassified photos, most confident first."""
    d = labeled_ok(df, classes)
    wrong = d[d["prediction"] != d["label"]]
    return wrong.assign(confidence=confidence(wrong, classes)).sort_values("confidence", ascending=False,
                                                                          kind="stable")


def near_misses(df: pd.DataFrame, n: int = 12, classes: Classes = DEFAULT_CLASSES) -> pd.DataFrame:
    """Correct predictions with the lowest confidence."""
    d = labeled_ok(df, classes)
    right = d[d["prediction"] == d["label"]]
    return right.assign(confidence=confidence(right, classes)).sort_values("confidence", kind="stable").head(n)


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


def attention_by_outcome(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> pd.DataFrame:
    """Median (and mean) CAM box area share and in-box mass share, for correct vs wrong predictions."""
    d = labeled_ok(df, classes)
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


def probe_accuracy(df: pd.DataFrame, n_taps: int, classes: Classes = DEFAULT_CLASSES) -> list[float]:
    """Accuracy of each tap's linear probe on the labeled photos of `df`."""
    return [accuracy(df, f"probe{t}_prediction", classes) for t in range(n_taps)]


def set_summary(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> dict:
    """Counts and scores of one set, for the overview. Coverage and covered accuracy leave out 'neither'."""
    ok = df[df["status"] == "ok"]
    lab = labeled_ok(df, classes)
    summary = {
        "files": int(len(df)),
        "ok": int(len(ok)),
        "skipped": int(len(df) - len(ok)),
        "labeled": int(len(lab)),
        "accuracy": accuracy(df, classes=classes) if len(lab) else None,
        "wrong": int((lab["prediction"] != lab["label"]).sum()) if len(lab) else 0,
        "neither": int((ok["tag"] == "neither").sum()) if "tag" in ok else 0,
    }
    if len(lab) and "tag" in lab:
        covered = lab[lab["tag"] != "neither"]
        summary["coverage"] = len(covered) / len(lab)
        summary["covered_accuracy"] = float((covered["prediction"] == covered["label"]).mean()) if len(covered) \
            else None
    for c in classes:
        summary[f"predicted_{c}"] = int((ok["prediction"] == c).sum()) if len(ok) else 0
    return summary


def confusion_cells(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> dict[tuple[str, str], pd.DataFrame]:
    """The photos of each confusion-matrix cell (label, prediction)."""
    d = labeled_ok(df, classes)
    return {(t, p): d[(d["label"] == t) & (d["prediction"] == p)] for t in classes for p in classes}


def ood_table(df: pd.DataFrame, classes: Classes = DEFAULT_CLASSES) -> pd.DataFrame:
    """Photos by how sure the class head is (max softmax probability, MSP), most sure first."""
    d = df[df["status"] == "ok"]
    d = d.assign(msp=confidence(d, classes))
    return d.sort_values("msp", ascending=False, kind="stable")


# ---- out of distribution: is it a cat or a dog at all? --------------------------------------------------------

# Each score, oriented so that higher = more like a photo of one of the classes; called with (rows, classes).
OOD_SCORES = {
    "pet_p": lambda d, _classes: d["pet_p"],
    "msp": confidence,
    "neg_energy": lambda d, _classes: -d["energy"],
}


def neither_score(classes: Classes, imagenet: bool = True) -> str:
    """The score that decides 'neither': the backbone's own ImageNet probability of a cat or dog (pet_p) when the
    classes are cat and dog, else the class head's maximum softmax probability (msp): ImageNet's classes say
    nothing of whether a photo is one of someone else's classes. imagenet False (a user's own classifier, which
    has no ImageNet head): msp whatever the classes."""
    return "pet_p" if imagenet and set(classes) == set(DEFAULT_CLASSES) else "msp"


def score_values(df: pd.DataFrame, score: str, classes: Classes) -> pd.Series:
    """One of OOD_SCORES for each row of `df` (higher = more like the classes)."""
    return OOD_SCORES[score](df, classes)


def training_scores(train: pd.DataFrame, score: str, classes: Classes) -> pd.Series:
    """The training photos' `score`, as a threshold is chosen on: for msp the cross-validated one (column msp_cv,
    from the head fitted without the photo's fold) where the build has it, since the head fitted on a photo is
    surer of it than of any new photo (on the 37 breeds the in-sample threshold tagged 82 of 111 test photos)."""
    if score == "msp" and "msp_cv" in train and train["msp_cv"].notna().any():
        return train["msp_cv"]
    return score_values(train, score, classes)


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
                   keep: float, classes: Classes = DEFAULT_CLASSES) -> pd.DataFrame:
    """For each score and labeled set: AUROC against the unrelated set, the threshold that keeps `keep` of the
    training photos, and at it the share of the unrelated photos flagged and of the set's photos flagged."""
    ok = results[results["status"] == "ok"]
    neg = ok[ok["set"] == unrelated]
    train_ok = train[(train["status"] == "ok") & train["pet_p"].notna()]
    rows = []
    for score, of in OOD_SCORES.items():
        threshold = keep_threshold(training_scores(train_ok, score, classes).dropna().to_numpy(), keep)
        neg_s = of(neg, classes).to_numpy() if len(neg) else np.zeros(0)
        for s in labeled_sets:
            pos_s = of(ok[ok["set"] == s], classes).to_numpy()
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
    against: tuple[tuple[str, str], ...] = ()  # (baseline, the best's verdict against it), as the table says

    @property
    def beats_baselines(self) -> bool:
        """The best is clearly above both baselines."""
        said = dict(self.against)
        return all(said.get(b) == "better" for b in BASELINES)


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
    against = tuple((b, said[best, b]) for b in BASELINES if (best, b) in said)
    return Verdict(best, int(methods.iloc[0]["n"]), tuple(tied), tuple(beaten), against)


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
