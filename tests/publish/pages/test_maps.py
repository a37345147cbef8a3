"""generator/publish/pages/maps.py: which classes' maps a photo page carries (all up to three, else predicted,
runner-up and labelled), and the payload holds exactly those."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from fixtures_models import make_record

from generator.explain.overlay import decode_maps
from generator.publish.pages.maps import ALL_CLASSES_UP_TO, Maps


def maps_for(k: int) -> Maps:
    report = SimpleNamespace(record=lambda _sha: None, n_taps=3, run=SimpleNamespace(methods_chosen=("cam",)),
                             classes=tuple(f"c{i}" for i in range(k)))
    return Maps(report)


@pytest.mark.parametrize("k", [2, 3, 37])
def test_a_page_keeps_the_maps_of_at_most_three_classes(k):
    rec = make_record(7, k=k)
    maps = maps_for(k)
    order = np.argsort(-rec.logits.astype(np.float64), kind="stable")
    label = f"c{int(order[-1])}"  # the least likely class: a mistake's true class
    shown = maps.shown(rec, label)
    assert shown[:2] == [rec.pred, rec.runner_up] and len(set(shown)) == len(shown)
    if k <= ALL_CLASSES_UP_TO:
        assert sorted(shown) == list(range(k))
    else:
        assert shown == [rec.pred, rec.runner_up, int(order[-1])]
        assert maps.shown(rec, "") == [rec.pred, rec.runner_up]  # unlabelled
    payload = maps.payload(rec, ["cam"], [2], shown)
    keys = [key for key, _ in decode_maps(payload)]
    assert keys == [f"cam/2/{c}" for c in sorted(shown)]
    for key, m in decode_maps(payload):  # the maps themselves, within the payload's 8-bit quantisation
        c = int(key.rsplit("/", 1)[1])
        ref = rec.cam(2)[c].astype(np.float64)
        assert np.abs(m - ref).max() <= (ref.max() - ref.min()) / 255 + 1e-6
