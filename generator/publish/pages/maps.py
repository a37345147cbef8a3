"""Maps as data: the photo records read one at a time from the cache, packed for the browser."""

from __future__ import annotations

import numpy as np

from generator.explain.overlay import encode_maps
from generator.explain.record import PhotoRecord, map_key
from generator.report.summary import Report


class Maps:
    """Reads photo records from the cache and packs their maps for the browser."""

    def __init__(self, report: Report) -> None:
        self.record = report.record
        self.n_taps = report.n_taps
        self.chosen = list(report.run.methods_chosen)

    def entries(self, record: PhotoRecord, methods: list[str], taps: range | list[int],
                classes: str = "all") -> list[tuple[str, np.ndarray]]:
        """(key, map) of these methods at these taps; per-class maps for every class, or only the predicted
        one with classes="pred"."""
        out = []
        for name in methods:
            per_tap = record.maps.get(name)
            if per_tap is None:
                continue
            for t in taps:
                m = per_tap[t]
                if m is None:
                    continue
                m = np.asarray(m, np.float64)
                if m.ndim == 3:
                    ks = range(m.shape[0]) if classes == "all" else [record.pred]
                    out += [(map_key(name, t, k), m[k]) for k in ks]
                else:
                    out.append((map_key(name, t), m))
        return out

    def payload(self, record: PhotoRecord, methods: list[str], taps, classes: str = "all") -> dict:
        return encode_maps(self.entries(record, methods, taps, classes))
