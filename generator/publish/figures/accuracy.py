"""Figures of how well it classifies: confusion, calibration, confidence, and the "neither" tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generator.i18n import Lang
from generator.publish.figures.canvas import (
    NEITHER,
    WRONG,
    labeled_panels,
    plt,
    save,
)
from generator.report import analysis


def confusion_figure(report, lang: Lang, path: Path) -> bool:
    panels = labeled_panels(report, 3.2, 3)
    if panels is None:
        return False
    fig, cells = panels
    classes = report.classes
    names = [lang._(c) for c in classes]
    k = len(classes)
    for ax, name, d in cells:
        m = analysis.confusion(d, classes).to_numpy()
        ax.imshow(m, cmap="Blues")
        if k <= 12:  # a count per cell while it can be read; a heat map beyond
            for (i, j), v in np.ndenumerate(m):
                ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black")
        small = {"fontsize": 5, "rotation": 90} if k > 12 else {}
        ax.set_xticks(range(k), names, **small)
        ax.set_yticks(range(k), names, **{"fontsize": 5} if k > 12 else {})
        ax.set_xlabel(lang._("predicted"))
        ax.set_ylabel(lang._("label"))
        ax.set_title(name)
    save(fig, path)
    return True


def reliability_figure(report, lang: Lang, path: Path) -> bool:
    """Reliability diagram (accuracy vs confidence per bin) with each set's expected calibration error."""
    panels = labeled_panels(report, 3.6, 3.4)
    if panels is None:
        return False
    fig, cells = panels
    for ax, name, d in cells:
        rel = analysis.set_reliability(d, classes=report.classes)
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
    save(fig, path)
    return True


def confidence_figure(report, lang: Lang, path: Path) -> bool:
    """Histograms of confidence for correct vs wrong predictions (log counts: mistakes are rare)."""
    panels = labeled_panels(report, 3.6, 3.2)
    if panels is None:
        return False
    fig, cells = panels
    bins = np.linspace(1 / len(report.classes), 1.0, 21)
    for ax, name, d in cells:
        d = analysis.labeled_ok(d, report.classes)
        conf = analysis.confidence(d, report.classes)
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
    save(fig, path)
    return True


def ood_figure(report, lang: Lang, path: Path) -> bool:
    """The score that decides 'neither' per set (the backbone's summed cat+dog probability, or for other classes
    and users' own models the head's highest probability), with the threshold."""
    sets = [x for x in report.sets if x.counts["ok"]]
    if report.unrelated is None or not sets:
        return False
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(sets)))
    for i, x in enumerate(sets):
        v = analysis.score_values(report.rows(x.key), report.neither_score, report.classes).dropna().to_numpy()
        jitter = np.random.default_rng(i).uniform(-0.18, 0.18, len(v))
        color = NEITHER if x is report.unrelated else "#4878cf"
        ax.scatter(np.clip(v, 1e-4, 1), i + jitter, s=5, alpha=0.4, color=color)
    ax.axvline(report.neither_threshold, color="black", lw=1, ls="--",
               label=lang._("threshold %(t)s", t=lang.pct(report.neither_threshold, 1)))
    ax.set_xscale("log")
    ax.set_yticks(range(len(sets)), [x.name for x in sets])
    pets = report.neither_score == "pet_p"
    ax.set_xlabel(lang._("ImageNet probability of the cat and dog classes (log scale)") if pets
                  else lang._("the head's highest probability (log scale)"))
    ax.legend(fontsize=8, loc="lower left")
    save(fig, path)
    return True
