"""The story (report.html, and index.html, which points search engines to it)."""

from __future__ import annotations

from collections.abc import Iterator

from generator.i18n import N_
from generator.publish.pages.kinds import PageKind
from generator.report import findings
from generator.report.summary import Report


def report_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    lang = ctx["lang_obj"]
    story = findings.story(report, lang)
    model = {"story": story, "figures": {f["file"]: f for f in report.figures}}
    yield "report.html", dict(model, canonical=None)
    yield "index.html", dict(model, canonical="report.html")


KIND = PageKind("report", "report.html", N_("Report"), "report.html", report_pages)
