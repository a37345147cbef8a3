"""What the leaderboard costs per photo, before (the code of OLD_REF) and after (this code), side by side in one
run on the same photos, model and maps; and what the curves' number of steps costs in accuracy.

Sides, each on every photo (its maps computed first by the explain stage's code, not timed):
- before: OLD_REF's `faithfulness.score_maps`, one photo at a time, every candidate map at every tap, 6 steps;
- all taps, per photo: this code's scoring, one photo at a time, the same maps and steps (what sharing the
  curves of maps of equal ranking saves);
- all taps, batched: the same, every photo's inputs in shared batches (what batching across photos saves);
- default: this code as the stage runs first, photos batched, the last tap's maps (the verdicts'), at the
  default steps.
Photos scored at default and the interval width of insertion minus deletion are predicted from these photos:
photos = the CPU budget in images / (images per photo + the sanity check's 4) (6 before: 2 per set, fixed; the
budget was 16 s, that is 16 s / seconds per photo, until 2026-12-02), width = 2 x 1.96 x the photos'
standard deviation of Grad-CAM's insertion minus deletion / sqrt(photos). The build's own numbers are in the
site (methods.html) and the issue note.

`python -m bench.leaderboard_cost --steps-error` measures the AUC's error against 12 steps instead.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from generator.config import make_settings
from generator.evaluate import faithfulness as fa
from generator.evaluate.leaderboard import CPU_BUDGET_IMAGES, SANITY_IMAGES, candidates, photo_maps, score_batch
from generator.explain.run import records_of

from .builds import ROOT
from .contenders import cheap_methods, explainer
from .inputs import Setup
from .timing import median

OLD_REF = "d451698"  # the last commit before issue 21 (adaptive leaderboard)
OLD_STEPS = 6
OLD_PHOTOS = 6  # the old default: 2 photos per set, 3 evaluation sets


@dataclass(frozen=True)
class Side:
    name: str
    photos: int
    steps: int
    seconds_per_photo: float  # median over photos when scored one at a time; total / photos when batched
    passes_per_photo: float  # images through the network per photo (mean)
    maps_per_photo: float  # candidate maps, baselines included (mean)
    default_photos: int  # photos the default stage would score on this machine (predicted, see the docstring)
    width: float  # predicted 95% interval width of Grad-CAM's insertion minus deletion at default_photos


@dataclass(frozen=True)
class LeaderboardCost:
    sides: list[Side]

    def side(self, name: str) -> Side:
        return next(s for s in self.sides if s.name == name)


def old_faithfulness(ref: str = OLD_REF) -> types.ModuleType:
    """OLD_REF's generator/faithfulness.py as a module (read with `git show`; nothing is written)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:generator/faithfulness.py"], capture_output=True,
                         text=True, check=True).stdout
    mod = types.ModuleType("old_faithfulness")
    exec(compile(src, f"{ref}:generator/faithfulness.py", "exec"), mod.__dict__)
    return mod


def _records(setup: Setup, paths: list[Path]):
    maps = explainer(setup, cheap_methods())
    out = []
    for path, x in zip(paths, setup.batches):
        with maps:
            record = records_of(maps(x[:1]), [(setup.input_size, setup.input_size)])[0]
        out.append((x[0], record, hashlib.sha256(path.read_bytes()).hexdigest()))
    return out


