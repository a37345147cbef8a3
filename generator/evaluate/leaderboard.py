"""Which map to trust: every method scored by perturbation on a seeded sample of photos, and the
parameter-randomisation sanity check of Adebayo et al. 2018.

Scored maps per photo (the predicted class): every computed method at the last tap, each method of the gradient
family at every earlier tap too, and the two baselines. Maps equal after min-max scaling (at a GAP-linear last
tap Grad-CAM, XGrad-CAM and HiResCAM are one map) are scored once. Scores are cached per photo by content.
"""

from __future__ import annotations

import copy
import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from generator.config import Settings
from generator.data.imaging import SkipImage, decode_bytes, read_image_file
from generator.evaluate.faithfulness import BASELINES, SCORES, gaussian_map, random_map, score_maps, upsampled01
from generator.explain import methods as registry
from generator.explain.record import PhotoRecord
from generator.explain.run import RecordCache, make_explainer, scored_methods
from generator.files import load_npz, save_npz, write_text
from generator.frames import pd
from generator.model.checkpoint import TrainedModel
from generator.model.heads import LinearHead
from generator.model.runtime import Runtime

LEADERBOARD_VERSION = 1
RANDOMISATIONS = ("head", "head + last stage")  # Adebayo et al.'s cascade, as far as it matters here
SAME_MAP = 0.01  # largest difference of two min-max scaled maps that are scored as one


