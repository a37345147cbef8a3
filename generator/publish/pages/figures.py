"""figures.html: every figure drawn, with its caption."""

from __future__ import annotations

from collections.abc import Iterator

from generator.i18n import N_
from generator.publish.pages.kinds import PageKind
from generator.report.summary import Report


def figure_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    yield "figures.html", {"figures": report.figures}


KIND = PageKind("figures", "figures.html", N_("Figures"), "figures.html", figure_pages)
