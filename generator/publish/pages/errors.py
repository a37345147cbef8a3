"""errors.html: the mistakes, near misses, confusion cells, attention by outcome and "neither"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from generator.data.scan import CLASSES
from generator.explain.overlay import payload_json
from generator.i18n import N_
from generator.publish.pages.kinds import PageKind
from generator.publish.pages.maps import Maps
from generator.report import analysis
from generator.report.summary import Report, photo_summary


def error_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    maps: Maps = ctx["maps"]
    groups, data = [], {}
    for summary in report.eval_sets:
        df = report.rows(summary.key)
        group: dict[str, Any] = {"set": summary, "labeled": bool(summary.counts["labeled"])}
        if group["labeled"]:
            group["mistakes"] = [photo_summary(r, report) for r in analysis.mistakes(df).to_dict("records")]
            group["near"] = [photo_summary(r, report) for r in analysis.near_misses(df).to_dict("records")]
            group["cells"] = {t: {p: {"count": len(c), "href": f"sets/{summary.slug}/cell-{t}-as-{p}.html"}
                                  for (tt, p), c in analysis.confusion_cells(df).items() if tt == t}
                              for t in CLASSES}
            group["attention"] = list(summary.attention)
            for p in group["mistakes"]:
                record = maps.record(p["sha256"])
                if record is not None:
                    data[p["slug"]] = maps.payload(record, ["cam"], [maps.n_taps - 1])
        group["neither"] = [photo_summary(r, report) for r in df[df["tag"] == "neither"].to_dict("records")]
        groups.append(group)
    unrelated = report.unrelated
    ood_photos = []
    if unrelated is not None:
        ood_photos = [dict(photo_summary(r, report), msp=float(r["msp"]))
                      for r in analysis.ood_table(report.rows(unrelated.key)).to_dict("records")]
    yield "errors.html", {"groups": groups, "data": payload_json(data), "ood": report.ood.to_dict("records"),
                          "ood_photos": ood_photos,
                          "ece_bins": analysis.ECE_BINS,
                          "unrelated": unrelated}


KIND = PageKind("errors", "errors.html", N_("Errors"), "errors.html", error_pages)
