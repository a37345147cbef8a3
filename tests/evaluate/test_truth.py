"""Ground truth through the pipeline: tiny records and regions whose scores are known by construction.

Maps here are exact small binary fractions in float32 (records keep maps as float32), upsampled in float64: the
peaks and the masses inside are worked out by hand and compared exactly or to 1e-9."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generator.data.annotations import load_annotations
from generator.evaluate import truth as T
from generator.explain.record import PhotoRecord
from generator.frames import pd

W = H = 8


def record(logits, cam, grad=None) -> PhotoRecord:
    maps = {"cam": [np.asarray(cam, np.float32)]}
    if grad is not None:
        maps["gradcam"] = [np.asarray(grad, np.float32)]
    logits = np.asarray(logits, np.float32)
    return PhotoRecord(W, H, logits, logits[None], np.zeros(3, np.int64), np.zeros(3, np.float32), 0.9, -5.0, maps)


def coco(path, boxes_by_photo):
    """A COCO file: per photo a head box and a pet box [x, y, w, h] (the pet as a polygon of its box)."""
    images, anns = [], []
    for i, (name, (head, pet)) in enumerate(boxes_by_photo.items(), start=1):
        images.append({"id": i, "file_name": name, "width": W, "height": H})
        anns.append({"id": 2 * i, "image_id": i, "category_id": 1, "bbox": head})
        x, y, w, h = pet
        anns.append({"id": 2 * i + 1, "image_id": i, "category_id": 2, "bbox": pet,
                     "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "head"}, {"id": 2, "name": "pet"}]}))
    return path


def corner_map(corner: int) -> np.ndarray:
    """A 2x2 map whose one cell (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) is 1, the rest 0."""
    m = np.zeros((2, 2), np.float32)
    m.flat[corner] = 1
    return m


def results(rows):
    return pd.DataFrame([{"set": "own", "file": f, "status": "ok", "label": lab, "sha256": f, "width": W,
                          "height": H, **{f"box_{k}": np.nan for k in ("x0", "y0", "x1", "y1", "area", "mass")}}
                         for f, lab in rows])


def test_every_map_is_scored_against_head_and_pet_and_mistakes_add_the_predicted_class(tmp_path):
    # a.jpg: a cat, right (logits favour cat); its cat CAM peaks top-left, where the head is.
    # b.jpg: a cat, called a dog; the cat map peaks top-left, the dog map bottom-right (off the head, on the pet).
    src = coco(tmp_path / "own.json", {"a.jpg": ([0, 0, 4, 4], [0, 0, 8, 8]), "b.jpg": ([0, 0, 4, 4], [0, 0, 8, 8]),
                                       "elsewhere.jpg": ([0, 0, 2, 2], [0, 0, 8, 8])})
    recs = {"a.jpg": record([2, 0], [corner_map(0), corner_map(3)], grad=corner_map(3)),
            "b.jpg": record([0, 2], [corner_map(0), corner_map(3)], grad=corner_map(3))}
    table = results([("a.jpg", "cat"), ("b.jpg", "cat")])
    ann = T.read_truth({"own": src}, table)
    assert ann["own"].not_in_set == ("elsewhere.jpg",) and ann["own"].left_out == ()
    truth = T.score_truth(table, ann, recs.get, classes=("cat", "dog"))
    s = truth.scores
    # a: cam of cat (label) + gradcam (the predicted class, cat = label); b: cam cat, cam dog, gradcam (of dog)
    assert len(s) == 2 * (2 + 3)
    a_cam = s[(s.file == "a.jpg") & (s.method == "cam") & (s.region == "head")].iloc[0]
    assert a_cam["of"] == "label" and a_cam["cls"] == "cat" and a_cam["hit"]
    assert (a_cam["peak_x"], a_cam["peak_y"]) == (0, 0)  # the upsampled map's first maximum: the top-left pixel
    b_dog = s[(s.file == "b.jpg") & (s.method == "cam") & (s.cls == "dog")]
    assert set(b_dog["of"]) == {"prediction"}
    assert not b_dog[b_dog.region == "head"].iloc[0]["hit"] and b_dog[b_dog.region == "pet"].iloc[0]["hit"]
    # bilinear, half-pixel centres: the 2x2 cell centres land at pixel 1.5 and 5.5, so the value 1 holds on pixels
    # 6 and 7 of each axis (clamped at the edge); the first of them in raster order is (6, 6)
    assert (b_dog.iloc[0]["peak_x"], b_dog.iloc[0]["peak_y"]) == (6, 6)
    b_grad = s[(s.file == "b.jpg") & (s.method == "gradcam")]
    assert set(b_grad["of"]) == {"prediction"} and set(b_grad["cls"]) == {"dog"}
    # the pet covers the photo: every positive mass is inside it
    assert np.allclose(s[s.region == "pet"]["energy"], 1.0, atol=1e-9)
    assert truth.sets[0].photos == 2 and truth.sets[0].not_in_set == 1

    table_ = T.summarise_truth(truth, seed=0)
    head_cam = table_[(table_.method == "cam") & (table_.region == "head")].iloc[0]
    assert head_cam["n"] == 2 and head_cam["hit"] == 1.0  # both cat maps peak on the head
    # the centre point (4, 4) lies outside the head box [0, 4) x [0, 4): a miss on both photos
    assert head_cam["centre"] == 0.0 and head_cam["area_share"] == pytest.approx(16 / 64)
    grad = table_[(table_.method == "gradcam") & (table_.region == "head")].iloc[0]
    assert grad["n"] == 1 and grad["hit"] == 0.0  # only a's gradcam is of the labelled class; it peaks off the head

    # scored by two forked workers: the same tables, rows in the same order
    forked = T.score_truth(table, ann, recs.get, classes=("cat", "dog"), processes=2)
    pd.testing.assert_frame_equal(forked.scores, truth.scores)
    pd.testing.assert_frame_equal(forked.baselines, truth.baselines)
    assert forked.sets == truth.sets


def test_photo_index_gives_each_photo_its_own_rows(tmp_path):
    """The page's ground truth of each photo, read back against that photo's rows of the tables: its boxes, its
    pet outline, and one entry per (method, tap, class) map with both regions' scores; photos in one pass."""
    src = coco(tmp_path / "own.json", {"a.jpg": ([0, 0, 4, 4], [0, 0, 8, 8]), "b.jpg": ([4, 4, 4, 4], [2, 2, 6, 6])})
    recs = {"a.jpg": record([2, 0], [corner_map(0), corner_map(3)], grad=corner_map(3)),
            "b.jpg": record([0, 2], [corner_map(0), corner_map(3)], grad=corner_map(3))}
    table = results([("a.jpg", "cat"), ("b.jpg", "cat")])
    truth = T.score_truth(table, T.read_truth({"own": src}, table), recs.get, classes=("cat", "dog"))
    index = T.photo_index(truth)
    assert list(index) == [("own", "a.jpg"), ("own", "b.jpg")]
    for (_, file), entry in index.items():
        b = truth.baselines[truth.baselines.file == file]
        assert entry["boxes"] == {r.region: [round(getattr(r, f"box_{k}"), 4) for k in ("x0", "y0", "x1", "y1")]
                                  for r in b.itertuples()}
        assert entry["outline"] == b[b.region == "pet"].iloc[0]["outline"] and entry["outline"]
        s = truth.scores[truth.scores.file == file]
        assert set(entry["maps"]) == {f"{r.method}/{r.tap}/{r.cls}" for r in s.itertuples()}
        for r in s.itertuples():
            m = entry["maps"][f"{r.method}/{r.tap}/{r.cls}"]
            assert m["peak"] == [int(r.peak_x), int(r.peak_y)]
            assert m[r.region] == [int(r.hit), int(r.hit_tolerant), round(float(r.energy), 3), round(float(r.iou), 3)]
    assert index[("own", "a.jpg")]["boxes"]["head"] == [0.0, 0.0, 0.5, 0.5]  # 4 of 8 pixels: half the photo
    assert index[("own", "b.jpg")]["boxes"]["head"] == [0.5, 0.5, 1.0, 1.0]
    empty = T.score_truth(table, {}, recs.get, classes=("cat", "dog"))
    assert T.photo_index(empty) == {}


