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
