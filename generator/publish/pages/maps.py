"""Maps as data: the photo records read one at a time from the cache, packed for the browser."""

from __future__ import annotations

import numpy as np

from generator.explain.overlay import encode_maps
from generator.explain.record import PhotoRecord, map_key
from generator.report.summary import Report

# A photo page carries the maps of every class up to this many classes; with more, only those of the predicted
# class, the runner-up and the labelled class (a page of 37 classes would otherwise weigh 12 times a two-class one).
ALL_CLASSES_UP_TO = 3


class Maps:
    """Reads photo records from the cache and packs their maps for the browser."""

    def __init__(self, report: Report) -> None:
        self.record = report.record
        self.n_taps = report.n_taps
        self.chosen = list(report.run.methods_chosen)
        self.classes = tuple(report.classes)

    def shown(self, record: PhotoRecord, label: str = "") -> list[int]:
        """The classes whose maps a photo's page carries, in the order its controls list them: every class when
        there are at most ALL_CLASSES_UP_TO (the predicted one first, then the runner-up, then the others in class
        order); otherwise the predicted class, the runner-up and the labelled class (when it is neither)."""
        first = [record.pred, record.runner_up]
        if label in self.classes:
            first.append(self.classes.index(label))
        if len(self.classes) <= ALL_CLASSES_UP_TO:
            first += range(len(self.classes))
        return list(dict.fromkeys(first))

    def entries(self, record: PhotoRecord, methods: list[str], taps: range | list[int],
                classes: str | list[int] = "all") -> list[tuple[str, np.ndarray]]:
        """(key, map) of these methods at these taps; per-class maps for every class, only the predicted
        one with classes="pred", or those of a list of class indices."""
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
                    ks = range(m.shape[0]) if classes == "all" else [record.pred] if classes == "pred" \
                        else sorted(classes)
                    out += [(map_key(name, t, k), m[k]) for k in ks]
                else:
                    out.append((map_key(name, t), m))
        return out

    def payload(self, record: PhotoRecord, methods: list[str], taps, classes: str | list[int] = "all") -> dict:
        return encode_maps(self.entries(record, methods, taps, classes))
