"""What every figure shares: matplotlib set up headless, fonts for both languages, colours, grids of photos."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from PIL import Image  # noqa: E402

from generator.explain.overlay import blend, heat_rgb  # noqa: E402
from generator.frames import pd  # noqa: E402

WRONG = "#d21f1f"


NEITHER = "#7a4bbd"


# DejaVu for Latin text, Noto Sans CJK for Korean (Debian's fonts-noto-cjk); matplotlib falls back per glyph.
# Only families that are installed: naming a missing one makes matplotlib warn once per text drawn.
CJK_FAMILIES = ("Noto Sans CJK KR", "Noto Sans CJK JP")


def cjk_families() -> list[str]:
    """The CJK families matplotlib can draw with. matplotlib lists the system's fonts once and keeps the list in
    its cache folder, so fonts installed after its first run (fonts-noto-cjk installed later) are not in it and
    every Hangul glyph would come out as a box: such fonts are then found on the system and added."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    if not any(f in names for f in CJK_FAMILIES):
        for path in font_manager.findSystemFonts():
            if Path(path).name.startswith("NotoSansCJK"):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # a file FreeType cannot open: left out
                    continue
        names = {f.name for f in font_manager.fontManager.ttflist}
    return [f for f in CJK_FAMILIES if f in names]


plt.rcParams["font.family"] = ["DejaVu Sans", *cjk_families(), "sans-serif"]


def sample_rows(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if len(df) <= n:
        return df
    idx = np.random.default_rng(seed).choice(len(df), size=n, replace=False)
    return df.iloc[np.sort(idx)]


def grid(n: int, cols: int, cell: float = 2.2):
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell, rows * (cell + 0.35)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes.ravel()


def save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


CELL_PIXELS = 240  # a grid cell is about 2.2 inches at 100 dpi: photos are shrunk to this before drawing


def picture(row: dict) -> np.ndarray:
    """The photo's display copy, shrunk to what a figure cell shows (drawing full-size photos that matplotlib
    then shrinks took most of the figures' time)."""
    with Image.open(Path(row["pictures"]) / row["photo"]) as img:
        img = img.convert("RGB")
        img.thumbnail((CELL_PIXELS, CELL_PIXELS), Image.LANCZOS)
        return np.asarray(img)


def map_picture(row: dict, report, tap: int, cmap: str) -> np.ndarray | None:
    record = report.record(row["sha256"])
    if record is None:
        return None
    photo = picture(row)
    h, w = photo.shape[:2]
    # the CAM of the predicted class, or the gradient map where the model has no CAM (its last stage)
    return blend(photo, heat_rgb(record.lead_map(tap), w, h, cmap))


def frame(ax, color: str) -> None:
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_color(color)
        s.set_linewidth(4)


def labeled_panels(report, width: float, height: float):
    """One subplot per set that has labeled photos: (figure, [(axes, set name, that set's rows)]), or None."""
    frames = [(x.name, report.rows(x.key, ok_only=False)) for x in report.labeled_sets]
    if not frames:
        return None
    fig, axes = plt.subplots(1, len(frames), figsize=(width * len(frames), height), squeeze=False)
    return fig, [(ax, name, d) for ax, (name, d) in zip(axes[0], frames)]
