"""Describe the report: the typed summaries every page and figure is made from (no rendering here).

Input: the bundle of the compute stages (results table, leaderboard scores, sanity check, run facts).
Output: a Report. Pages and figures only render it; the story's sentences are made from it in findings.py.
Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from generator.config import Settings
from generator.data.imaging import fit_size
from generator.evaluate import stats
from generator.evaluate import truth as truth_mod
from generator.explain.record import PhotoRecord, record_path
from generator.files import load_npz
from generator.frames import pd
from generator.report import analysis
from generator.report.facts import RunFacts
from generator.report.names import safe_name, set_slug


@dataclass(frozen=True)
class SetSummary:
    name: str  # as shown (file-system name made printable)
    key: str  # the set's name in the results table
    slug: str
    is_train: bool
    counts: dict[str, Any]  # analysis.set_summary
    confusion: dict[str, dict[str, int]] | None = None  # K x K: label -> prediction -> photos
    probe_accuracy: list[float] | None = None
    ece: float | None = None
    per_class: pd.DataFrame | None = None  # analysis.per_class: accuracy and calibration of each class
    pairs: pd.DataFrame | None = None  # analysis.confusion_pairs: the mix-ups, most photos first
    signed_scales: tuple[float, ...] = ()  # per tap, the scale of its photos' signed evidence maps
    layer_sample: tuple[int, ...] = ()  # positions (among its readable photos) of the seeded sample layers.html shows
    attention: tuple[dict, ...] = ()  # analysis.attention_by_outcome, labelled sets


@dataclass(frozen=True)
class Report:
    """Everything the pages and figures show, computed before any of them is drawn: they only read it."""

    settings: Settings
    run: RunFacts
    results: pd.DataFrame  # one row per file, tagged (analysis.tag_rows)
    scores: pd.DataFrame  # leaderboard: one row per (photo, map)
    sanity: pd.DataFrame  # one row per (photo, method, randomisation)
    sets: list[SetSummary]
    neither_threshold: float  # on the score neither_score names, chosen on the training photos
    ood: pd.DataFrame  # analysis.ood_separation
    board: pd.DataFrame  # analysis.leaderboard
    verdict: analysis.Verdict | None
    sanity_table: pd.DataFrame  # analysis.sanity_summary
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)  # stats.comparison_table, last tap
    figures: tuple[dict, ...] = ()  # the figures drawn (file, caption, alt): a Report with them is made by the build
    truth: truth_mod.Truth = truth_mod.Truth()  # ground-truth scores per photo (evaluate/truth.py)
    localisation: pd.DataFrame | None = None  # truth.summarise_truth: method x tap x region, baselines beside
    head_test: truth_mod.ErrTest | None = None  # mistakes against head size
    neither_score: str = "pet_p"  # the score that decides 'neither' (analysis.neither_score): pet_p or msp
    compare: Any = None  # report/compare.Comparison when setting compare names a second model

    @property
    def classes(self) -> tuple[str, ...]:
        return self.run.classes

    @property
    def n_taps(self) -> int:
        return self.run.n_taps

    @property
    def eval_sets(self) -> list[SetSummary]:
        return [s for s in self.sets if not s.is_train]

    @property
    def labeled_sets(self) -> list[SetSummary]:
        return [s for s in self.eval_sets if s.counts["labeled"]]

    @property
    def unrelated(self) -> SetSummary | None:
        key = self.settings.set_for("unrelated")  # the photos that are neither class, by its role
        return next((s for s in self.eval_sets if s.key == key), None)

    def rows(self, set_key: str, ok_only: bool = True) -> pd.DataFrame:
        d = self.results[self.results["set"] == set_key]
        return d[d["status"] == "ok"] if ok_only else d

    def record(self, sha: str) -> PhotoRecord | None:
        """The photo's record (maps and all) from the cache the compute stage wrote, or None."""
        z = load_npz(record_path(self.settings.cache_dir, self.run.model_fingerprint, sha)) if sha else None
        return PhotoRecord.from_npz(z, self.n_taps) if z is not None else None


