"""Intervals over photos: every score on the site carries the mean and its 95% bootstrap interval."""

from __future__ import annotations

import numpy as np

BOOTSTRAP = 2000  # resamples of the photos for every confidence interval


def bootstrap_mean(values: np.ndarray, seed: int, n: int = BOOTSTRAP) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95% percentile interval over n resamples of the values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    means = np.random.default_rng(seed).choice(values, size=(n, values.size), replace=True).mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)
