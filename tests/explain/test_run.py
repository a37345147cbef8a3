"""generator/explain/run.py: the record cache keeps every method's maps, the results row is computed from the
record (probabilities, margins, probes, boxes), and the leaderboard's methods follow the registry."""

from __future__ import annotations

import numpy as np
from fixtures_models import make_record

from generator.config import make_settings
from generator.explain import methods as registry
from generator.explain.overlay import cam_box
from generator.explain.run import RecordCache, photo_row, scored_methods

CATEGORIES = tuple(f"class {i}" for i in range(1000))


def test_a_record_saved_with_fewer_methods_keeps_the_maps_already_cached(tmp_path):
    cache = RecordCache(tmp_path, "fp", n_taps=3)
    full = make_record(1)
    cache.save("ab" * 32, full)
    fewer = make_record(1)
    del fewer.maps["scorecam"]
    cache.save("ab" * 32, fewer)
    back = cache.load("ab" * 32, need=("cam", "scorecam"))
    assert back is not None and back.methods() == full.methods()
    np.testing.assert_array_equal(back.maps["scorecam"][-1], full.maps["scorecam"][-1])
    assert cache.load("cd" * 32) is None  # never computed
    assert cache.load("ab" * 32, need=("layercam",)) is None  # there, but without a map the caller needs


def test_photo_row_is_computed_from_the_record():
    s = make_settings({"input_size": 64})
    rec = make_record(2)
    row = photo_row(rec, s, CATEGORIES, ("cat", "dog"))
    p = np.exp(rec.logits - rec.logits.max())
    p /= p.sum()
    assert np.isclose(row["p_cat"], p[0], atol=1e-6) and np.isclose(row["p_dog"], p[1], atol=1e-6)
    assert row["prediction"] == ("cat", "dog")[int(np.argmax(rec.logits))]
    assert np.isclose(row["logit_margin"], abs(float(rec.logits[0]) - float(rec.logits[1])), atol=1e-6)
    for t in range(3):
        pl = rec.probe_logits[t].astype(np.float64)
        assert row[f"probe{t}_prediction"] == ("cat", "dog")[int(np.argmax(pl))]
        cam = rec.cam(t).astype(np.float64)
        signed = cam[rec.pred] - cam[rec.runner_up]
        assert np.isclose(row[f"signed{t}_absmax"], np.abs(signed).max())
    box = cam_box(rec.cam(-1)[rec.pred].astype(np.float64), s.box_threshold, 64)
    assert (row["box_x0"], row["box_y0"], row["box_x1"], row["box_y1"]) == (box.x0, box.y0, box.x1, box.y1)
    assert row["imagenet1"] == "class 281" and row["pet_p"] == rec.pet_p


def test_runner_up_is_the_other_class_of_two():
    rec = make_record(3)
    assert {rec.pred, rec.runner_up} == {0, 1}


def test_the_leaderboard_scores_every_cheap_method_and_only_the_chosen_costly_ones():
    costly = [n for n in registry.names() if registry.get(n).opt_in]
    assert costly  # Score-CAM
    assert set(scored_methods(("cam",))) == {n for n in registry.names() if not registry.get(n).opt_in}
    assert set(costly) <= set(scored_methods(tuple(registry.names())))


def test_photo_row_of_a_k_class_record_names_every_class():
    """37 classes: a probability column per class (in the head's order), the prediction and each probe's by name,
    the signed map's range against the runner-up."""
    classes = tuple(f"breed_{i:02d}" for i in range(37))
    s = make_settings({"input_size": 64})
    rec = make_record(5, k=37)
    row = photo_row(rec, s, CATEGORIES, classes)
    p = np.exp(rec.logits.astype(np.float64) - rec.logits.max())
    p /= p.sum()
    np.testing.assert_allclose([row[f"p_{c}"] for c in classes], p, atol=1e-6)  # float32 softmax
    assert row["prediction"] == classes[int(np.argmax(rec.logits))] and rec.runner_up != rec.pred
    second = np.sort(rec.logits.astype(np.float64))[-2]
    assert np.isclose(row["logit_margin"], float(rec.logits.max()) - second, atol=1e-6)
    for t in range(3):
        assert row[f"probe{t}_prediction"] == classes[int(np.argmax(rec.probe_logits[t]))]
        cam = rec.cam(t).astype(np.float64)
        assert np.isclose(row[f"signed{t}_absmax"], np.abs(cam[rec.pred] - cam[rec.runner_up]).max())