def build_report(bundle: dict[str, Any], settings: Settings) -> Report:
    run = bundle["run"]
    classes = run.classes
    results = bundle["results"]
    train = results[results["set"] == settings.train_set]
    # a user's own classifier (setting model) has no ImageNet head, so no photo has an ImageNet cat+dog probability
    imagenet = not run.backbone.startswith("own_")
    score = analysis.neither_score(classes, imagenet)
    train_ok = train[(train["status"] == "ok") & (train["pet_p"].notna() | (not imagenet))]
    threshold = analysis.keep_threshold(analysis.training_scores(train_ok, score, classes).dropna().to_numpy(),
                                        settings.neither_keep)
    results = analysis.tag_rows(results, threshold, classes, score)
    n_taps = run.n_taps
    sets = []
    for s in run.sets:
        df = results[results["set"] == s]
        counts = analysis.set_summary(df, classes)
        is_train = s == settings.train_set
        labeled = bool(counts["labeled"])
        sets.append(SetSummary(
            name=safe_name(s), key=s, slug=set_slug(s), is_train=is_train, counts=counts,
            confusion=analysis.confusion(df, classes).to_dict(orient="index") if labeled else None,
            ece=analysis.set_reliability(df, classes=classes).ece if labeled else None,
            probe_accuracy=analysis.probe_accuracy(df, n_taps, classes) if labeled and not is_train else None,
            per_class=analysis.per_class(df, classes) if labeled else None,
            pairs=analysis.confusion_pairs(df, classes) if labeled else None))
    rng = np.random.default_rng(settings.seed)  # one stream over the sets in order: the layer samples
    for i, x in enumerate(sets):
        if x.is_train:
            continue
        df = results[(results["set"] == x.key) & (results["status"] == "ok")]
        take = rng.choice(len(df), size=min(settings.layer_sample, len(df)), replace=False) if len(df) \
            else np.zeros(0, int)
        sets[i] = replace(x, signed_scales=tuple(analysis.signed_scales(df, n_taps)),
                          layer_sample=tuple(int(t) for t in np.sort(take)),
                          attention=tuple(analysis.attention_by_outcome(df, classes).to_dict("records"))
                          if x.counts["labeled"] else ())
    labeled = [s.key for s in sets if not s.is_train and s.counts["labeled"]]
    unrelated = settings.set_for("unrelated")
    has_unrelated = any(s.key == unrelated for s in sets)
    ood = analysis.ood_separation(results, train, labeled, unrelated, settings.neither_keep, classes) \
        if has_unrelated else pd.DataFrame()
    scores, sanity = bundle["scores"], bundle["sanity"]
    board = analysis.leaderboard(scores, settings.seed)
    looks = run.leaderboard.get("looks", 1)
    truth = bundle.get("truth") or truth_mod.Truth()
    localisation = truth_mod.summarise_truth(truth, settings.seed)
    comparison = compare_bundle(bundle, settings, results, n_taps, localisation) if bundle.get("compare") else None
    return Report(
        compare=comparison,
        truth=truth, localisation=localisation,
        head_test=truth_mod.head_test(truth, settings.seed),
        settings=settings, run=run, results=results, scores=scores, sanity=sanity, sets=sets,
        neither_threshold=threshold, neither_score=score, ood=ood, board=board,
        verdict=analysis.verdict(scores, n_taps - 1, settings.seed, board, looks),
        sanity_table=analysis.sanity_summary(sanity, settings.seed),
        comparisons=stats.comparison_table(stats.comparisons(
            scores, n_taps - 1, settings.seed, looks)),
    )


BOARD_LOCALISATION = (("head", "hit"), ("head", "energy"), ("pet", "hit"))  # (region, score) joined to the board


def board_localisation(board: pd.DataFrame, localisation: pd.DataFrame | None, tap: int) -> pd.DataFrame:
    """The board's rows at `tap`, with the localisation scores of the same map joined on (method, tap) as columns
    loc_<region>_<score> (with _lo and _hi); the centred Gaussian row gets the Gaussian map's pointing game and
    energy from the same annotated photos. loc_n: the annotated photos behind them (other photos than the board's
    own sample: every annotated photo, not the leaderboard's sample)."""
    rows = board[board["tap"] == tap].copy() if not board.empty else board
    if rows.empty or localisation is None or localisation.empty:
        return rows
    loc = localisation[localisation["tap"] == tap]
    for region, score in BOARD_LOCALISATION:
        part = loc[loc["region"] == region].set_index("method")
        col = f"loc_{region}_{score}"
        for suffix in ("", "_lo", "_hi"):
            rows[col + suffix] = rows["method"].map(part[score + suffix]) if len(part) else float("nan")
            if len(part):  # the Gaussian baseline's own localisation, on the same photos as any method's row
                g = {"hit": "gaussian", "energy": "gaussian_energy"}[score] + suffix
                # (from the map scored on the most photos: a map made only for the leaderboard's has fewer)
                rows.loc[rows["method"] == "gaussian", col + suffix] = float(part.loc[part["n"].idxmax(), g])
        if len(part):
            rows.loc[rows["method"].isin(part.index), "loc_n"] = rows["method"].map(part["n"])
    return rows