def leaderboard_cost(setup: Setup, paths: list[Path], log=print) -> LeaderboardCost:
    """`setup` holds one batch per photo, in the order of `paths` (for each photo's seed, from its content hash)."""
    settings = make_settings({"device": "cpu"})
    old_settings = make_settings({"device": "cpu", "faithfulness_steps": OLD_STEPS})
    n_taps = len(setup.taps)
    last = n_taps - 1
    photos = _records(setup, paths)
    scorer = explainer(setup, ())
    passes: list[int] = []

    def probs_of(batch: torch.Tensor) -> torch.Tensor:  # as leaderboard.Stage makes it
        passes.append(len(batch))
        return scorer.class_scores(batch).float().softmax(1)

    old = old_faithfulness()
    combined: dict[str, list[float]] = {}

    def per_photo(name: str, score_one, s) -> Side:
        seconds, counts, n_maps = [], [], []
        for x, record, sha in photos:
            passes.clear()
            with scorer:
                start = time.perf_counter()
                scores = score_one(x, record, sha)
                seconds.append(time.perf_counter() - start)
            counts.append(sum(passes))
            n_maps.append(len(scores))
            combined.setdefault(name, []).append(scores[f"gradcam@{last}"]["insertion_auc"]
                                                 - scores[f"gradcam@{last}"]["deletion_auc"])
        log(f"  {name}: {median(seconds):.2f} s per photo, {np.mean(counts):.0f} images per photo")
        return _side(name, len(photos), s.faithfulness_steps, median(seconds), counts, n_maps, combined[name],
                     fixed=name == "before")

    def batched(name: str, taps, s) -> Side:
        passes.clear()
        with scorer:
            start = time.perf_counter()
            got = score_batch(probs_of, photos, n_taps, s, taps)
            total = time.perf_counter() - start
        c = [g[f"gradcam@{last}"]["insertion_auc"] - g[f"gradcam@{last}"]["deletion_auc"] for g in got]
        per = sum(passes) / len(photos)
        log(f"  {name}: {total / len(photos):.2f} s per photo, {per:.0f} images per photo")
        return _side(name, len(photos), s.faithfulness_steps, total / len(photos), [per] * len(photos),
                     [len(g) for g in got], c, fixed=False)

    def old_one(x, record, sha):  # the old score_photo: the same distinct maps, scored by the old code
        unique, index = photo_maps(record, sha, n_taps, old_settings)
        got = old.score_maps(probs_of, x, unique, record.pred, OLD_STEPS)
        return {k: got[i] for k, i in index.items()}

    def new_one(x, record, sha):
        return score_batch(probs_of, [(x, record, sha)], n_taps, old_settings)[0]

    sides = [per_photo("before", old_one, old_settings),
             per_photo("all taps, per photo", new_one, old_settings),
             batched("all taps, batched", None, old_settings),
             batched("default", {last}, settings)]
    log(f"  ({len(candidates(photos[0][1], n_taps)) + 2} candidate maps per photo at every tap)")
    return LeaderboardCost(sides)


def _side(name, n, steps, seconds, counts, n_maps, combined, fixed: bool) -> Side:
    per = float(np.mean(counts)) + SANITY_IMAGES  # the default budget counts the scored images and the sanity check's
    photos = OLD_PHOTOS if fixed else max(1, int(CPU_BUDGET_IMAGES / per))
    sd = float(np.std(combined, ddof=1)) if len(combined) > 1 else float("nan")
    return Side(name, n, steps, seconds, float(np.mean(counts)), float(np.mean(n_maps)), photos,
                2 * 1.96 * sd / math.sqrt(photos))


# ---- how many steps: the AUC's error against many steps -------------------------------------------------------


