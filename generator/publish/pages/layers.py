"""layers.html: the maps of every method at every stage for a seeded sample and the mistakes."""

from __future__ import annotations

from collections.abc import Iterator

from generator.explain.overlay import payload_json
from generator.i18n import N_
from generator.publish.pages.kinds import PageKind, method_info
from generator.publish.pages.maps import Maps
from generator.report.summary import Report, photo_summary


def layer_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    maps: Maps = ctx["maps"]
    groups, data = [], {}
    for summary in report.eval_sets:
        df = report.rows(summary.key)
        sample = [photo_summary(r, report) for r in df.iloc[list(summary.layer_sample)].to_dict("records")]
        wrong = [photo_summary(r, report) for r in df[df["correct"] == "no"].to_dict("records")]
        for p in sample + wrong:
            record = maps.record(p["sha256"])
            if record is not None and p["slug"] not in data:
                data[p["slug"]] = maps.payload(record, maps.chosen, range(maps.n_taps), classes="pred")
        groups.append({"set": summary, "photos": sample, "mistakes": wrong})
    methods = method_info(report, maps.chosen)
    yield "layers.html", {"groups": groups, "data": payload_json({"methods": methods, "photos": data}),
                          "summaries": report.sets, "methods": methods}


KIND = PageKind("layers", "layers.html", N_("Layers"), "layers.html", layer_pages)
