"""What the leaderboard costs per photo: the perturbation scores of every candidate map of one photo
(`generator.evaluate.leaderboard.score_photo`, which calls `faithfulness.score_maps`), at the site's default steps."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from generator.config import make_settings
from generator.evaluate.leaderboard import candidates, score_photo
from generator.explain.run import records_of

from .contenders import cheap_methods, explainer
from .inputs import Setup
from .timing import median


@dataclass(frozen=True)
class LeaderboardCost:
    photos: int
    steps: int
    seconds_per_photo: float  # median over the photos
    passes_per_photo: float  # images through the network per photo (mean)
    maps_per_photo: float  # candidate maps, baselines included (mean)
    distinct_maps_per_photo: float  # after merging maps equal once scaled (each scored once; mean)


def leaderboard_cost(setup: Setup, paths: list[Path], log=print) -> LeaderboardCost:
    """Each photo's maps are computed first (the explain stage's work, not timed), then its scoring is timed.
    `setup` holds one batch per photo, in the order of `paths` (for each photo's seed, from its content hash)."""
    settings = make_settings({"device": "cpu"})
    n_taps = len(setup.taps)
    maps = explainer(setup, cheap_methods())
    scorer = explainer(setup, ())
    passes: list[int] = []

    def probs_of(batch: torch.Tensor) -> torch.Tensor:  # as leaderboard.faithfulness_scores makes it
        passes.append(len(batch))
        return scorer.class_scores(batch).float().softmax(1)

    seconds, counts, n_maps = [], [], []
    for path, x in zip(paths, setup.batches):
        with maps:
            record = records_of(maps(x[:1]), [(setup.input_size, setup.input_size)])[0]
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        passes.clear()
        with scorer:
            start = time.perf_counter()
            scores = score_photo(probs_of, x[0], record, sha, n_taps, settings)
            seconds.append(time.perf_counter() - start)
        counts.append(sum(passes))
        n_maps.append(len(scores))
        log(f"  {path.name}: {seconds[-1]:.2f} s, {counts[-1]} images through the network, "
            f"{len(candidates(record, n_taps)) + 2} maps")
    # score_maps runs 3 images per photo (the photo, all removed, blurred) and 2 (steps - 1) + 1 per distinct map
    per_map = 2 * (settings.faithfulness_steps - 1) + 1
    distinct = [(c - 3) / per_map for c in counts]
    return LeaderboardCost(len(seconds), settings.faithfulness_steps, median(seconds), sum(counts) / len(counts),
                           sum(n_maps) / len(n_maps), sum(distinct) / len(distinct))
