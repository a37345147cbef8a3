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
# -1..1) are called equivalent. Why 0.03: it is about a sixth of what the best map gains over the random map on
# this model (0.18 on the default board of the shared photos; methods.html computes the share for each build), so
# a reader choosing between two equivalent maps loses little; and it is above the error the curves' few steps add
# to a verdict (the mean over photos of a paired difference, against 12 steps: at most 0.026 at the default 4
# steps, config.faithfulness_steps), so "equivalent" speaks of the 4-step score.
MARGIN = 0.03
# Fewer photos than this decide nothing: a percentile bootstrap of 2 or 3 values has a handful of distinct means,
# and its intervals are far too narrow (a real build on 2 photos called every method "better" than random).
MIN_PHOTOS = 10
# Half the family-wise alpha goes to the methods against the random map, the question every reader asks first
# ("is this map better than none?") and the one a default build must answer; the other half to the Gaussian and
# to the pairs of methods. With this model's 5 distinct last-stage maps (20 comparisons) and 3 looks, a method
# against the random map is then read at z = 3.14 instead of 3.34: about 12% fewer photos decide it.
RANDOM_SHARE = 0.5
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


def paired_intervals(diffs: np.ndarray, alpha, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means and (1 - alpha) percentile bootstrap intervals of each column of diffs (n photos, m comparisons),
    from the same resamples of the photos for every column; `alpha` is one level for all columns or one per
    column. Enough resamples that each tail of the strictest interval holds TAIL_RESAMPLES of them."""
    n, m = diffs.shape
    alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (m,))
    b = int(min(400_000, max(BOOTSTRAP, np.ceil(2 * TAIL_RESAMPLES / alphas.min()))))
    rng = np.random.default_rng(seed)
    means = np.empty((b, m))
    for a in range(0, b, 4096):  # (resamples, photos) counts, a block at a time
        k = min(4096, b - a)
        counts = rng.multinomial(n, np.full(n, 1 / n), size=k)
        means[a:a + k] = counts @ diffs / n
    lo = np.array([np.quantile(means[:, j], alphas[j] / 2) for j in range(m)])
    hi = np.array([np.quantile(means[:, j], 1 - alphas[j] / 2) for j in range(m)])
    return diffs.mean(0), lo, hi


def levels(live: list[tuple[str, str]], looks: int, alpha: float = ALPHA) -> np.ndarray:
    """Each live comparison's level (weighted Bonferroni: the levels add up to alpha over all comparisons and
    looks). RANDOM_SHARE of alpha goes to the methods against the random map, the rest to the other comparisons
    (the Gaussian, each pair); a family that is absent leaves its share to the other."""
    against_random = np.array([b == "random" for _, b in live])
    k_r, k_o = int(against_random.sum()), int((~against_random).sum())
    share = RANDOM_SHARE if k_r and k_o else float(k_r > 0)
    each_r = alpha * share / max(1, k_r * looks)
    each_o = alpha * (1 - share) / max(1, k_o * looks)
    return np.where(against_random, each_r, each_o)


def comparisons(scores: pd.DataFrame, tap: int, seed: int, looks: int = 1, margin: float = MARGIN,
                alpha: float = ALPHA) -> list[Comparison]:
    """At `tap`, pooled over sets, on insertion minus deletion: every method against each baseline, and each pair
    of methods (the better-scoring one first). Paired over the photos all were scored on.

    Against the random map a method is held to the random map's expected score, 0 exactly (a map and its reverse
    score opposite, evaluate.faithfulness), not to the random map drawn for each photo: the draw adds its own
    spread and says nothing the expectation does not. Levels: `levels` (weighted Bonferroni), `looks` being how
    many times a stopping rule may look at the data, so that all the verdicts of all the looks hold together
    with probability 1 - alpha. Maps equal on every photo (scored once, e.g. Grad-CAM and HiResCAM at a linear
    head) are "same map" and count for nothing."""
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
    decided = {}
    if live:
        diffs = np.stack([wide[a].to_numpy() - (0.0 if b == "random" else wide[b].to_numpy()) for a, b in live],
                         axis=1)
        mean, lo, hi = paired_intervals(diffs, levels(live, looks, alpha), seed)
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
