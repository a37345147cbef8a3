"""One page per cell of each labelled set's confusion matrix (the photos labelled t, predicted p)."""

from __future__ import annotations

from collections.abc import Iterator

from generator.publish.pages.kinds import PageKind
from generator.report import analysis
from generator.report.summary import Report, photo_summary


def cell_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    for summary in report.labeled_sets:
        for (t, p), cell in analysis.confusion_cells(report.rows(summary.key)).items():
            yield f"sets/{summary.slug}/cell-{t}-as-{p}.html", {
                "set": summary, "label": t, "pred": p,
                "photos": [photo_summary(r, report) for r in cell.to_dict("records")]}


KIND = PageKind("cells", "cell.html", None, None, cell_pages)
