"""Which map to trust: every method scored by perturbation on an adaptive, stratified sample of photos, and the
parameter-randomisation sanity check of Adebayo et al. 2018 on the same photos.

Scored maps per photo (the predicted class): every computed method at the last tap and the two baselines; each
method of the gradient family at every earlier tap too once the last tap's comparisons are done and time is
left (the verdicts are about the last tap; the earlier taps' table is descriptive). Maps equal after min-max
scaling (at a GAP-linear last tap Grad-CAM, XGrad-CAM and HiResCAM are one map) are scored once. Scores and
sanity rows are cached per photo by content.

The sample: photos are taken in a seeded order stratified by set and by right or wrong (`photo_stream`), in
rounds that double, until every comparison of `evaluate.stats.comparisons` has a verdict (the stopping rule, checked
after each round from 10 photos on), the budget runs out, or every photo is scored. The default budget on a CPU is
counted in images through the network (CPU_BUDGET_IMAGES), not in seconds, so that a cold build takes the same
photos and draws the same board on any machine, and the stage costs the same share of a build on a fast CPU as on a
slow one (its work is network passes, as the build's floor is). On a GPU the default is every explained photo;
`faithfulness_sample` (a fixed number per set), `faithfulness_budget_images` and `faithfulness_budget_s` override.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from generator.config import Settings
from generator.data.imaging import SkipImage, decode_bytes, read_image_file
from generator.evaluate.faithfulness import (
    SCORES,
    PhotoMaps,
    gaussian_map,
    random_map,
    score_photos,
    upsampled01,
)
from generator.evaluate.stats import BASELINES, Comparison, comparisons
from generator.explain import methods as registry
from generator.explain.record import PhotoRecord, as_stored
from generator.explain.run import RecordCache, make_explainer, scored_methods
from generator.files import load_npz, save_npz, write_text
from generator.frames import pd
from generator.model.checkpoint import TrainedModel
from generator.model.heads import LinearHead
from generator.model.runtime import Runtime

LEADERBOARD_VERSION = 3  # 2: sanity rows cached per photo; 3: deletion fills with the blurred photo
CPU_BUDGET_IMAGES = 1100  # the default budget on a CPU, in images through the network (a backward pass counts as
# one image). On the full shared photos that is 22 photos at the last stage with their sanity check (49 images a
# photo), which decide every method against the random map; the earlier 16 s budget bought 25 on 2 float32 cores
# (14% of a cold build) but 3x as many where bf16 runs the network 3x faster, and fewer on a busy machine than on
# an idle one (README, 2026-12-02).
PROBE = 2  # photos of the first round, which measures the time a photo takes (the budget cannot cut it)
FIRST_LOOK = 10  # the stopping rule first looks at this many photos, then at twice as many each time
GPU_ROUND = 256  # photos per round where every photo is scored (bounds memory, not decisions)
RANDOMISATIONS = ("head", "head + last stage")  # Adebayo et al.'s cascade, as far as it matters here
SANITY_IMAGES = 2 * len(RANDOMISATIONS)  # network images the sanity check costs a photo: a forward and a backward
# pass per randomised model
SAME_MAP = 0.01  # largest difference of two min-max scaled maps that are scored as one
SANITY_BATCH = 8  # photos per pass of the sanity check (the build's batch size): bounds its memory
SCORE_BATCH = 8  # perturbed images per network pass, the build's batch size. Measured (2 cores, the default board
# of the full shared photos, 1,079 images, 2 runs each): in float32 32 took 22.4 and 24.7 s, 16 took 16.2 and 18.0,
# 8 took 16.3 and 17.5; in bf16 12.2 to 12.6 s for 8, 16 and 32 alike. The stage's peak memory: in
# float32 2,417 MB at 32 against 1,961 to 2,011 at 8, in bf16 2,026 to 2,040 against 1,690 to 1,703.


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


def photo_maps(record: PhotoRecord, sha: str, n_taps: int, settings, taps: set[int] | None = None
               ) -> tuple[list[torch.Tensor], dict[str, int]]:
    """The distinct [0, 1] maps of a photo to score, and each candidate key's index among them. `taps`: the taps
    whose candidates are wanted (None: all); the baselines sit at the last tap."""
    size = settings.input_size
    shape = record.lead_map(-1).shape[-2:]
    gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + int(sha[:12], 16) % 1_000_003)
    named: list[tuple[str, torch.Tensor]] = [(c.key, upsampled01(torch.from_numpy(m), size))
                                            for c, m in candidates(record, n_taps) if taps is None or c.tap in taps]
    rnd = random_map(tuple(shape), size, gen)  # drawn whatever the taps, so that it is the same map every time
    if taps is None or n_taps - 1 in taps:
        named += [(f"random@{n_taps - 1}", rnd), (f"gaussian@{n_taps - 1}", gaussian_map(size))]
    # Score each distinct map once: after min-max scaling several methods give the same map (Grad-CAM, XGrad-CAM
    # and HiResCAM at a GAP-linear last tap). Stored as float16, such maps agree to about 1e-3, so two maps count
    # as one when no scaled value differs by more than SAME_MAP: their curves could differ only among near-ties.
    # (faithfulness.score_photos then shares the curves of distinct maps whose pixel order is the same.)
    unique: list[torch.Tensor] = []
    index: dict[str, int] = {}
    for key, m in named:
        same = next((i for i, u in enumerate(unique) if float((u - m).abs().max()) <= SAME_MAP), None)
        if same is None:
            unique.append(m)
            same = len(unique) - 1
        index[key] = same
    return unique, index


def score_photo(probs_of, x: torch.Tensor, record: PhotoRecord, sha: str, n_taps: int,
                settings, taps: set[int] | None = None) -> dict[str, dict[str, float]]:
    """The scores of every candidate map of one photo (see score_batch for several at once)."""
    return score_batch(probs_of, [(x, record, sha)], n_taps, settings, taps)[0]


def score_batch(probs_of, photos: list[tuple[torch.Tensor, PhotoRecord, str]], n_taps: int, settings,
                taps: set[int] | None = None) -> list[dict[str, dict[str, float]]]:
    """Per photo (input, record, content hash): the scores of its candidate maps, every perturbed input of every
    photo batched together."""
    made = [photo_maps(record, sha, n_taps, settings, taps) for _, record, sha in photos]
    scores = score_photos(probs_of, [PhotoMaps(x, unique, record.pred)
                                     for (x, record, _), (unique, _) in zip(photos, made)],
                          settings.faithfulness_steps, chunk=SCORE_BATCH)
    return [{key: got[i] for key, i in index.items()} for got, (_, index) in zip(scores, made)]


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
        """Stores these scores beside those already stored for the photo (another tap's, another method's)."""
        old = self.load(sha, set())
        scores = {**(old or {}), **scores}
        keys = sorted(scores)
        save_npz(self.root / sha[:2] / f"{sha}.npz",
                 {"keys": np.array(keys), "values": np.array([[scores[k][s] for s in SCORES] for k in keys])})


def photo_stream(results: pd.DataFrame, sets: list[str], seed: int) -> pd.DataFrame:
    """Every explained photo of `sets`, in the order the sample takes them: strata (a set's right answers, its
    wrong ones, its photos without a label), each in a seeded random order, taken in proportion to their sizes:
    the next photo comes from the stratum with the fewest taken for its size ((taken + 1/2) / size, Sainte-Lague's
    rule). Any prefix is a stratified sample of the whole pool (each stratum within about one photo of its share),
    so the pooled mean over the prefix estimates the mean over every explained photo; a set of 13 photos beside
    one of 1,000 weighs 13 in 1,013, not half."""
    strata: list[list[int]] = []  # row positions, in seeded order
    d = results.reset_index(drop=True)
    for s in sets:
        rows = d[(d["set"] == s) & (d["status"] == "ok")]
        if rows.empty:
            continue
        correct = rows["correct"] if "correct" in rows else pd.Series("", index=rows.index)
        for name, mask in (("right", correct == "yes"), ("wrong", correct == "no"),
                           ("other", ~correct.isin(["yes", "no"]))):
            idx = rows.index[mask.to_numpy()].to_numpy()
            if idx.size:
                rng = np.random.default_rng([seed, zlib.crc32(f"{s}/{name}".encode("utf-8", "surrogateescape"))])
                strata.append(list(idx[rng.permutation(idx.size)]))
    taken = [0] * len(strata)
    order: list[int] = []
    for _ in range(sum(map(len, strata))):
        j = min((j for j, q in enumerate(strata) if taken[j] < len(q)),
                key=lambda j: ((taken[j] + 0.5) / len(strata[j]), j))
        order.append(strata[j][taken[j]])
        taken[j] += 1
    return d.iloc[order]


@dataclass
class Outcome:
    """How the sample ended, for the page."""

    stopped: str  # resolved | budget | all photos | fixed
    photos: int  # photos scored at the last tap
    seconds: float  # the stage's time
    budget_s: float  # seconds; 0 = none
    looks: int  # the most times the stopping rule could look (its Bonferroni factor)
    needed: float = float("nan")  # photos every comparison would need, when the budget ran out
    stage_photos: int = 0  # photos whose earlier taps were scored too
    steps: int = 0
    pool: int = 0  # explained photos the sample was drawn from
    budget_images: int = 0  # images through the network; 0 = none
    images: int = 0  # images this run put through the network (0 when every score came from the caches)
    ran_out: str = ""  # images | seconds: the part of the budget that stopped the sample, when it stopped it

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(eq=False)  # compared by identity
class _Photo:
    row: dict
    record: PhotoRecord | None = None
    x: torch.Tensor | None = None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    sanity: list[dict] | None = None


def _want(record_or_names, n_taps: int, taps: set[int]) -> set[str]:
    names = record_or_names
    keys = set()
    for name in names:
        m = registry.get(name)
        for t in (range(n_taps) if m.needs == registry.Need.GRADIENTS else (n_taps - 1,)):
            if t in taps:
                keys.add(f"{name}@{t}")
    if n_taps - 1 in taps:
        keys |= {f"{b}@{n_taps - 1}" for b in BASELINES}
    return keys


def planned_looks(pool: int) -> int:
    """How many times the stopping rule may look, at most: at FIRST_LOOK photos, then at twice as many each
    time until the pool is spent, plus one look at whatever the budget leaves (a partial round)."""
    looks, n = 1, FIRST_LOOK
    while n < pool:
        n *= 2
        looks += 1
    return looks + 1


def affordable_looks(done: int, left_photos: float | None, pool: int) -> int:
    """The looks to correct for, fixed once the probe has measured what a photo costs (before any score is looked
    at, so the correction does not depend on the scores): planned_looks of the photos the budget left can buy
    (`left_photos`; None: not measured yet), not of the whole pool. On a CPU budget of ~10 to 40 photos that is 2
    to 4 looks instead of ~10, so each interval is less strict and the same photos decide more."""
    if left_photos is None or not math.isfinite(left_photos):
        return planned_looks(pool)
    return planned_looks(min(pool, done + int(max(left_photos, 0.0))))


def next_size(done: int, left_photos: float | None, pool: int, adaptive: bool) -> tuple[int, bool]:
    """Photos of the next round: the probe, then up to the next look (FIRST_LOOK, then doubling), cut to the photos
    the budget left can buy at the measured cost of a photo (`left_photos`; None: nothing measured yet; 0 = stop);
    and whether the budget cut it."""
    if not adaptive:
        return min(pool - done, GPU_ROUND), False
    if done == 0:
        want = min(PROBE, pool)
    else:
        target = FIRST_LOOK
        while target <= done:
            target *= 2
        want = min(target, pool) - done
    if left_photos is None:  # nothing computed yet (the photos so far came from the caches): probe again
        want = min(want, PROBE)
    elif math.isfinite(left_photos):
        fits = int(left_photos)
        if fits < want:
            return max(0, fits), True
    return max(0, want), False


@dataclass(frozen=True)
class Budget:
    """What the adaptive sample may spend: images through the network (a backward pass counts as one) and seconds;
    inf = no limit. Images make the sample the same on every machine; seconds bound the wall clock."""

    images: float = math.inf
    seconds: float = math.inf

    @property
    def finite(self) -> bool:
        return math.isfinite(self.images) or math.isfinite(self.seconds)

    def photos_left(self, spent_images: float, spent_s: float, per_images: float, per_s: float) -> float:
        """Photos the rest buys at the measured cost of a photo (images and seconds)."""
        left = math.inf
        if math.isfinite(self.images):
            left = min(left, (self.images - spent_images) / max(per_images, 1e-9))
        if math.isfinite(self.seconds):
            left = min(left, (self.seconds - spent_s) / max(per_s, 1e-9))
        return left

    def ran_out(self, spent_images: float, spent_s: float) -> str:
        """images or seconds: the part of the budget most spent (the one that stopped the sample)."""
        share_i = spent_images / self.images if math.isfinite(self.images) else -1.0
        share_s = spent_s / self.seconds if math.isfinite(self.seconds) else -1.0
        return "seconds" if share_s > share_i else "images"


def budget_of(settings: Settings, runtime: Runtime) -> Budget:
    """The settings' budget: faithfulness_budget_images (0: CPU_BUDGET_IMAGES on a CPU, no limit on a GPU) and
    faithfulness_budget_s (0: no limit), whichever runs out first."""
    images = int(getattr(settings, "faithfulness_budget_images", 0))
    seconds = float(getattr(settings, "faithfulness_budget_s", 0.0))
    if images <= 0:
        images = CPU_BUDGET_IMAGES if runtime.device == "cpu" else math.inf
    return Budget(float(images), seconds if seconds > 0 else math.inf)


class Stage:
    """The leaderboard stage's machinery: model, caches, explainers; photos go in, scores and sanity rows out."""

    def __init__(self, model: TrainedModel, settings: Settings, runtime: Runtime) -> None:
        self.model, self.settings, self.runtime = model, settings, runtime
        self.n_taps = len(model.backbone.taps)
        self.records = RecordCache(settings.cache_dir, model.fingerprint, self.n_taps)
        self.cache = ScoreCache(settings.cache_dir, model.fingerprint, settings)
        self.sanity_cache = Path(settings.cache_dir) / "leaderboard" / f"v{LEADERBOARD_VERSION}-{model.fingerprint}"
        self.scored = scored_methods(registry.resolve(settings.methods))
        self.sanity_names = [n for n in registry.names() if not registry.get(n).opt_in
                             and not (registry.get(n).needs_head and model.heads[-1] is None)]  # no CAM there
        self.passes = 0

    def probs_of(self, explainer) -> Callable[[torch.Tensor], torch.Tensor]:
        def probs(batch: torch.Tensor) -> torch.Tensor:
            self.passes += len(batch)
            return explainer.class_scores(batch.to(self.runtime.device)).float().softmax(1).cpu()
        return probs

    def plan_path(self, pool: list[dict], budget: Budget) -> Path:
        """Where the adaptive sample's outcome is kept: the number of photos taken from this stream, the looks
        and why it stopped. Keyed by the stream (its photos' content, in order), the budget, the methods, the
        steps and the seed: a rerun with all of them unchanged replays that outcome from the caches instead of
        spending the budget again on more photos, so a rebuild gives the same board, while a larger budget or
        other photos choose again (starting from the cached scores)."""
        key = hashlib.sha256(json.dumps([LEADERBOARD_VERSION, budget.images, budget.seconds, list(self.scored),
                                         self.sanity_names, self.settings.faithfulness_steps, self.settings.seed,
                                         [r["sha256"] for r in pool]]).encode()).hexdigest()
        return self.cache.root / f"plan-{key[:20]}.json"

    def _sanity_path(self, sha: str) -> Path:
        key = hashlib.sha256(json.dumps([self.settings.seed, self.sanity_names, sha]).encode()).hexdigest()
        return self.sanity_cache / sha[:2] / f"sanity-{key[:20]}.json"

    def run(self, rows: list[dict], taps: set[int], with_sanity: bool) -> list[_Photo]:
        """Scores (at `taps`) and, with_sanity, sanity rows of these photos: from the caches, else computed, every
        photo's perturbed inputs batched together. Photos that cannot be read again are left out."""
        want_names = tuple(self.scored)
        photos = [_Photo(r) for r in rows]
        need_scores = []
        for ph in photos:
            want = _want(want_names, self.n_taps, taps)
            got = self.cache.load(ph.row["sha256"], want)
            if got is None:
                need_scores.append(ph)
            else:
                ph.scores = {k: got[k] for k in want}
            if with_sanity:
                try:
                    ph.sanity = json.loads(self._sanity_path(ph.row["sha256"]).read_text())
                except (OSError, ValueError):
                    ph.sanity = None
        todo = [ph for ph in photos if ph in need_scores or (with_sanity and ph.sanity is None)]
        if not todo:
            return photos
        self._prepare(todo)
        todo = [ph for ph in todo if ph.x is not None]
        scoring = [ph for ph in need_scores if ph.x is not None]
        if scoring:
            explainer = make_explainer(self.model, (), self.runtime)
            with explainer:
                got = score_batch(self.probs_of(explainer), [(ph.x, ph.record, ph.row["sha256"]) for ph in scoring],
                                  self.n_taps, self.settings, taps)
            for ph, scores in zip(scoring, got):
                self.cache.save(ph.row["sha256"], scores)
                ph.scores = scores
        if with_sanity:
            self._sanity([ph for ph in todo if ph.sanity is None])
        return [ph for ph in photos if ph.scores or ph.x is not None]

    def _prepare(self, photos: list[_Photo]) -> None:
        """Input and record (with every scored method's maps) of each photo: the record from the cache when the
        explain stage made it, else made here (one forward and one backward per batch of photos)."""
        missing = []
        for ph in photos:
            ph.x = _photo_input(self.model, ph.row["path"], self.settings)
            if ph.x is None:
                continue
            ph.record = self.records.load(ph.row["sha256"], tuple(self.scored))
            if ph.record is None:
                missing.append(ph)
            else:  # this build's methods only: the cached file may hold more (another build chose them)
                ph.record.maps = {name: ph.record.maps[name] for name in self.scored}
        if missing:
            explainer = make_explainer(self.model, tuple(self.scored), self.runtime)
            with explainer:
                for a in range(0, len(missing), 16):
                    part = missing[a:a + 16]
                    x = torch.stack([ph.x for ph in part]).to(self.runtime.device)
                    if self.runtime.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    self.passes += 2 * len(part)  # a forward and a backward
                    for ph, rec in zip(part, _records(explainer(x))):
                        ph.record = rec

    def _sanity(self, photos: list[_Photo]) -> None:
        """The sanity rows of these photos, SANITY_BATCH photos at a time: the randomised models' maps need a
        forward and a backward pass with every method's gradients held, so the memory they take grows with the
        batch; a round of the sample can hold 20 photos and more."""
        for a in range(0, len(photos), SANITY_BATCH):
            self._sanity_batch(photos[a:a + SANITY_BATCH])

    def _sanity_batch(self, photos: list[_Photo]) -> None:
        if not photos:
            return
        names = self.sanity_names
        x = torch.stack([ph.x for ph in photos]).to(self.runtime.device)
        target = torch.tensor([ph.record.pred for ph in photos])
        original = [{n: ph.record.maps[n][-1] for n in names} for ph in photos]
        self.passes += SANITY_IMAGES * len(photos)
        rows = rank_correlations(self.model, x, target, original, names, self.runtime, self.settings.seed)
        for j, ph in enumerate(photos):
            ph.sanity = [{k: v for k, v in r.items() if k != "photo"} for r in rows if r["photo"] == j]
            write_text(self._sanity_path(ph.row["sha256"]), json.dumps(ph.sanity))