def sample_rows(results: pd.DataFrame, sets: list[str], n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of n explained photos of each set (all of them when n is 0 or the set is smaller)."""
    picked = []
    for s in sets:
        d = results[(results["set"] == s) & (results["status"] == "ok")]
        if d.empty:
            continue
        k = len(d) if n <= 0 else min(n, len(d))
        rng = np.random.default_rng([seed, zlib.crc32(s.encode("utf-8", "surrogateescape"))])
        picked.append(d.iloc[np.sort(rng.choice(len(d), size=k, replace=False))])
    return pd.concat(picked) if picked else results.iloc[0:0]


@dataclass(frozen=True)
class Candidate:
    method: str  # a registered method or a baseline
    tap: int

    @property
    def key(self) -> str:
        return f"{self.method}@{self.tap}"


def candidates(record: PhotoRecord, n_taps: int) -> list[tuple[Candidate, np.ndarray]]:
    """The maps of one photo that the leaderboard scores, raw, at their native resolution."""
    last = n_taps - 1
    pred = record.pred
    out = []
    for name in record.methods():
        method = registry.get(name)
        taps = range(n_taps) if method.needs == registry.Need.GRADIENTS else (last,)
        for t in taps:
            m = record.maps[name][t]
            if m is not None:
                out.append((Candidate(name, t), np.asarray(m[pred] if method.per_class else m, np.float32)))
    return out


def _photo_input(model: TrainedModel, path: str, settings: Settings) -> torch.Tensor | None:
    try:
        d = decode_bytes(read_image_file(path, settings.max_pixels), settings.input_size, settings.input_size,
                         settings.max_pixels)
    except SkipImage:
        return None
    return model.backbone.to_input(d.model_input[None])[0]


def score_photo(probs_of, x: torch.Tensor, record: PhotoRecord, sha: str, n_taps: int,
                 settings) -> dict[str, dict[str, float]]:
    size = settings.input_size
    shape = record.cam(-1).shape[-2:]
    gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + int(sha[:12], 16) % 1_000_003)
    named: list[tuple[str, torch.Tensor]] = [(c.key, upsampled01(torch.from_numpy(m), size))
                                            for c, m in candidates(record, n_taps)]
    named += [(f"random@{n_taps - 1}", random_map(tuple(shape), size, gen)),
              (f"gaussian@{n_taps - 1}", gaussian_map(size))]
    # Score each distinct map once: after min-max scaling several methods give the same map (Grad-CAM, XGrad-CAM
    # and HiResCAM at a GAP-linear last tap). Stored as float16, such maps agree to about 1e-3, so two maps count
    # as one when no scaled value differs by more than SAME_MAP: their curves could differ only among near-ties.
    unique: list[torch.Tensor] = []
    index: dict[str, int] = {}
    for key, m in named:
        same = next((i for i, u in enumerate(unique) if float((u - m).abs().max()) <= SAME_MAP), None)
        if same is None:
            unique.append(m)
            same = len(unique) - 1
        index[key] = same
    scores = score_maps(probs_of, x, unique, record.pred, settings.faithfulness_steps)
    return {key: scores[i] for key, i in index.items()}


class ScoreCache:
    """Per photo: the scores of every candidate map, keyed by model, steps and seed."""

    def __init__(self, cache_dir: Path, model_fp: str, settings: Settings) -> None:
        self.root = (Path(cache_dir) / "leaderboard"
                     / f"v{LEADERBOARD_VERSION}-{model_fp}-s{settings.faithfulness_steps}-seed{settings.seed}")

    def load(self, sha: str, want: set[str]) -> dict[str, dict[str, float]] | None:
        z = load_npz(self.root / sha[:2] / f"{sha}.npz")
        if z is None or "keys" not in z or not want <= set(z["keys"].tolist()):
            return None
        return {k: dict(zip(SCORES, map(float, v))) for k, v in zip(z["keys"].tolist(), z["values"])}

    def save(self, sha: str, scores: dict[str, dict[str, float]]) -> None:
        keys = sorted(scores)
        save_npz(self.root / sha[:2] / f"{sha}.npz",
                 {"keys": np.array(keys), "values": np.array([[scores[k][s] for s in SCORES] for k in keys])})


def faithfulness_scores(model: TrainedModel, sample: pd.DataFrame, settings: Settings, runtime: Runtime,
                        log=print) -> pd.DataFrame:
    """One row per (photo, candidate map): set, file, method, tap and the four scores."""
    n_taps = len(model.backbone.taps)
    records = RecordCache(settings.cache_dir, model.fingerprint, n_taps)
    cache = ScoreCache(settings.cache_dir, model.fingerprint, settings)
    explainer = make_explainer(model, (), runtime)
    rows = []
    with explainer:
        def probs_of(batch: torch.Tensor) -> torch.Tensor:
            return explainer.class_scores(batch.to(runtime.device)).float().softmax(1).cpu()

        scored = scored_methods(registry.resolve(settings.methods))
        for r in sample.to_dict("records"):
            record = records.load(r["sha256"], scored)
            if record is None:
                continue
            # this build's methods only: the cached file may hold more (another build sharing the cache chose them)
            record.maps = {name: record.maps[name] for name in scored}
            want = {c.key for c, _ in candidates(record, n_taps)} | {f"{b}@{n_taps - 1}" for b in BASELINES}
            scores = cache.load(r["sha256"], want)
            if scores is None:
                x = _photo_input(model, r["path"], settings)
                if x is None:
                    continue
                scores = score_photo(probs_of, x, record, r["sha256"], n_taps, settings)
                cache.save(r["sha256"], scores)
            for key in sorted(want):
                method, tap = key.rsplit("@", 1)
                rows.append({"set": r["set"], "file": r["file"], "method": method, "tap": int(tap),
                             **scores[key]})
    return pd.DataFrame(rows, columns=["set", "file", "method", "tap", *SCORES])


# ---- sanity check ---------------------------------------------------------------------------------------------


def randomised(model: TrainedModel, how: str, seed: int) -> tuple[torch.nn.Module, list[LinearHead]]:
    """A copy of the backbone and heads with the classifier head re-drawn at random (same scale), and for
    'head + last stage' also the backbone's last stage re-initialised."""
    gen = torch.Generator().manual_seed(seed)
    heads = list(model.heads)
    h = heads[-1]
    heads[-1] = LinearHead(weight=torch.randn(h.weight.shape, generator=gen) * float(h.weight.std()),
                           bias=torch.randn(h.bias.shape, generator=gen) * float(h.bias.std() + 1e-6))
    net = copy.deepcopy(model.backbone.model)
    if how == "head + last stage":
        torch.manual_seed(seed)
        modules = dict(net.named_modules())
        for name in model.backbone.last_stage:
            for m in modules[name].modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
                if hasattr(m, "reset_running_stats"):
                    m.reset_running_stats()
    return net, heads


def rank_correlations(model: TrainedModel, x: torch.Tensor, target: torch.Tensor,
                      original: list[dict[str, np.ndarray]], names: list[str], runtime: Runtime,
                      seed: int) -> list[dict]:
    """For each randomisation, photo (x, its target class, its original last-tap maps by method) and method: the
    Spearman rank correlation between the original map and the randomised model's map of the same class."""
    rows = []
    for i, how in enumerate(RANDOMISATIONS):
        net, heads = randomised(model, how, seed + i)
        shadow = TrainedModel(copy.copy(model.backbone), heads, model.meta, model.path)
        shadow.backbone.model = net
        explainer = make_explainer(shadow, tuple(names), runtime)
        with explainer:
            result = explainer(x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x,
                               target=target)
        for j, before in enumerate(original):
            for name in names:
                new = result.maps[name][-1][j].float().cpu().numpy()
                old = np.asarray(before[name], np.float32)
                if registry.get(name).per_class:
                    new, old = new[int(target[j])], old[int(target[j])]
                # A constant map (all zero after a ReLU) has no ranks to correlate: recorded as NaN.
                rho = stats.spearmanr(old.ravel(), new.ravel()).statistic if old.std() and new.std() else np.nan
                rows.append({"photo": j, "method": name, "randomised": how, "spearman": float(rho)})
    return rows


def sanity_check(model: TrainedModel, sample: pd.DataFrame, settings: Settings, runtime: Runtime) -> pd.DataFrame:
    """Spearman rank correlation between each method's last-tap map and the map of the same photo and class
    after randomising the model: one row per (photo, method, randomisation). Low = the map depends on what the
    model learned, as an explanation must (Adebayo et al. 2018)."""
    n_taps = len(model.backbone.taps)
    records = RecordCache(settings.cache_dir, model.fingerprint, n_taps)
    names = [n for n in registry.names() if not registry.get(n).opt_in]
    photos = []
    for r in sample.to_dict("records"):
        record = records.load(r["sha256"], tuple(names))
        x = _photo_input(model, r["path"], settings) if record is not None else None
        if x is not None:
            photos.append((r, record, x))
    if not photos:
        return pd.DataFrame(columns=["set", "file", "method", "randomised", "spearman"])
    # Cached by what it depends on: the model, the photos (by content), the methods and the seed.
    key = hashlib.sha256(json.dumps([settings.seed, names, [p[0]["sha256"] for p in photos]]).encode()).hexdigest()
    cached = Path(settings.cache_dir) / "leaderboard" / f"v{LEADERBOARD_VERSION}-{model.fingerprint}" / \
        f"sanity-{key[:20]}.json"
    try:
        rows = json.loads(cached.read_text())
    except (OSError, ValueError):
        x = torch.stack([p[2] for p in photos]).to(runtime.device)
        target = torch.tensor([p[1].pred for p in photos])
        original = [{n: rec.maps[n][-1] for n in names} for _, rec, _ in photos]
        rows = rank_correlations(model, x, target, original, names, runtime, settings.seed)
        write_text(cached, json.dumps(rows))
    for row in rows:
        r = photos[row.pop("photo")][0]
        row.update(set=r["set"], file=r["file"])
    return pd.DataFrame(rows, columns=["set", "file", "method", "randomised", "spearman"])
