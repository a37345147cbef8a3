"""generator/publish/figures (catalog.py): the catalog follows the set roles, and every figure is a pure drawing of the
Report (drawn twice, the same pixels)."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from generator.i18n import Lang
from generator.publish import figures


def test_the_cam_grids_follow_the_roles(small_report):
    _bundle, report = small_report
    lang = Lang("en")
    files = [f for f, *_ in figures.catalog(report, lang)]
    assert {"cam_test.png", "cam_personal.png", "cam_unrelated.png"} <= set(files)
    only = dataclasses.replace(report, settings=dataclasses.replace(report.settings, roles=("personal=test",)))
    files = [f for f, *_ in figures.catalog(only, lang)]
    assert "cam_personal.png" in files and "cam_test.png" not in files and "cam_unrelated.png" not in files


def test_each_figure_is_drawn_the_same_twice(small_report, tmp_path):
    _bundle, report = small_report
    lang = Lang("en")
    drawn = 0
    for file, draw, _caption, _alt in figures.catalog(report, lang)[:3]:
        a, b = tmp_path / f"a-{file}", tmp_path / f"b-{file}"
        if draw(report, lang, a):
            assert draw(report, lang, b)
            pa, pb = np.asarray(Image.open(a)), np.asarray(Image.open(b))
            assert pa.shape == pb.shape and pa.shape[0] > 100 and (pa == pb).all()
            drawn += 1
    assert drawn >= 2