def _add_scores(photos: list[_Photo], more: list[_Photo]) -> None:
    """Add to each photo the scores another run of the same photos made (the earlier taps'), matched by photo."""
    by_file = {(ph.row["set"], ph.row["file"]): ph for ph in more}
    for ph in photos:
        extra = by_file.get((ph.row["set"], ph.row["file"]))
        if extra is not None:
            ph.scores = {**ph.scores, **extra.scores}


def _read_plan(path: Path) -> dict | None:
    """A stored sample outcome (Stage.plan_path), or None when there is none or it is not readable."""
    try:
        plan = json.loads(path.read_text())
        return plan if {"taken", "looks", "stopped", "stage_photos"} <= set(plan) else None
    except (OSError, ValueError):
        return None


def _records(result) -> list[PhotoRecord]:
    """In-memory records of a batch, holding what the leaderboard reads (maps and the head's logits, stored as
    the record cache stores them); the backbone's own outputs are left empty (any classifier, K classes)."""
    out = []
    for j in range(len(result.logits)):
        logits = result.logits[j].detach().float().cpu().numpy()
        maps = {name: [None if m is None else as_stored(m[j].float().cpu().numpy()) for m in per_tap]
                for name, per_tap in result.maps.items()}
        out.append(PhotoRecord(width=0, height=0, logits=logits, probe_logits=logits[None], imagenet_top=np.zeros(0),
                               imagenet_top_p=np.zeros(0), pet_p=float("nan"), energy=float("nan"), maps=maps))
    return out


