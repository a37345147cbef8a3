"""Figures of the maps as evidence: where the model looks by outcome, and which map to trust."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generator.frames import pd
from generator.i18n import Lang
from generator.publish.figures.canvas import (
    WRONG,
    plt,
    save,
)
from generator.report import analysis
from generator.report.summary import map_titles


def attention_figure(report, lang: Lang, path: Path) -> bool:
    """CAM box area share vs in-box mass share, correct vs wrong: is a mistake's attention diffuse?"""
    parts = [analysis.labeled_ok(report.rows(x.key), report.classes) for x in report.labeled_sets]
    d = pd.concat(parts) if parts else pd.DataFrame()
    if d.empty:
        return False
    right = d["prediction"] == d["label"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    axes[0].scatter(d.loc[right, "box_area"], d.loc[right, "box_mass"], s=6, alpha=0.35, color="#1f8a3b",
                    label=lang._("correct"))
    axes[0].scatter(d.loc[~right, "box_area"], d.loc[~right, "box_mass"], s=30, marker="x", color=WRONG,
                    label=lang._("wrong"))
    if report.run.no_cam_reason:  # the box of the gradient map the pages show in CAM's place
        method = report.run.last_title
        axes[0].set_xlabel(lang._("share of the photo inside the %(method)s box", method=method))
        axes[0].set_ylabel(lang._("share of the %(method)s map inside the box", method=method))
    else:
        axes[0].set_xlabel(lang._("share of the photo inside the CAM box"))
        axes[0].set_ylabel(lang._("share of the CAM inside the box"))
    axes[0].legend(fontsize=8)
    axes[1].boxplot([d.loc[right, "box_area"].dropna(), d.loc[~right, "box_area"].dropna()],
                    tick_labels=[lang._("correct"), lang._("wrong")])
    axes[1].set_ylabel(lang._("box area share"))
    axes[1].set_title(lang._("%(method)s box size by outcome", method=report.run.last_title)
                      if report.run.no_cam_reason else lang._("CAM box size by outcome"), fontsize=10)
    save(fig, path)
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
    save(fig, path)
    return True
