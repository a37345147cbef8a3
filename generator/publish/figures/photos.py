"""Figures of photos: training samples, CAM grids of a set, the CAM at each stage."""

from __future__ import annotations

from pathlib import Path

from generator.data.imaging import decode_bytes
from generator.frames import pd
from generator.i18n import Lang
from generator.publish.figures.canvas import (
    CELL_PIXELS,
    NEITHER,
    WRONG,
    frame,
    grid,
    map_picture,
    plt,
    sample_rows,
    save,
)
from generator.report.names import safe_name
from generator.report.summary import tap_labels


def samples_figure(report, lang: Lang, path: Path) -> bool:
    """A grid of training photos of every class (of the first figure_sample classes when there are more), labeled."""
    s = report.settings
    df = report.results[(report.results["set"] == s.train_set) & (report.results["status"] == "ok")]
    if df.empty:
        return False
    classes = report.classes[:s.figure_sample]
    per = max(1, s.figure_sample // len(classes))
    picks = pd.concat([sample_rows(df[df["label"] == c], per, s.seed) for c in classes])
    fig, axes = grid(len(picks), 8)
    for ax, r in zip(axes, picks.to_dict("records")):
        d = decode_bytes(Path(r["path"]).read_bytes(), 224, CELL_PIXELS, s.max_pixels)
        ax.imshow(d.display)
        ax.set_title(lang._(r["label"]), fontsize=10)
    save(fig, path)
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
    right = df[df["tag"] != "wrong"]
    picks = pd.concat([sample_rows(wrong, k, s.seed), sample_rows(right, s.figure_sample - k, s.seed)])
    picks = picks.sort_values("file", kind="stable")
    fig, axes = grid(len(picks), 8)
    for ax, r in zip(axes, picks.to_dict("records")):
        pic = map_picture(r, report, -1, s.colormap)
        if pic is not None:
            ax.imshow(pic)
        head = f"{lang._(r['prediction'])} {lang.pct(max(r[f'p_{c}'] for c in report.classes), 0)}"
        if r["label"]:
            head += f" ({lang._(r['label'])})"
        color = {"wrong": WRONG, "neither": NEITHER}.get(r["tag"])
        ax.set_title(head, fontsize=9, color=color or "black")
        if color:
            frame(ax, color)
    if report.run.no_cam_reason:
        fig.suptitle(lang._("%(method)s on the %(set)s photos", method=report.run.last_title, set=safe_name(set_key)),
                     fontsize=12)
    else:
        fig.suptitle(lang._("CAM on the %(set)s photos", set=safe_name(set_key)), fontsize=12)
    save(fig, path)
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
    picks = pd.concat([sample_rows(df[df["set"] == x], per, s.seed) for x in sets])
    labels = tap_labels(report.run, lang)
    T = len(labels)
    fig, axes = plt.subplots(len(picks), T, figsize=(T * 2.0, len(picks) * 2.0), squeeze=False)
    for i, r in enumerate(picks.to_dict("records")):
        for t in range(T):
            ax = axes[i, t]
            pic = map_picture(r, report, t, s.colormap)
            if pic is not None:
                ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(labels[t], fontsize=9)
            if t == 0:
                ax.set_ylabel(f"{safe_name(r['file'])[:18]}\n{lang._(r['prediction'])}", fontsize=8)
    save(fig, path)
    return True