def _score_rows(photos: list[_Photo]) -> list[dict]:
    rows = []
    for ph in photos:
        for key in sorted(ph.scores):
            method, tap = key.rsplit("@", 1)
            rows.append({"set": ph.row["set"], "file": ph.row["file"], "method": method, "tap": int(tap),
                         **ph.scores[key]})
    return rows


def leaderboard_stage(model: TrainedModel, results: pd.DataFrame, sets: list[str], settings: Settings,
                      runtime: Runtime, log=print) -> tuple[pd.DataFrame, pd.DataFrame, Outcome]:
    """Scores (one row per photo and candidate map), sanity rows (per photo, method, randomisation) and how the
    sample ended. `results`: the explained photos (with sha256, path, correct)."""
    started = time.perf_counter()
    stage = Stage(model, settings, runtime)
    last = stage.n_taps - 1
    fixed = settings.faithfulness_sample > 0
    budget = Budget() if fixed else budget_of(settings, runtime)
    adaptive = budget.finite
    stream = (sample_rows(results, sets, settings.faithfulness_sample, settings.seed) if fixed
              else photo_stream(results, sets, settings.seed))
    pool = stream.to_dict("records")
    looks = planned_looks(len(pool)) if adaptive else 1  # fixed for good once a computed round gives the cost
    looks_fixed, looked = not adaptive, 0
    done: list[_Photo] = []
    at, computed_s, computed_i, computed_n = 0, 0.0, 0, 0
    stopped = "fixed" if fixed else "all photos"
    comps: list[Comparison] = []
    plan_file = stage.plan_path(pool, budget) if adaptive else None
    plan = _read_plan(plan_file) if plan_file is not None else None

    def photos_left(per_i: float, per_s: float) -> float:  # what the budget left buys at this cost per photo
        return budget.photos_left(stage.passes, time.perf_counter() - started, per_i, per_s)

    def last_left() -> float | None:
        return photos_left(computed_i / computed_n, computed_s / computed_n) if computed_n else None

    if plan is not None:  # a rerun: the same photos as the build that chose them (all from the caches)
        done = stage.run(pool[:plan["taken"]], {last}, with_sanity=True)
        at, looks, stopped = plan["taken"], plan["looks"], plan["stopped"]
        comps = comparisons(pd.DataFrame(_score_rows(done)), last, settings.seed, looks) if done else []
    while plan is None and at < len(pool):
        if fixed:
            k, cut = len(pool) - at, False
        else:
            k, cut = next_size(len(done), last_left(), len(pool) - at + len(done), adaptive)
        if k <= 0:
            stopped = "budget"
            break
        t0, p0 = time.perf_counter(), stage.passes
        got = stage.run(pool[at:at + k], {last}, with_sanity=True)
        at += k
        if stage.passes > p0:  # photos that were computed, not read from the caches, measure the cost
            computed_s += time.perf_counter() - t0
            computed_i += stage.passes - p0
            computed_n += k
        done += got
        if not looks_fixed and computed_n:
            looks = affordable_looks(len(done), last_left(), len(pool))
            looks_fixed = True
        if adaptive and len(done) >= FIRST_LOOK:  # a look: at FIRST_LOOK photos, then each doubling
            comps = comparisons(pd.DataFrame(_score_rows(done)), last, settings.seed, looks)
            looked += 1
            if comps and all(c.verdict != "undecided" for c in comps):
                stopped = "resolved"
                break
            if looked >= looks:  # every look corrected for is spent: more photos could not change a verdict
                stopped = "budget" if at < len(pool) else stopped
                break
        if cut:  # the budget cut this round short: there is none left for another
            stopped = "budget" if at < len(pool) else stopped
            break
    # The earlier taps (the gradient family's table), on the same photos in the same order, while budget is left.
    # Their cost per photo (images and seconds) is measured apart (every gradient method at every earlier tap costs
    # more than the last tap's round did): one photo first, then as many as the budget left buys at that rate.
    earlier = set(range(last))
    stage_n = 0
    if earlier and plan is not None:
        stage_n = plan["stage_photos"]
        if stage_n:
            _add_scores(done[:stage_n], stage.run([ph.row for ph in done[:stage_n]], earlier, with_sanity=False))
    elif earlier:
        i, early_s, early_i, early_n = 0, 0.0, 0, 0
        while i < len(done):
            if not adaptive:
                k = len(done) - i
            elif not early_n:  # one photo, if the budget left buys one more photo at the last stage's cost
                left = last_left()
                k = 1 if left is None or left >= 1 else 0
            else:
                left = photos_left(early_i / early_n, early_s / early_n)
                k = min(len(done) - i, GPU_ROUND, int(max(left, 0)) if math.isfinite(left) else GPU_ROUND)
            if k <= 0:
                break
            t0, p0 = time.perf_counter(), stage.passes
            more = stage.run([ph.row for ph in done[i:i + k]], earlier, with_sanity=False)
            if stage.passes > p0:
                early_s += time.perf_counter() - t0
                early_i += stage.passes - p0
                early_n += k
            _add_scores(done[i:i + k], more)
            i += k
            stage_n = i
    scores = pd.DataFrame(_score_rows(done), columns=["set", "file", "method", "tap", *SCORES])
    sanity_rows = [{**r, "set": ph.row["set"], "file": ph.row["file"]} for ph in done for r in (ph.sanity or [])]
    sanity = pd.DataFrame(sanity_rows, columns=["set", "file", "method", "randomised", "spearman"])
    needed = float("nan")
    ran_out = ""
    if stopped == "budget":
        ran_out = budget.ran_out(stage.passes, time.perf_counter() - started)
        comps = comparisons(scores, last, settings.seed, looks) if not comps else comps
        open_ = [c.needed for c in comps if c.verdict == "undecided"]
        needed = float(max(open_)) if open_ else float("nan")
    outcome = Outcome(stopped, len(done), time.perf_counter() - started,
                      budget.seconds if math.isfinite(budget.seconds) else 0.0, looks, needed, stage_n,
                      settings.faithfulness_steps, len(pool),
                      int(budget.images) if math.isfinite(budget.images) else 0, stage.passes, ran_out)
    if plan_file is not None and plan is None:
        write_text(plan_file, json.dumps({"taken": at, "looks": looks, "stopped": stopped, "stage_photos": stage_n,
                                          "seconds": outcome.seconds, "images": outcome.images, "ran_out": ran_out}))
    elif plan is not None:  # what choosing the sample took
        outcome.seconds = float(plan.get("seconds", outcome.seconds))
        outcome.images = int(plan.get("images", outcome.images))
        outcome.ran_out = str(plan.get("ran_out", ""))
    log(f"leaderboard: {len(done)} photos ({stopped}), {outcome.seconds:.1f} s, {stage.passes} images")
    return scores, sanity, outcome


# ---- sanity check ---------------------------------------------------------------------------------------------


def randomised(model: TrainedModel, how: str, seed: int) -> tuple[torch.nn.Module, list[LinearHead]]:
    """A copy of the backbone and heads with the classifier head re-drawn at random (same scale), and for
    'head + last stage' also the backbone's last stage re-initialised."""
    gen = torch.Generator().manual_seed(seed)
    heads = list(model.heads)
    h = heads[-1]
    net = copy.deepcopy(model.backbone.model)
    modules = dict(net.named_modules())
    reset = list(model.backbone.last_stage) if how == "head + last stage" else []
    if h is None:  # a user's head that is not linear: its own modules after the last tap are re-initialised
        reset = [*model.backbone.head_modules, *reset]
    else:
        heads[-1] = LinearHead(weight=torch.randn(h.weight.shape, generator=gen) * float(h.weight.std()),
                               bias=torch.randn(h.bias.shape, generator=gen) * float(h.bias.std() + 1e-6))
    if reset:
        torch.manual_seed(seed)
        for name in reset:
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