def test_the_cam_box_passed_in_is_the_one_scored(tmp_path):
    src = coco(tmp_path / "own.json", {"a.jpg": ([0, 0, 4, 4], [0, 0, 8, 8])})
    rec = record([2, 0], [corner_map(0), corner_map(3)])
    ann = load_annotations(src, ["a.jpg"], kinds=T.REGIONS)
    from generator.explain.overlay import Box

    # a page box equal to the head box: IoU 1, whatever the map says (the explain stage's box is trusted)
    rows = T.score_photo(rec, ann.photos["a.jpg"], label=0, page_box=Box(0, 0, 0.5, 0.5, 0.25, 1.0),
                         classes=("cat", "dog"))
    head = next(r for r in rows if r["region"] == "head")
    assert head["iou"] == pytest.approx(1.0) and head["located"]


def test_the_outline_is_small_closed_and_on_the_mask():
    yy, xx = np.mgrid[:200, :300]
    disc = (xx - 150) ** 2 + (yy - 100) ** 2 < 80 ** 2
    poly = T.outline(disc, max_points=64)
    assert 8 <= len(poly) <= 64
    assert 8 <= len(T.outline(disc)) <= T.MAX_POINTS
    pts = np.asarray(poly) * [300, 200]
    r = np.hypot(pts[:, 0] - 150, pts[:, 1] - 100)
    assert np.all(np.abs(r - 80) < 3)  # on the disc's edge, within the simplification's few pixels


def test_the_outline_follows_the_largest_part_even_at_the_frame():
    """Two parts: the outline is the bigger one's, a part cut by the frame still closes along the frame."""
    mask = np.zeros((120, 200), bool)
    mask[:60, 120:] = True  # the bigger part, touching the top and right edges
    mask[90:110, 10:30] = True
    xs, ys = np.asarray(T.outline(mask)).T
    assert xs.min() >= 0.59 and ys.max() <= 0.51  # all on the rectangle at x >= 120 / 200, y < 60 / 120
    assert xs.max() == pytest.approx(1.0, abs=0.02) and ys.min() == pytest.approx(0.0, abs=0.02)
    assert T.outline(np.zeros((50, 50), bool)) == []


def test_head_test_says_when_mistakes_are_too_few(tmp_path):
    base = pd.DataFrame([{"set": "s", "file": f"{i}", "label": "cat", "prediction": "cat" if i < 30 else "dog",
                          "region": "head", "area_share": 0.2 if i < 30 else 0.05, "cut": i >= 30}
                         for i in range(33)])
    t = T.head_test(T.Truth(pd.DataFrame(), base), seed=0)
    assert (t.n_right, t.n_wrong, t.enough) == (30, 3, False)
    assert t.difference[0] == pytest.approx(-0.15) and t.cut_wrong == 1.0 and t.cut_right == 0.0
    more = pd.concat([base, base.iloc[30:].assign(file=lambda d: d.file + "x")] * 4, ignore_index=True)
    t2 = T.head_test(T.Truth(pd.DataFrame(), more), seed=0)
    assert t2.enough and t2.difference[2] < 0 and t2.p_value < 0.05
