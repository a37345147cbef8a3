"""Two models on one site (setting compare): pure functions on arrays and tables, so each number can be checked by hand.

Model A is the site's own model, model B the one it is compared with. Per labelled photo of the eval sets that both
models explained: whether each got it right; per set the two accuracies with 95% Wilson intervals and McNemar's exact
test on the photos where they disagree (scipy.stats.binomtest on the discordant pairs); the photos that flipped;
where attention moved (per photo the Spearman rank correlation of the two last-stage CAMs of the labelled class,
its median with a 95% bootstrap interval); probe accuracy per stage and localisation scores for both.
Imports numpy, pandas and scipy, no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from generator.data.scan import DEFAULT_CLASSES
from generator.frames import pd

ALPHA = 0.05
KEY = ["set", "file"]


@dataclass(frozen=True)
class McNemar:
    """Paired accuracies of two models on the same n photos."""

    n: int
    a_right: int
    b_right: int
    a_only: int  # A right, B wrong
    b_only: int  # A wrong, B right
    p: float  # exact two-sided McNemar p (binomial test of a_only against a_only + b_only at 1/2)

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only


def wilson(k: int, n: int) -> tuple[float, float, float]:
    """(k/n, low, high): the share and its 95% Wilson score interval (nan for n = 0)."""
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=1 - ALPHA, method="wilson")
    return k / n, float(ci.low), float(ci.high)


def mcnemar(a_correct: np.ndarray, b_correct: np.ndarray) -> McNemar:
    """McNemar's exact test on two boolean arrays over the same photos."""
    from scipy.stats import binomtest

    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"the two models' outcomes differ in length ({a.shape} and {b.shape})")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    p = float(binomtest(a_only, a_only + b_only, 0.5).pvalue) if a_only + b_only else 1.0
    return McNemar(n=int(a.size), a_right=int(a.sum()), b_right=int(b.sum()), a_only=a_only, b_only=b_only, p=p)


def paired(results_a: pd.DataFrame, results_b: pd.DataFrame, sets: list[str],
           classes: tuple[str, ...] = DEFAULT_CLASSES) -> pd.DataFrame:
    """One row per labelled photo of `sets` that both models explained: set, file, label, sha256, page,
    prediction_a, prediction_b, correct_a, correct_b, p_label_a, p_label_b."""
    cols = [*KEY, "label", "prediction", "status", "sha256", "page", *[f"p_{c}" for c in classes]]

    def usable(d: pd.DataFrame) -> pd.DataFrame:
        d = d[d["set"].isin(sets) & (d["status"] == "ok") & d["label"].isin(classes)]
        return d[[c for c in cols if c in d]]

    a, b = usable(results_a), usable(results_b)
    m = a.merge(b[[*KEY, "prediction", "sha256", *[f"p_{c}" for c in classes]]], on=KEY, suffixes=("_a", "_b"))
    m = m.rename(columns={"sha256_a": "sha256"}).drop(columns=["sha256_b", "status"], errors="ignore")
    m["correct_a"] = m["prediction_a"] == m["label"]
    m["correct_b"] = m["prediction_b"] == m["label"]
    for side in ("a", "b"):
        m[f"p_label_{side}"] = [float(r[f"p_{lab}_{side}"]) for lab, (_, r) in zip(m["label"], m.iterrows())]
    return m.reset_index(drop=True)


def accuracy_table(pairs: pd.DataFrame, sets: list[str]) -> pd.DataFrame:
    """Per set (and all of them together when there are two or more): n, each model's accuracy with its 95%
    interval, the flips going from B to A (right_to_wrong: B right, A wrong; wrong_to_right: the reverse),
    McNemar's exact p, and whether the difference is decided at 5%."""
    rows = []
    groups = [(s, pairs[pairs["set"] == s]) for s in sets if (pairs["set"] == s).any()]
    if len(groups) > 1:
        groups.append(("", pairs))  # "" = every set together
    for name, g in groups:
        t = mcnemar(g["correct_a"].to_numpy(), g["correct_b"].to_numpy())
        acc_a, lo_a, hi_a = wilson(t.a_right, t.n)
        acc_b, lo_b, hi_b = wilson(t.b_right, t.n)
        rows.append({"set": name, "n": t.n, "acc_a": acc_a, "acc_a_lo": lo_a, "acc_a_hi": hi_a, "acc_b": acc_b,
                     "acc_b_lo": lo_b, "acc_b_hi": hi_b, "right_to_wrong": t.b_only, "wrong_to_right": t.a_only,
                     "p": t.p, "decided": t.p < ALPHA})
    return pd.DataFrame(rows)


