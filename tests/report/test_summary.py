"""generator/report/summary.py: the Report is built once, frozen, from the results; set roles come from settings."""

from __future__ import annotations

import dataclasses

import pytest

from generator.report import analysis
from generator.report.facts import RunFacts
from generator.report.summary import Report, build_report


def test_the_report_is_frozen_and_complete(small_report):
    _bundle, report = small_report
    assert isinstance(report, Report) and isinstance(report.run, RunFacts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.figures = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.sets[0].ece = 0.0
    for s in report.sets:  # every number of a set's summary is the results table's
        assert s.counts == analysis.set_summary(report.results[report.results["set"] == s.key])


def test_set_roles_come_from_the_settings(small_report):
    bundle, report = small_report
    s = report.settings
    assert report.unrelated is not None and report.unrelated.key == "unrelated" and not report.ood.empty
    moved = build_report(bundle, dataclasses.replace(s, roles=("test=test", "unrelated=personal")))
    assert moved.unrelated.key == "personal"
    none = build_report(bundle, dataclasses.replace(s, roles=("test=test",)))
    assert none.unrelated is None and none.ood.empty


def test_the_board_gets_the_localisation_of_the_same_map():
    """board_localisation joins each map's localisation (region x score) on (method, tap); the Gaussian row gets
    the Gaussian baseline's own scores; maps without ground truth stay without."""
    from generator.frames import pd
    from generator.report.summary import board_localisation

    board = pd.DataFrame([{"set": "all", "method": m, "tap": t, "combined": c}
                          for m, t, c in (("cam", 1, 0.3), ("gradcam", 1, 0.2), ("gaussian", 1, 0.1),
                                          ("random", 1, 0.0), ("cam", 0, 0.1))])

    def loc(method, region, hit, energy, n=7):
        row = {"method": method, "tap": 1, "region": region, "n": n, "gaussian": 0.6, "gaussian_energy": 0.3}
        for k, v in (("hit", hit), ("energy", energy), ("gaussian", 0.6), ("gaussian_energy", 0.3)):
            row[k], row[k + "_lo"], row[k + "_hi"] = v, v - 0.1, v + 0.1
        return row

    localisation = pd.DataFrame([loc("cam", "head", 0.73, 0.49), loc("cam", "pet", 0.76, 0.54),
                                 loc("gradcam", "head", 0.70, 0.40)])
    out = board_localisation(board, localisation, 1).set_index("method")
    assert list(out.index) == ["cam", "gradcam", "gaussian", "random"]  # the tap's rows only, in the board's order
    assert out.loc["cam", "loc_head_hit"] == 0.73 and out.loc["cam", "loc_pet_hit"] == 0.76
    assert abs(out.loc["cam", "loc_head_hit_lo"] - 0.63) < 1e-12
    assert out.loc["gradcam", "loc_head_energy"] == 0.40 and out.loc["gradcam", "loc_pet_hit"] != \
        out.loc["gradcam", "loc_pet_hit"]  # no pet score for Grad-CAM: NaN, not another map's number
    assert out.loc["gaussian", "loc_head_hit"] == 0.6 and out.loc["gaussian", "loc_head_energy"] == 0.3
    assert out.loc["random", "loc_head_hit"] != out.loc["random", "loc_head_hit"]
    assert out.loc["cam", "loc_n"] == 7
    assert board_localisation(board, pd.DataFrame(), 1).columns.tolist() == board.columns.tolist()