def steps_error(setup: Setup, paths: list[Path], ref: int = 12, steps=(2, 3, 4, 6), log=print
                ) -> dict[int, dict[str, float]]:
    """Per number of steps s (each dividing ref): the error of insertion minus deletion at s steps against ref
    steps, over every photo and every distinct last-tap map (|error|: median and 95th percentile); the same for
    the paired difference of two maps of a photo; and, what a verdict reads, the error of the mean over photos
    of each pair's difference (median and largest over the pairs of maps every photo has). The s-step curve is
    the ref-step curve read at every (ref / s)-th point: the masks are the same pixels."""
    settings = make_settings({"device": "cpu", "faithfulness_steps": ref})
    n_taps = len(setup.taps)
    photos = _records(setup, paths)
    scorer = explainer(setup, ())
    errors: dict[int, list[float]] = {s: [] for s in steps}
    paired: dict[int, list[float]] = {s: [] for s in steps}
    by_pair: dict[int, dict[tuple[str, str], list[float]]] = {s: {} for s in steps}
    for x, record, sha in photos:
        unique, index_of = photo_maps(record, sha, n_taps, settings, {n_taps - 1})
        ph = fa.PhotoMaps(x, unique, record.pred)
        with scorer:
            probs = fa._forward(lambda b: scorer.class_scores(b).float().softmax(1),
                                fa._parts([ph], [fa.curve_index(unique, ref)[1]], ref), [ph], 64)
        ends = probs[0][2]  # the photo, the blurred photo
        curves = [p for _, kind, p in probs if kind == 1]
        index = fa.curve_index(unique, ref)[0]
        inner = ref - 1
        per_s: dict[int, list[float]] = {s: [] for s in (*steps, ref)}
        for j in range(len(unique)):
            block = curves[index[j]]
            deletion = torch.cat([ends[:1], block[:inner], ends[1:2]])
            insertion = torch.cat([ends[1:2], block[inner:], ends[:1]])
            for s in (*steps, ref):
                k = ref // s
                per_s[s].append(float(fa.auc(insertion[::k]) - fa.auc(deletion[::k])))
        first = {}  # one key per distinct map (the first candidate scored as it)
        for key, i in index_of.items():
            first.setdefault(i, key.rsplit("@", 1)[0])
        for s in steps:
            e = np.array(per_s[s]) - np.array(per_s[ref])
            errors[s] += list(np.abs(e))
            paired[s] += [abs(e[a] - e[b]) for a in range(len(e)) for b in range(a + 1, len(e))]
            for a in range(len(e)):
                for b in range(a + 1, len(e)):
                    by_pair[s].setdefault((first[a], first[b]), []).append(e[a] - e[b])
        log(f"  {len(unique)} maps scored at {ref} steps")
    out = {}
    for s in steps:
        mean_err = [abs(float(np.mean(v))) for v in by_pair[s].values() if len(v) == len(photos)]
        out[s] = {"median": float(np.median(errors[s])), "p95": float(np.percentile(errors[s], 95)),
                  "paired_median": float(np.median(paired[s])), "paired_p95": float(np.percentile(paired[s], 95)),
                  "mean_median": float(np.median(mean_err)) if mean_err else float("nan"),
                  "mean_max": float(np.max(mean_err)) if mean_err else float("nan"),
                  "passes_per_map": 2 * (s - 1) + 1}
        log(f"  {s:2d} steps: |error| of insertion - deletion median {out[s]['median']:.4f}, 95th pct "
            f"{out[s]['p95']:.4f}; of a paired difference median {out[s]['paired_median']:.4f}, 95th pct "
            f"{out[s]['paired_p95']:.4f}; of its mean over {len(photos)} photos median {out[s]['mean_median']:.4f}, "
            f"largest {out[s]['mean_max']:.4f}; {out[s]['passes_per_map']} images per map")
    return out


def main(argv: list[str] | None = None) -> int:
    from .inputs import decode_readable, load_setup, sample_photos

    p = argparse.ArgumentParser(prog="python -m bench.leaderboard_cost")
    p.add_argument("--photos", type=int, default=3)
    p.add_argument("--set", dest="photo_set", default="test")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data")
    p.add_argument("--weights-dir", type=Path, default=ROOT / "weights")
    p.add_argument("--steps-error", action="store_true", help="measure the AUC's error against 12 steps instead")
    args = p.parse_args(argv)
    paths = sample_photos(args.data_dir / args.photo_set, args.photos, 0)
    base = load_setup(args.weights_dir)
    photos, paths = decode_readable(paths, base.input_size)
    setup = base.with_photos(photos, 1)
    if args.steps_error:
        steps_error(setup, paths)
        return 0
    cost = leaderboard_cost(setup, paths)
    for s in cost.sides:
        print(f"{s.name:>20}: {s.steps} steps, {s.seconds_per_photo:.2f} s/photo, {s.passes_per_photo:.0f} "
              f"images/photo, {s.maps_per_photo:.0f} maps/photo; at default {s.default_photos} photos, "
              f"interval width {s.width:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
