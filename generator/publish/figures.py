"""Blog-ready matplotlib figures (PNG), drawn from the report; maps drawn by overlay.py, the browser's twin.

Every figure is regenerated whenever the results, the figure settings or the language change.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from PIL import Image  # noqa: E402

from generator.config import ROLES, Settings
from generator.data.imaging import decode_bytes  # noqa: E402
from generator.data.scan import CLASSES  # noqa: E402
from generator.explain.overlay import blend, heat_rgb  # noqa: E402
from generator.frames import pd  # noqa: E402
from generator.i18n import Lang  # noqa: E402
from generator.report import analysis  # noqa: E402
from generator.report.names import safe_name  # noqa: E402
from generator.report.summary import map_titles, tap_labels  # noqa: E402

WRONG = "#d21f1f"
NEITHER = "#7a4bbd"
# DejaVu for Latin text, Noto Sans CJK for Korean (Debian's fonts-noto-cjk); matplotlib falls back per glyph.
# Only families that are installed: naming a missing one makes matplotlib warn once per text drawn.
_INSTALLED = {f.name for f in font_manager.fontManager.ttflist}
plt.rcParams["font.family"] = ["DejaVu Sans", *(f for f in ("Noto Sans CJK KR", "Noto Sans CJK JP") if f in _INSTALLED),
                               "sans-serif"]


def _sample(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if len(df) <= n:
        return df
    idx = np.random.default_rng(seed).choice(len(df), size=n, replace=False)
    return df.iloc[np.sort(idx)]


def _grid(n: int, cols: int, cell: float = 2.2):
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell, rows * (cell + 0.35)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes.ravel()


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


CELL_PIXELS = 240  # a grid cell is about 2.2 inches at 100 dpi: photos are shrunk to this before drawing


def _picture(row: dict) -> np.ndarray:
    """The photo's display copy, shrunk to what a figure cell shows (drawing full-size photos that matplotlib
    then shrinks took most of the figures' time)."""
    with Image.open(Path(row["pictures"]) / row["photo"]) as img:
        img = img.convert("RGB")
        img.thumbnail((CELL_PIXELS, CELL_PIXELS), Image.LANCZOS)
        return np.asarray(img)


def _overlay(row: dict, report, tap: int, cmap: str) -> np.ndarray | None:
    record = report.record(row["sha256"])
    if record is None:
        return None
    photo = _picture(row)
    h, w = photo.shape[:2]
    cam = record.cam(tap)[record.pred]
    return blend(photo, heat_rgb(cam, w, h, cmap))


def _frame(ax, color: str) -> None:
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_color(color)
        s.set_linewidth(4)


