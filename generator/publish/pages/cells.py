"""One page per cell of each labelled set's confusion matrix (the photos labelled t, predicted p): every cell for up
to three classes, the cells that hold photos beyond (37 classes have 1,369 cells, most of them empty)."""

from __future__ import annotations

from collections.abc import Iterator

from generator.publish.pages.kinds import PageKind
from generator.publish.pages.maps import ALL_CLASSES_UP_TO
from generator.report import analysis
from generator.report.names import cell_page
from generator.report.summary import Report, photo_summary


def has_page(report: Report, n_photos: int) -> bool:
    """Whether a confusion cell of this many photos gets a page of its own."""
    return n_photos > 0 or len(report.classes) <= ALL_CLASSES_UP_TO


def cell_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    for summary in report.labeled_sets:
        for (t, p), cell in analysis.confusion_cells(report.rows(summary.key), report.classes).items():
            if not has_page(report, len(cell)):
                continue
            yield cell_page(summary.slug, t, p), {
                "set": summary, "label": t, "pred": p,
                "photos": [photo_summary(r, report) for r in cell.to_dict("records")]}


KIND = PageKind("cells", "cell.html", None, None, cell_pages)
