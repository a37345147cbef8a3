"""Timing on a shared, noisy machine: contenders take turns batch by batch, rates and ratios are medians."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import torch


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def time_turns(contenders: dict[str, Callable[[torch.Tensor], object]], batches: list[torch.Tensor], repeats: int,
               log: Callable[[str], None] = print, seed: int = 0) -> dict[str, list[float]]:
    """Images/s of each contender in each repeat (one pass over all batches).

    Within a repeat every contender runs batch 1, then every contender runs batch 2, and so on, so a burst of
    load from other jobs hits them all alike and ratios taken within a repeat stay meaningful while absolute
    rates swing. The order of the turns is shuffled for every batch (seeded): a call can slow down the one after
    it (measured: the bare forward pass took 87 instead of 49 ms right after a pytorch-grad-cam call, 57 ms
    after a 50 ms pause), and a fixed order would charge that to the same contender every time. One untimed
    batch first warms each up (oneDNN kernels, lazy imports)."""
    n = sum(len(b) for b in batches)
    for fn in contenders.values():
        fn(batches[0])
    rng = random.Random(seed)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(repeats):
        spent = dict.fromkeys(contenders, 0.0)
        for x in batches:
            order = list(contenders)
            rng.shuffle(order)
            for name in order:
                fn = contenders[name]
                start = time.perf_counter()
                fn(x)
                spent[name] += time.perf_counter() - start
        for name in contenders:
            rates[name].append(n / spent[name])
        log(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()))
    return rates


def paired_ratio(rates: dict[str, list[float]], a: str, b: str) -> float:
    """Median over the repeats of rate(a) / rate(b), each ratio within one repeat."""
    return median([ra / rb for ra, rb in zip(rates[a], rates[b])])


def seconds_of(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