def samples_figure(report, lang: Lang, path: Path) -> bool:
    """A grid of training photos of both classes, labeled."""
    s = report.settings
    df = report.results[(report.results["set"] == s.train_set) & (report.results["status"] == "ok")]
    if df.empty:
        return False
    per = max(1, s.figure_sample // len(CLASSES))
    picks = pd.concat([_sample(df[df["label"] == c], per, s.seed) for c in CLASSES])
    fig, axes = _grid(len(picks), 8)
    for ax, r in zip(axes, picks.to_dict("records")):
        d = decode_bytes(Path(r["path"]).read_bytes(), 224, CELL_PIXELS, s.max_pixels)
        ax.imshow(d.display)
        ax.set_title(lang._(r["label"]), fontsize=10)
    _save(fig, path)
    return True


def cam_grid_figure(report, set_key: str, lang: Lang, path: Path) -> bool:
    """Photos with the CAM of the predicted class; wrong predictions framed in red (as in the original blog),
    photos tagged neither in purple."""
    s = report.settings
    df = report.rows(set_key)
    df = df[df["photo"].astype(bool)]
    if df.empty:
        return False
    wrong = df[df["tag"] == "wrong"]
    k = min(len(wrong), max(0, s.figure_sample // 4))  # show mistakes a sample would likely miss: up to a quarter
    picks = pd.concat([_sample(wrong, k, s.seed), _sample(df[df["tag"] != "wrong"], s.figure_sample - k, s.seed)])
    picks = picks.sort_values("file", kind="stable")
    fig, axes = _grid(len(picks), 8)
    for ax, r in zip(axes, picks.to_dict("records")):
        pic = _overlay(r, report, -1, s.colormap)
        if pic is not None:
            ax.imshow(pic)
        head = f"{lang._(r['prediction'])} {lang.pct(max(r[f'p_{c}'] for c in CLASSES), 0)}"
        if r["label"]:
            head += f" ({lang._(r['label'])})"
        color = {"wrong": WRONG, "neither": NEITHER}.get(r["tag"])
        ax.set_title(head, fontsize=9, color=color or "black")
        if color:
            _frame(ax, color)
    fig.suptitle(lang._("CAM on the %(set)s photos", set=safe_name(set_key)), fontsize=12)
    _save(fig, path)
    return True


def layers_figure(report, lang: Lang, path: Path) -> bool:
    """Rows = photos, columns = the four stages (CAM of the predicted class), as in the original."""
    s = report.settings
    sets = [x.key for x in report.eval_sets]
    df = report.results[report.results["set"].isin(sets) & (report.results["status"] == "ok")
                        & report.results["photo"].astype(bool)]
    if df.empty:
        return False
    n = min(s.figure_sample, 8)
    per = max(1, n // max(1, len(sets)))
    picks = pd.concat([_sample(df[df["set"] == x], per, s.seed) for x in sets])
    labels = tap_labels(report.run, lang)
    T = len(labels)
    fig, axes = plt.subplots(len(picks), T, figsize=(T * 2.0, len(picks) * 2.0), squeeze=False)
    for i, r in enumerate(picks.to_dict("records")):
        for t in range(T):
            ax = axes[i, t]
            pic = _overlay(r, report, t, s.colormap)
            if pic is not None:
                ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(labels[t], fontsize=9)
            if t == 0:
                ax.set_ylabel(f"{safe_name(r['file'])[:18]}\n{lang._(r['prediction'])}", fontsize=8)
    _save(fig, path)
    return True


def _labeled_panels(report, width: float, height: float):
    """One subplot per set that has labeled photos: (figure, [(axes, set name, that set's rows)]), or None."""
    frames = [(x.name, report.rows(x.key, ok_only=False)) for x in report.labeled_sets]
    if not frames:
        return None
    fig, axes = plt.subplots(1, len(frames), figsize=(width * len(frames), height), squeeze=False)
    return fig, [(ax, name, d) for ax, (name, d) in zip(axes[0], frames)]


def confusion_figure(report, lang: Lang, path: Path) -> bool:
    panels = _labeled_panels(report, 3.2, 3)
    if panels is None:
        return False
    fig, cells = panels
    names = [lang._(c) for c in CLASSES]
    for ax, name, d in cells:
        m = analysis.confusion(d).to_numpy()
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black")
        ax.set_xticks(range(len(CLASSES)), names)
        ax.set_yticks(range(len(CLASSES)), names)
        ax.set_xlabel(lang._("predicted"))
        ax.set_ylabel(lang._("label"))
        ax.set_title(name)
    _save(fig, path)
    return True


def reliability_figure(report, lang: Lang, path: Path) -> bool:
    """Reliability diagram (accuracy vs confidence per bin) with each set's expected calibration error."""
    panels = _labeled_panels(report, 3.6, 3.4)
    if panels is None:
        return False
    fig, cells = panels
    for ax, name, d in cells:
        rel = analysis.set_reliability(d)
        centers = (rel.edges[:-1] + rel.edges[1:]) / 2
        width = rel.edges[1] - rel.edges[0]
        filled = rel.counts > 0
        ax.bar(centers[filled], rel.accuracy[filled], width=width * 0.9, color="#4878cf", label=lang._("accuracy"))
        ax.plot([rel.edges[0], 1], [rel.edges[0], 1], "k--", lw=1, label=lang._("perfect calibration"))
        for c, a, n in zip(centers[filled], rel.accuracy[filled], rel.counts[filled]):
            ax.text(c, min(a, 0.98), str(n), ha="center", va="top", fontsize=7, color="white")
        ax.set_xlim(rel.edges[0], 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(lang._("confidence of the prediction"))
        ax.set_ylabel(lang._("accuracy"))
        ax.set_title(lang._("%(set)s: ECE %(ece)s", set=name, ece=lang.num(rel.ece, 4)))
        ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)
    return True


def confidence_figure(report, lang: Lang, path: Path) -> bool:
    """Histograms of confidence for correct vs wrong predictions (log counts: mistakes are rare)."""
    panels = _labeled_panels(report, 3.6, 3.2)
    if panels is None:
        return False
    fig, cells = panels
    bins = np.linspace(0.5, 1.0, 21)
    for ax, name, d in cells:
        d = analysis.labeled_ok(d)
        conf = analysis.confidence(d)
        right = d["prediction"] == d["label"]
        ax.hist(conf[right], bins=bins, color="#1f8a3b", alpha=0.7,
                label=lang._("correct (%(n)s)", n=lang.num(int(right.sum()))))
        ax.hist(conf[~right], bins=bins, color=WRONG, alpha=0.8,
                label=lang._("wrong (%(n)s)", n=lang.num(int((~right).sum()))))
        ax.set_yscale("log")
        ax.set_xlabel(lang._("confidence"))
        ax.set_ylabel(lang._("photos (log scale)"))
        ax.set_title(name)
        ax.legend(fontsize=7, loc="upper left")
    _save(fig, path)
    return True


def attention_figure(report, lang: Lang, path: Path) -> bool:
    """CAM box area share vs in-box mass share, correct vs wrong: is a mistake's attention diffuse?"""
    d = pd.concat([analysis.labeled_ok(report.rows(x.key)) for x in report.labeled_sets]) if report.labeled_sets \
        else pd.DataFrame()
    if d.empty:
        return False
    right = d["prediction"] == d["label"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    axes[0].scatter(d.loc[right, "box_area"], d.loc[right, "box_mass"], s=6, alpha=0.35, color="#1f8a3b",
                    label=lang._("correct"))
    axes[0].scatter(d.loc[~right, "box_area"], d.loc[~right, "box_mass"], s=30, marker="x", color=WRONG,
                    label=lang._("wrong"))
    axes[0].set_xlabel(lang._("share of the photo inside the CAM box"))
    axes[0].set_ylabel(lang._("share of the CAM inside the box"))
    axes[0].legend(fontsize=8)
    axes[1].boxplot([d.loc[right, "box_area"].dropna(), d.loc[~right, "box_area"].dropna()],
                    tick_labels=[lang._("correct"), lang._("wrong")])
    axes[1].set_ylabel(lang._("box area share"))
    axes[1].set_title(lang._("CAM box size by outcome"), fontsize=10)
    _save(fig, path)
    return True


def ood_figure(report, lang: Lang, path: Path) -> bool:
    """The backbone's summed cat+dog probability per set, with the 'neither' threshold."""
    sets = [x for x in report.sets if x.counts["ok"]]
    if report.unrelated is None or not sets:
        return False
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(sets)))
    for i, x in enumerate(sets):
        v = report.rows(x.key)["pet_p"].dropna().to_numpy()
        jitter = np.random.default_rng(i).uniform(-0.18, 0.18, len(v))
        color = NEITHER if x is report.unrelated else "#4878cf"
        ax.scatter(np.clip(v, 1e-4, 1), i + jitter, s=5, alpha=0.4, color=color)
    ax.axvline(report.neither_threshold, color="black", lw=1, ls="--",
               label=lang._("threshold %(t)s", t=lang.pct(report.neither_threshold, 1)))
    ax.set_xscale("log")
    ax.set_yticks(range(len(sets)), [x.name for x in sets])
    ax.set_xlabel(lang._("ImageNet probability of the cat and dog classes (log scale)"))
    ax.legend(fontsize=8, loc="lower left")
    _save(fig, path)
    return True


def leaderboard_figure(report, lang: Lang, path: Path) -> bool:
    """Insertion minus deletion at the last tap, pooled over the sets, with 95% bootstrap intervals."""
    b = report.board
    if b.empty:
        return False
    last = b[(b["set"] == "all") & (b["tap"] == report.n_taps - 1)].sort_values("combined")
    titles = map_titles(report, lang)
    fig, ax = plt.subplots(figsize=(6.5, 0.6 + 0.4 * len(last)))
    y = np.arange(len(last))
    err = np.vstack([last["combined"] - last["combined_lo"], last["combined_hi"] - last["combined"]])
    colors = ["#999999" if m in ("random", "gaussian") else "#4878cf" for m in last["method"]]
    ax.barh(y, last["combined"], xerr=err, color=colors, capsize=3)
    ax.set_yticks(y, [titles.get(m, m) for m in last["method"]])
    ax.set_xlabel(lang._("insertion AUC minus deletion AUC (higher is better), 95% bootstrap interval"))
    ax.set_title(lang._("Which map explains the model? (%(n)s photos)", n=lang.num(int(last["n"].max()))),
                 fontsize=10)
    _save(fig, path)
    return True


def catalog(report, lang: Lang) -> list[tuple[str, Callable, str, str]]:
    """Every figure: (file, draw(report, lang, path) -> drawn?, caption, alt text)."""
    out = [("samples.png", samples_figure, lang._("Training photos of both classes (seeded sample)."),
            lang._("Grid of training photos, cats and dogs, labeled."))]
    for role in ROLES:  # one grid per role of the story, drawn from whichever set plays it
        key, file = report.settings.set_for(role), f"cam_{role}.png"
        if any(x.key == key for x in report.eval_sets):
            out.append((file, functools.partial(_cam_grid, key),
                        lang._("CAM of the predicted class on %(set)s photos; wrong predictions framed in red, photos "
                               "tagged neither in purple.", set=safe_name(key)),
                        lang._("Grid of %(set)s photos with their class activation maps.", set=safe_name(key))))
    out += [
        ("layers.png", layers_figure, lang._("CAM at each of the four stages (columns) for sample photos (rows)."),
         lang._("Grid: rows are photos, columns are network stages, each showing the stage's CAM.")),
        ("confusion.png", confusion_figure, lang._("Confusion matrix per labeled set."),
         lang._("Confusion matrices of the labeled sets.")),
        ("reliability.png", reliability_figure,
         lang._("Reliability diagram: accuracy per confidence bin (bar labels: photos per bin) and the expected "
                "calibration error (ECE) per labeled set."), lang._("Reliability diagrams of the labeled sets.")),
        ("confidence.png", confidence_figure, lang._("Confidence of correct and wrong predictions (log-scale counts)."),
         lang._("Histograms of prediction confidence, correct versus wrong.")),
        ("attention.png", attention_figure,
         lang._("Where the model looks: CAM box area against the share of the map inside it, correct against wrong "
                "predictions."),
         lang._("Scatter plot of CAM box area against in-box CAM mass, and box plots of box area by outcome.")),
        ("neither.png", ood_figure,
         lang._("How much of the ImageNet head's probability goes to its cat and dog classes, per set, and the "
                "'neither' threshold."),
         lang._("Dot plot per set of the summed cat and dog probability, with a dashed threshold line.")),
        ("leaderboard.png", leaderboard_figure,
         lang._("Faithfulness of each map method at the last stage against two baselines, with 95% bootstrap "
                "intervals over the scored photos."),
         lang._("Horizontal bar chart of insertion minus deletion AUC per method, with error bars.")),
    ]
    return out


def _cam_grid(key: str, report, lang: Lang, path: Path) -> bool:
    return cam_grid_figure(report, key, lang, path)


@dataclass(frozen=True)
class FigureJob:
    """What forked figure workers inherit: the report, the language, the catalog, the folder."""

    report: Any
    lang: Lang
    catalog: list[tuple[str, Callable, str, str]]
    outdir: Path


def _draw(job: FigureJob, i: int) -> bool:
    file, draw, _caption, _alt = job.catalog[i]
    return draw(job.report, job.lang, job.outdir / file)


def make_all(report, settings: Settings, outdir: Path) -> list[dict]:
    """Every figure, drawn in parallel by forked workers (each figure is independent and matplotlib is
    single-threaded); returns [{file, caption, alt}] of the figures drawn, for the pages."""
    from generator.data.workers import forked_map

    lang = Lang(settings.lang)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    figures = catalog(report, lang)
    job = FigureJob(report=report, lang=lang, catalog=figures, outdir=outdir)
    drawn = forked_map(_draw, job, list(range(len(figures))), settings.n_workers)
    return [{"file": f, "caption": c, "alt": a} for (f, _, c, a), ok in zip(figures, drawn) if ok]
