"""generator.bench: the argument parser, the results CSV, the synthetic data folder, and (on 4 real photos with
a trained checkpoint) that this project's maps equal torchcam's and pytorch-grad-cam's."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from generator import bench


def test_parser_defaults_and_flags(tmp_path):
    args = bench.parser().parse_args([])
    assert (args.photos, args.repeats, args.batch_size, args.skip_site, args.synthetic) == (128, 5, None, False, 0)
    args = bench.parser().parse_args(["--photos", "64", "--repeats", "3", "--batch-size", "16", "--skip-site",
                                      "--synthetic", "20000", "--out", str(tmp_path / "r.csv")])
    assert (args.photos, args.repeats, args.batch_size, args.skip_site, args.synthetic) == (64, 3, 16, True, 20000)
    assert args.out == tmp_path / "r.csv"
    with pytest.raises(SystemExit) as exc:
        bench.parser().parse_args(["--help"])
    assert exc.value.code == 0


def test_csv_appends_and_widens(tmp_path):
    out = tmp_path / "r.csv"
    bench.append_csv(out, {"date": "d1", "A_img_s": "1.0"})
    bench.append_csv(out, {"date": "d2", "A_img_s": "2.0"})
    bench.append_csv(out, {"date": "d3", "A_img_s": "3.0", "E_cold_s": "9"})
    rows = list(csv.DictReader(out.open()))
    assert [r["date"] for r in rows] == ["d1", "d2", "d3"]
    assert [r["E_cold_s"] for r in rows] == ["", "", "9"]


def test_synthetic_data_has_n_distinct_links(tmp_path):
    real = tmp_path / "real"
    for label in ("cats", "dogs"):
        (real / "test" / label).mkdir(parents=True)
        for i in range(3):
            (real / "test" / label / f"{label}{i}.jpg").write_bytes(b"x")
    (real / "train").mkdir()
    data = bench.make_synthetic_data(real, tmp_path / "syn", 11)
    links = sorted((data / "test").rglob("*.jpg"))
    assert len(links) == 11 and len({p.name for p in links}) == 11
    assert all(p.is_symlink() for p in links)
    assert (data / "train").is_dir()


def test_maps_agree_with_the_libraries(small_site):
    """On the small real build's checkpoint and test photos (so it runs on a fresh clone too)."""
    settings, _ = small_site
    photos = bench.decode_photos(bench.sample_photos(Path(settings.data_dir) / "test", 4), 224)
    setup = bench.load_setup(Path(settings.weights_dir), photos, batch_size=4, float32=True)
    diffs = bench.check_agreement(setup, setup.batches[0])
    assert "predictions differ" not in diffs
    assert {"torchcam CAM last tap", "torchcam GradCAM earlier taps", "pytorch-grad-cam earlier taps"} <= set(diffs)
    assert max(diffs.values()) <= bench.CHECK_TOLERANCE, diffs
