"""Describe the report: the typed summaries every page and figure is made from (no rendering here).

Input: the bundle of the compute stages (results table, leaderboard scores, sanity check, run facts).
Output: a Report. Pages and figures only render it; the story's sentences are made from it in findings.py.
Imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import analysis
from .config import Settings
from .datasets import CLASSES
from .files import load_npz
from .imaging import fit_size
from .record import PhotoRecord, record_path
from .render import safe_name, set_slug

UNRELATED = "unrelated"  # the set of photos that are neither cats nor dogs (by its usual name)


@dataclass
class SetSummary:
    name: str  # as shown (file-system name made printable)
    key: str  # the set's name in the results table
    slug: str
    is_train: bool
    counts: dict[str, Any]  # analysis.set_summary
    confusion: dict[str, dict[str, int]] | None = None
    probe_accuracy: list[float] | None = None
    ece: float | None = None


@dataclass
class Report:
    settings: Settings
    run: dict[str, Any]
    results: pd.DataFrame  # one row per file, tagged (analysis.tag_rows)
    scores: pd.DataFrame  # leaderboard: one row per (photo, map)
    sanity: pd.DataFrame  # one row per (photo, method, randomisation)
    sets: list[SetSummary]
    neither_threshold: float
    ood: pd.DataFrame  # analysis.ood_separation
    board: pd.DataFrame  # analysis.leaderboard
    verdict: analysis.Verdict | None
    sanity_table: pd.DataFrame  # analysis.sanity_summary
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)  # analysis.comparison_table, last tap
    figures: list[dict] = field(default_factory=list)  # filled by the figures stage

    @property
    def n_taps(self) -> int:
        return len(self.run["tap_modules"])

    @property
    def eval_sets(self) -> list[SetSummary]:
        return [s for s in self.sets if not s.is_train]

    @property
    def labeled_sets(self) -> list[SetSummary]:
        return [s for s in self.eval_sets if s.counts["labeled"]]

    @property
    def unrelated(self) -> SetSummary | None:
        return next((s for s in self.eval_sets if s.key == UNRELATED), None)

    def rows(self, set_key: str, ok_only: bool = True) -> pd.DataFrame:
        d = self.results[self.results["set"] == set_key]
        return d[d["status"] == "ok"] if ok_only else d

    def record(self, sha: str) -> PhotoRecord | None:
        """The photo's record (maps and all) from the cache the compute stage wrote, or None."""
        z = load_npz(record_path(self.settings.cache_dir, self.run["model_fingerprint"], sha)) if sha else None
        return PhotoRecord.from_npz(z, self.n_taps) if z is not None else None


def build_report(bundle: dict[str, Any], settings: Settings) -> Report:
    run = bundle["run"]
    results = bundle["results"]
    train = results[results["set"] == settings.train_set]
    threshold = analysis.keep_threshold(train.loc[train["status"] == "ok", "pet_p"].dropna().to_numpy(),
                                        settings.neither_keep)
    results = analysis.tag_rows(results, threshold)
    n_taps = len(run["tap_modules"])
    sets = []
    for s in run["sets"]:
        df = results[results["set"] == s]
        summary = SetSummary(name=safe_name(s), key=s, slug=set_slug(s), is_train=s == settings.train_set,
                             counts=analysis.set_summary(df))
        if summary.counts["labeled"]:
            summary.confusion = analysis.confusion(df).to_dict(orient="index")
            summary.ece = analysis.set_reliability(df).ece
            if not summary.is_train:
                summary.probe_accuracy = analysis.probe_accuracy(df, n_taps)
        sets.append(summary)
    labeled = [s.key for s in sets if not s.is_train and s.counts["labeled"]]
    has_unrelated = any(s.key == UNRELATED for s in sets)
    ood = analysis.ood_separation(results, train, labeled, UNRELATED, settings.neither_keep) if has_unrelated \
        else pd.DataFrame()
    scores, sanity = bundle["scores"], bundle["sanity"]
    board = analysis.leaderboard(scores, settings.seed)
    looks = run.get("leaderboard", {}).get("looks", 1)
    return Report(
        settings=settings, run=run, results=results, scores=scores, sanity=sanity, sets=sets,
        neither_threshold=threshold, ood=ood, board=board,
        verdict=analysis.verdict(scores, n_taps - 1, settings.seed, board, looks),
        sanity_table=analysis.sanity_summary(sanity, settings.seed),
        comparisons=analysis.comparison_table(analysis.comparisons(
            scores, n_taps - 1, settings.seed, looks)),
    )


def tap_labels(run: dict, lang) -> list[str]:
    """'stage 5 (blocks.4)': each tap as readers call it, in their language, with the module it taps."""
    return [f"{lang._(name)} ({module})" for name, module in zip(run["tap_names"], run["tap_modules"])]


def asset_path(sha: str, name: str) -> str:
    """Where a photo's picture lies in the site: photo.jpg -> assets/ab/<sha>.jpg, photo.webp ->
    assets/ab/<sha>.webp, thumb.webp -> assets/ab/<sha>.thumb.webp (sha: the file's SHA-256, ab its first two)."""
    tail = name.removeprefix("photo.")
    return f"assets/{sha[:2]}/{sha}.{tail}"


def photo_summary(r: dict, report: Report) -> dict[str, Any]:
    """What a thumbnail, a table row or an image page shows of one results row."""
    pred = r.get("prediction") or ""
    probs = {c: _f(r.get(f"p_{c}")) for c in CLASSES}
    sha = r.get("sha256") or ""
    photo = r.get("photo") or ""
    return {
        "name": safe_name(r["file"]),
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
        "pred_index": CLASSES.index(pred) if pred in CLASSES else None,
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