def map_titles(report: Report, lang) -> dict[str, str]:
    """Every scored map's title as readers see it: the methods' own, and the two reference maps."""
    titles = {n: i.title for n, i in report.run.methods_info.items()}
    titles.update(random=lang._("random map"), gaussian=lang._("centred Gaussian"))
    return titles


def tap_labels(run: dict, lang) -> list[str]:
    """'stage 5 (blocks.4)': each tap as readers call it, in their language, with the module it taps."""
    return [f"{lang._(name)} ({module})" for name, module in zip(run.tap_names, run.tap_modules)]


def asset_path(sha: str, name: str) -> str:
    """Where a photo's picture lies in the site: photo.jpg -> assets/ab/<sha>.jpg, photo.webp ->
    assets/ab/<sha>.webp, thumb.webp -> assets/ab/<sha>.thumb.webp (sha: the file's SHA-256, ab its first two)."""
    tail = name.removeprefix("photo.")
    return f"assets/{sha[:2]}/{sha}.{tail}"


def photo_summary(r: dict, report: Report) -> dict[str, Any]:
    """What a thumbnail, a table row or an image page shows of one results row."""
    pred = r.get("prediction") or ""
    classes = report.classes
    probs = {c: _f(r.get(f"p_{c}")) for c in classes}
    sha = r.get("sha256") or ""
    photo = r.get("photo") or ""
    return {
        "name": safe_name(r["file"]),
        "file": r["file"],  # as the results table has it (the key of its ground truth); never shown
        "set_slug": r["set_slug"],
        "slug": r["slug"],
        "page": r["page"],
        "label": r["label"],
        "prediction": pred,
        "confidence": max((p or 0.0) for p in probs.values()) if pred else None,
        "probs": probs,
        "tag": r["tag"],
        "correct": r.get("correct", ""),
        "picture": asset_path(sha, photo) if sha and photo else "",
        "thumb": asset_path(sha, "thumb.webp") if sha and photo else "",
        "sha256": sha,
        "display": (int(r["display_w"]), int(r["display_h"])) if _f(r.get("display_w")) else None,
        "thumb_size": fit_size(int(r["display_w"]), int(r["display_h"]), report.settings.thumb_size)
        if _f(r.get("display_w")) else None,
        "pred_index": classes.index(pred) if pred in classes else None,
        "box": {k: _f(r.get(f"box_{k}")) for k in ("x0", "y0", "x1", "y1", "area", "mass")},
        "width": _int(r.get("width")),
        "height": _int(r.get("height")),
        "probe_predictions": [r.get(f"probe{t}_prediction", "") for t in range(report.n_taps)],
        "imagenet": [(r.get(f"imagenet{i}"), _f(r.get(f"imagenet{i}_p"))) for i in (1, 2, 3)
                     if r.get(f"imagenet{i}")],
        "pet_p": _f(r.get("pet_p")),
        "energy": _f(r.get("energy")),
        "logit_margin": _f(r.get("logit_margin")),
    }


def _f(v: Any) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(v) else v


def _int(v: Any) -> int | None:
    f = _f(v)
    return None if f is None else int(f)


def compare_bundle(bundle: dict[str, Any], settings: Settings, results: pd.DataFrame, n_taps: int,
                   localisation: pd.DataFrame):
    """The comparison of the site's model (A) with the one setting compare named (B), from both models' records."""
    from generator.report import compare

    other = bundle["compare"]
    run, fp_b = bundle["run"], other["model"]["fingerprint"]

    def cams(fp: str, taps: int):
        def load(sha: str) -> np.ndarray | None:
            z = load_npz(record_path(settings.cache_dir, fp, sha)) if sha else None
            record = PhotoRecord.from_npz(z, taps) if z is not None else None
            return record.cam(-1) if record is not None and "cam" in record.maps else None
        return load

    n_taps_b = len(other["model"]["tap_names"])
    sets = [s for s in run.sets if s != settings.train_set]
    a = {"backbone": run.backbone, "recipe_name": run.recipe_name, "checkpoint": run.checkpoint,
         "fingerprint": run.model_fingerprint}
    truth_b = other.get("truth") or truth_mod.Truth()
    return compare.compare_models(
        results, other["results"], sets, min(n_taps, n_taps_b), cams(run.model_fingerprint, n_taps),
        cams(fp_b, n_taps_b), a, other["model"], localisation, truth_mod.summarise_truth(truth_b, settings.seed),
        settings.seed, run.classes)
