"""skipped.html: every file the build could not read, and why."""

from __future__ import annotations

from collections.abc import Iterator

from generator.i18n import N_
from generator.publish.pages.kinds import PageKind
from generator.report.names import safe_name
from generator.report.summary import Report


def skipped_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    skipped = report.results[report.results["status"] != "ok"]
    yield "skipped.html", {"skipped": [{"set": safe_name(r["set"]), "file": safe_name(r["file"]),
                                        "status": r["status"]} for r in skipped.to_dict("records")]}


KIND = PageKind("skipped", "skipped.html", N_("Skipped"), "skipped.html", skipped_pages)
