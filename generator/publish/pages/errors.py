"""errors.html: the mistakes, near misses, confusion cells, attention by outcome and "neither"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from generator.explain.overlay import payload_json
from generator.i18n import N_
from generator.publish.pages.cells import has_page
from generator.publish.pages.kinds import PageKind
from generator.publish.pages.maps import Maps
from generator.report import analysis
from generator.report.names import cell_page
from generator.report.summary import Report, photo_summary


def error_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    maps: Maps = ctx["maps"]
    classes = report.classes
    groups, data = [], {}
    for summary in report.eval_sets:
        df = report.rows(summary.key)
        group: dict[str, Any] = {"set": summary, "labeled": bool(summary.counts["labeled"])}
        if group["labeled"]:
            group["mistakes"] = [photo_summary(r, report) for r in analysis.mistakes(df, classes).to_dict("records")]
            group["near"] = [photo_summary(r, report) for r in analysis.near_misses(df, classes=classes)
                             .to_dict("records")]
            cells = analysis.confusion_cells(df, classes)
            group["cells"] = {t: {p: {"count": len(cells[t, p]),
                                      "href": cell_page(summary.slug, t, p) if has_page(report, len(cells[t, p]))
                                      else None}
                                  for p in classes}
                              for t in classes}
            group["pairs"] = [dict(r, href=cell_page(summary.slug, r["label"], r["prediction"]))
                              for r in (summary.pairs.to_dict("records") if summary.pairs is not None else [])]
            group["attention"] = list(summary.attention)
            for p in group["mistakes"]:
                record = maps.record(p["sha256"])
                if record is not None and not report.run.no_cam_reason:  # the CAM of the predicted and true class
                    shown = [classes.index(p["prediction"]), classes.index(p["label"])]
                    data[p["slug"]] = maps.payload(record, ["cam"], [maps.n_taps - 1],
                                                   "all" if len(classes) <= 2 else shown)
                elif record is not None:  # no CAM at the last stage: the gradient map, of the predicted class only
                    data[p["slug"]] = maps.payload(record, [report.run.last_method], [maps.n_taps - 1])
        group["neither"] = [photo_summary(r, report) for r in df[df["tag"] == "neither"].to_dict("records")]
        groups.append(group)
    unrelated = report.unrelated
    ood_photos = []
    if unrelated is not None:
        ood_photos = [dict(photo_summary(r, report), msp=float(r["msp"]))
                      for r in analysis.ood_table(report.rows(unrelated.key), classes).to_dict("records")]
    yield "errors.html", {"groups": groups, "data": payload_json(data), "ood": report.ood.to_dict("records"),
                          "ood_photos": ood_photos,
                          "ece_bins": analysis.ECE_BINS,
                          "unrelated": unrelated}


KIND = PageKind("errors", "errors.html", N_("Errors"), "errors.html", error_pages)
