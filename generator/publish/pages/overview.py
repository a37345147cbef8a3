"""overview.html: every set's counts, accuracy and figures."""

from __future__ import annotations

import math
from collections.abc import Iterator

from generator.i18n import N_
from generator.publish.pages.kinds import PageKind
from generator.report.summary import Report


def overview_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    total = int(len(report.results))
    yield "overview.html", {"summaries": report.sets, "figures": report.figures, "total_files": total,
                            "antisymmetry": max(report.run.antisymmetry, default=math.inf)}


KIND = PageKind("overview", "overview.html", N_("Overview"), "overview.html", overview_pages)
