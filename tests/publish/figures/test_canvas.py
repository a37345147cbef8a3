"""generator/publish/figures/canvas.py: the fonts the figures are drawn with."""

from __future__ import annotations

import warnings

import pytest
from matplotlib import font_manager

from generator.publish.figures import canvas


def _hangul_missing() -> list[str]:
    """matplotlib's warnings while drawing a Korean title: one per glyph no font in the family list has."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.set_title("어떤 맵을 믿어야 할까? 사진 25장")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    plt.close(fig)
    return [str(w.message) for w in caught if "missing from" in str(w.message)]


def _system_cjk() -> bool:
    return any("NotoSansCJK" in p for p in font_manager.findSystemFonts())


@pytest.mark.skipif(not _system_cjk(), reason="no Noto Sans CJK font on this machine (fonts-noto-cjk)")
def test_korean_text_finds_its_glyphs_even_when_matplotlibs_font_list_predates_the_font(monkeypatch):
    """With the CJK fonts removed from matplotlib's list (as when its cache was made before fonts-noto-cjk was
    installed), cjk_families finds them on the system again, and a Korean title draws every glyph."""
    manager = font_manager.fontManager
    monkeypatch.setattr(manager, "ttflist", [f for f in manager.ttflist if "CJK" not in f.name])
    assert canvas.cjk_families()  # found again and added
    monkeypatch.setitem(canvas.plt.rcParams, "font.family", ["DejaVu Sans", *canvas.cjk_families(), "sans-serif"])
    assert _hangul_missing() == []
    monkeypatch.setitem(canvas.plt.rcParams, "font.family", ["DejaVu Sans"])  # the failure it prevents
    assert _hangul_missing()
