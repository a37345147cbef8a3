"""bench/floor.py: the floor's arithmetic, each stage's share, and the photos it counts, by hand."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from bench.floor import Floor, build_photos, decode_all, stage_ratios


def test_the_floor_adds_decoding_one_forward_of_all_and_one_backward_of_the_explained():
    f = Floor(photos=300, train=200, explained=100, decode_s=30.0, decode_train_s=20.0, forward_img_s=60.0,
              backward_img_s=20.0, sample=64)
    assert f.forward_s == 5.0  # 300 / 60
    assert abs(f.backward_s - (100 / 20 - 100 / 60)) < 1e-12  # forward + backward, less the forward
    assert abs(f.seconds - (30 + 5 + 100 / 20 - 100 / 60)) < 1e-12
    assert abs(f.stage_floor("model") - (20 + 200 / 60)) < 1e-12
    assert abs(f.stage_floor("explain") - (10 + 100 / 20)) < 1e-12
    assert abs(f.stage_floor("model") + f.stage_floor("explain") - f.seconds) < 1e-9  # the shares add up
    ratios = stage_ratios(f, {"model": 46.0, "explain": 30.0, "pages": 4.0, "total": 80.0})
    assert set(ratios) == {"model", "explain", "pages"}
    assert abs(ratios["explain"][2] - 2.0) < 1e-12 and ratios["pages"][1] == 0 and math.isnan(ratios["pages"][2])


def _photo(path, size):
    Image.fromarray(np.random.default_rng(size).integers(0, 255, (size, size + 7, 3), dtype=np.uint8)).save(path)


def test_it_counts_the_photos_the_build_scans_and_decodes_each_once(tmp_path):
    for folder, n in (("train/cats", 2), ("train/dogs", 1), ("test/cats", 1), ("unrelated", 2)):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(n):
            _photo(tmp_path / folder / f"p{i}.png", 40 + i)
    (tmp_path / "unrelated" / "notes.txt").write_text("not a photo")
    train, other = build_photos(tmp_path)
    assert len(train) == 3 and len(other) == 3 and all(p.endswith(".png") for p in train + other)
    seconds, arrays, statuses = decode_all(train + other, 32, workers=1)
    assert seconds > 0 and arrays.shape == (6, 32, 32, 3) and statuses == ["ok"] * 6
