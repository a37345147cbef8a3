"""The results table and everything computed from it: accuracy, confusion, calibration, errors, attention."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .datasets import CLASSES

ECE_BINS = 10  # equal-width confidence bins of the reliability diagram and the ECE
RESULT_COLUMNS = ["set", "file", "label", "prediction", "p_cat", "p_dog", "correct", "page", "status"]


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
    if d.empty:
        return pd.DataFrame(columns=["outcome", "n", "box_area_median", "box_mass_median"])
    outcome = np.where(d["prediction"] == d["label"], "correct", "wrong")
    g = d.assign(outcome=outcome).groupby("outcome")
    out = pd.DataFrame({
        "n": g.size(),
        "box_area_median": g["box_area"].median(),
        "box_area_mean": g["box_area"].mean(),
        "box_mass_median": g["box_mass"].median(),
        "box_mass_mean": g["box_mass"].mean(),
    }).reset_index()
    return out


def probe_accuracy(df: pd.DataFrame, n_taps: int) -> list[float]:
    """Accuracy of each tap's linear probe on the labeled photos of `df`."""
    return [accuracy(df, f"probe{t}_prediction") for t in range(n_taps)]


def set_summary(df: pd.DataFrame) -> dict:
    """Counts and scores of one set, for the index page."""
    ok = df[df["status"] == "ok"]
    lab = labeled_ok(df)
    summary = {
        "files": int(len(df)),
        "ok": int(len(ok)),
        "skipped": int(len(df) - len(ok)),
        "labeled": int(len(lab)),
        "accuracy": accuracy(df) if len(lab) else None,
        "wrong": int((lab["prediction"] != lab["label"]).sum()) if len(lab) else 0,
    }
    for c in CLASSES:
        summary[f"predicted_{c}"] = int((ok["prediction"] == c).sum()) if len(ok) else 0
    return summary


def faithfulness_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of each perturbation score per method over the scored photos of `df` (rows = methods)."""
    from .faithfulness import METHODS, SCORES

    cols = [f"{s}_{m}" for m in METHODS for s in SCORES]
    if not set(cols) <= set(df.columns):
        return pd.DataFrame(columns=["method", "n", *SCORES])
    scored = df.dropna(subset=[f"deletion_auc_{METHODS[0]}"])
    rows = []
    for m in METHODS:
        row = {"method": m, "n": len(scored)}
        for s in SCORES:
            row[s] = float(scored[f"{s}_{m}"].mean()) if len(scored) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def ood_table(df: pd.DataFrame) -> pd.DataFrame:
    """Photos by how sure the cat/dog head is (max softmax probability, MSP), most sure first, with the
    energy score over the backbone's ImageNet classifier (lower = more like the photos it was trained on)."""
    d = df[df["status"] == "ok"]
    d = d.assign(msp=confidence(d))
    return d.sort_values("msp", ascending=False, kind="stable")


def confusion_cells(df: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """The photos of each confusion-matrix cell (label, prediction)."""
    d = labeled_ok(df)
    return {(t, p): d[(d["label"] == t) & (d["prediction"] == p)] for t in CLASSES for p in CLASSES}