def flips(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(right under B and wrong under A, wrong under B and right under A): the photos the change from B to A
    broke and fixed, most confident change first."""
    broke = pairs[pairs["correct_b"] & ~pairs["correct_a"]].sort_values("p_label_a", kind="stable")
    fixed = pairs[~pairs["correct_b"] & pairs["correct_a"]].sort_values("p_label_a", ascending=False, kind="stable")
    return broke.reset_index(drop=True), fixed.reset_index(drop=True)


def _resized(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if m.shape == shape:
        return m
    from scipy.ndimage import zoom

    return zoom(m, (shape[0] / m.shape[0], shape[1] / m.shape[1]), order=1)


def rank_correlation(map_a: np.ndarray, map_b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps over their cells (the coarser map resized bilinearly to the finer
    one's grid first); nan when either map is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(map_a, dtype=np.float64), np.asarray(map_b, dtype=np.float64)
    shape = max(a.shape, b.shape, key=lambda s: s[0] * s[1])
    a, b = _resized(a, shape).ravel(), _resized(b, shape).ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def attention_moves(items: Iterable[tuple[str, str, np.ndarray | None, np.ndarray | None]]) -> pd.DataFrame:
    """(set, file, map of A, map of B) per photo -> set, file, rho; photos lacking a map are left out."""
    rows = [{"set": s, "file": f, "rho": rank_correlation(a, b)} for s, f, a, b in items
            if a is not None and b is not None]
    return pd.DataFrame(rows, columns=["set", "file", "rho"])


def median_interval(values: np.ndarray, seed: int, n: int = 2000) -> tuple[float, float, float]:
    """(median, low, high): the median and its 95% percentile-bootstrap interval over n resamples."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    meds = np.median(np.random.default_rng(seed).choice(v, size=(n, v.size), replace=True), axis=1)
    lo, hi = np.percentile(meds, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(np.median(v)), float(lo), float(hi)


def probe_table(results_a: pd.DataFrame, results_b: pd.DataFrame, pairs: pd.DataFrame, n_taps: int) -> pd.DataFrame:
    """Per stage: each model's probe accuracy on the paired photos (n, accuracy, 95% interval)."""
    labels = pairs.set_index(KEY)["label"]
    rows = []
    for t in range(n_taps):
        row: dict = {"tap": t, "n": len(pairs)}
        for side, res in (("a", results_a), ("b", results_b)):
            col = f"probe{t}_prediction"
            if col not in res:
                row[f"acc_{side}"] = row[f"acc_{side}_lo"] = row[f"acc_{side}_hi"] = float("nan")
                continue
            pred = res.set_index(KEY)[col].reindex(labels.index)
            k = int((pred.to_numpy() == labels.to_numpy()).sum())
            row[f"acc_{side}"], row[f"acc_{side}_lo"], row[f"acc_{side}_hi"] = wilson(k, len(labels))
        rows.append(row)
    return pd.DataFrame(rows)


def localisation_table(summary_a: pd.DataFrame | None, summary_b: pd.DataFrame | None, method: str = "cam"
                       ) -> pd.DataFrame:
    """The two models' localisation summaries (evaluate/truth.summarise_truth) for one method side by side: one
    row per (tap, region) with n, hit and energy (and their intervals) of each, suffixed _a and _b."""
    cols = ["tap", "region", "n", "hit", "hit_lo", "hit_hi", "energy", "energy_lo", "energy_hi", "centre"]
    parts = []
    for side, s in (("a", summary_a), ("b", summary_b)):
        if s is None or s.empty:
            return pd.DataFrame()
        parts.append(s[s["method"] == method][cols].set_index(["tap", "region"]).add_suffix(f"_{side}"))
    return parts[0].join(parts[1], how="inner").reset_index()


@dataclass(frozen=True)
class Comparison:
    """What compare.html shows (A: this site's model; B: the other)."""

    a: dict  # recipe name, checkpoint, fingerprint, backbone of each model
    b: dict
    accuracy: pd.DataFrame  # accuracy_table
    broke: pd.DataFrame  # flips: right under B, wrong under A
    fixed: pd.DataFrame  # flips: wrong under B, right under A
    moves: pd.DataFrame  # attention_moves, with page and label, most moved (lowest rho) first
    rho: tuple[float, float, float]  # median, low, high
    probes: pd.DataFrame  # probe_table
    localisation: pd.DataFrame  # localisation_table
    per_photo: dict = field(default_factory=dict)  # (set, file) -> B's prediction, p of the label, rho
    results_b: pd.DataFrame | None = None  # B's results table (the stage story reads a fine-tuned B's stages)

    def photo(self, set_key: str, file: str) -> dict | None:
        """What a photo page says of the photo under model B, or None when B did not explain it."""
        return self.per_photo.get((set_key, file))


def compare_models(results_a: pd.DataFrame, results_b: pd.DataFrame, sets: list[str], n_taps: int,
                   cam_a: Callable[[str], np.ndarray | None], cam_b: Callable[[str], np.ndarray | None],
                   a: dict, b: dict, summary_a=None, summary_b=None, seed: int = 0,
                   classes: tuple[str, ...] = DEFAULT_CLASSES) -> Comparison:
    """Everything compare.html shows. cam_a / cam_b: a photo's sha256 -> its last-stage CAMs (K, H, W) under
    that model, or None."""
    pairs = paired(results_a, results_b, sets, classes)
    broke, fixed = flips(pairs)
    items = []
    for r in pairs.to_dict("records"):
        k = classes.index(r["label"])
        ma, mb = cam_a(r["sha256"]), cam_b(r["sha256"])
        items.append((r["set"], r["file"], None if ma is None else ma[k], None if mb is None else mb[k]))
    moves = attention_moves(items)
    moves = moves.merge(pairs[[*KEY, "label", "page", "sha256", "correct_a", "correct_b"]], on=KEY, how="left")
    moves = moves.sort_values("rho", kind="stable", na_position="last").reset_index(drop=True)
    rho_of = dict(zip(zip(moves["set"], moves["file"]), moves["rho"]))
    per_photo = {(r["set"], r["file"]): {"prediction": r["prediction_b"], "p_label": r["p_label_b"],
                                         "correct": bool(r["correct_b"]), "rho": rho_of.get((r["set"], r["file"])),
                                         "recipe": b.get("recipe_name", "")}
                 for r in pairs.to_dict("records")}
    return Comparison(a=a, b=b, accuracy=accuracy_table(pairs, sets), broke=broke, fixed=fixed, moves=moves,
                      per_photo=per_photo, results_b=results_b,
                      rho=median_interval(moves["rho"].to_numpy(), seed),
                      probes=probe_table(results_a, results_b, pairs, n_taps),
                      localisation=localisation_table(summary_a, summary_b))
