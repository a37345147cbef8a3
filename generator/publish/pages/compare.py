"""compare.html (setting compare): the site's model against a second one on the same photos (report/compare.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from generator.explain.overlay import payload_json
from generator.explain.record import PhotoRecord, record_path
from generator.files import load_npz
from generator.i18n import N_
from generator.publish.pages.kinds import PageKind
from generator.publish.pages.maps import Maps
from generator.report.summary import Report, photo_summary

SHOWN = 12  # photos shown with both maps per list (flips each way, attention moved most)
RHO_BINS = (-1.0, 0.0, 0.25, 0.5, 0.75, 1.0)


def compare_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    c = report.compare
    if c is None:
        return
    maps: Maps = ctx["maps"]
    n_taps_b = len(c.b["tap_names"])
    by_key = report.results.set_index(["set", "file"], drop=False)
    data_a: dict[str, dict] = {}
    data_b: dict[str, dict] = {}

    def record_b(sha: str) -> PhotoRecord | None:
        z = load_npz(record_path(report.settings.cache_dir, c.b["fingerprint"], sha)) if sha else None
        return PhotoRecord.from_npz(z, n_taps_b) if z is not None else None

    def photos(frame, extra=()) -> list[dict]:
        out = []
        for r in frame.head(SHOWN).to_dict("records"):
            row = by_key.loc[(r["set"], r["file"])]
            p = photo_summary(row.to_dict(), report)
            for k in extra:
                p[k] = r.get(k)
            a, b = maps.record(p["sha256"]), record_b(p["sha256"])
            if a is not None:
                data_a[p["slug"]] = maps.payload(a, ["cam"], [maps.n_taps - 1])
            if b is not None:
                data_b[p["slug"]] = maps.payload(b, ["cam"], [n_taps_b - 1])
                p["prediction_b"] = report.classes[b.pred]
            out.append(p)
        return out

    rho = c.moves["rho"].to_numpy(dtype=float)
    finite = rho[np.isfinite(rho)]
    counts, _ = np.histogram(finite, bins=RHO_BINS)
    yield "compare.html", {
        "c": c, "accuracy": c.accuracy.to_dict("records"),
        "broke": photos(c.broke), "fixed": photos(c.fixed), "n_broke": len(c.broke), "n_fixed": len(c.fixed),
        "moved": photos(c.moves[c.moves["rho"].notna()], ("rho",)), "n_moves": int(finite.size),
        "rho_bins": [{"lo": lo, "hi": hi, "n": int(n)} for lo, hi, n in zip(RHO_BINS, RHO_BINS[1:], counts)],
        "probes": c.probes.to_dict("records"),
        "localisation": c.localisation[c.localisation["tap"] == c.localisation["tap"].max()].to_dict("records")
        if not c.localisation.empty else [],
        "last_a": maps.n_taps - 1, "last_b": n_taps_b - 1,
        "data_a": payload_json(data_a), "data_b": payload_json(data_b),
    }


KIND = PageKind("compare", "compare.html", N_("Compare"), "compare.html", compare_pages,
                shown=lambda report: report.compare is not None)
