"""Intervals over photos: every score on the site carries the mean and its 95% bootstrap interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.frames import pd

BOOTSTRAP = 2000  # resamples of the photos for every confidence interval
BASELINES = ("random", "gaussian")  # the reference maps every method is held against (faithfulness.py draws them)


def bootstrap_mean(values: np.ndarray, seed: int, n: int = BOOTSTRAP) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95% percentile interval over n resamples of the values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    means = np.random.default_rng(seed).choice(values, size=(n, values.size), replace=True).mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)


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
