"""End to end on a small real subset: make site's outputs, counts and a warm rerun."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from generator.datasets import CLASSES


def results_of(settings) -> pd.DataFrame:
    return pd.read_csv(Path(settings.site_dir) / "results.csv", keep_default_na=False)


def test_results_csv_has_one_row_per_file(small_site):
    settings, _run = small_site
    df = results_of(settings)
    on_disk = sorted(
        f"{s.name}/{p.relative_to(s).as_posix()}"
        for s in Path(settings.data_dir).iterdir() if s.is_dir() and not s.name.startswith(".")
        for p in s.rglob("*") if p.is_file()
    )
    assert sorted(df["set"] + "/" + df["file"]) == on_disk
    for col in ("set", "file", "label", "prediction", "p_cat", "p_dog", "correct", "page", "status"):
        assert col in df.columns
    assert set(df["status"]) == {"ok"}


def test_probabilities_and_tags_are_consistent(small_site):
    settings, _ = small_site
    df = results_of(settings)
    p = df["p_cat"].astype(float) + df["p_dog"].astype(float)
    assert ((p - 1).abs() < 1e-5).all()
    pred = df[["p_cat", "p_dog"]].astype(float).to_numpy().argmax(1)
    assert list(df["prediction"]) == [CLASSES[i] for i in pred]
    labeled = df[df["label"] != ""]
    assert ((labeled["correct"] == "yes") == (labeled["label"] == labeled["prediction"])).all()
    assert (df.loc[df["label"] == "", "correct"] == "").all()


def test_small_model_is_better_than_chance(small_site):
    settings, _ = small_site
    df = results_of(settings)
    test = df[df["set"] == "test"]
    assert (test["label"] == test["prediction"]).mean() >= 0.8


def test_every_explained_photo_has_a_page_and_pictures(small_site):
    settings, run = small_site
    site = Path(settings.site_dir)
    df = results_of(settings)
    explained = df[(df["set"] != "train") & (df["status"] == "ok")]
    assert len(explained) == 16 + 6 + 4
    for page in explained["page"]:
        html = (site / page).read_text(encoding="utf-8")
        assets = re.findall(r'src="([^"]+\.webp)"', html)
        assert any(a.endswith("photo.webp") for a in assets)
        assert sum("strip-cam-" in a for a in assets) == len(run["taps"])
        assert sum("strip-gradcam-" in a for a in assets) == len(run["taps"])
        for a in assets:
            assert (site / page).parent.joinpath(a).resolve().is_file(), a
    assert (df.loc[df["set"] == "train", "page"] == "").all()


def test_site_pages_and_figures_exist(small_site):
    settings, run = small_site
    site = Path(settings.site_dir)
    for page in ("index.html", "errors.html", "layers.html", "figures.html", "skipped.html",
                 "sets/test/index.html", "sets/personal/index.html", "sets/unrelated/index.html"):
        assert (site / page).is_file(), page
    for fig in ("samples.png", "cam_test.png", "cam_personal.png", "cam_unrelated.png", "layers.png",
                "reliability.png", "confidence.png", "attention.png"):
        assert (site / "figures" / fig).stat().st_size > 1000, fig
    index = (site / "index.html").read_text(encoding="utf-8")
    assert run["weights_sha256"] in index and run["backbone"] in index
    saved = json.loads((site / "run.json").read_text())
    assert set(saved["timings"]) >= {"scan", "model", "explain", "figures", "pages", "total"}
    assert not any(re.search(r'(src|href)="(https?:)?//', (p.read_text(encoding="utf-8")))
                   for p in site.rglob("*.html"))


def test_probe_accuracies_and_layer_page(small_site):
    settings, run = small_site
    df = results_of(settings)
    for t in range(len(run["taps"])):
        assert f"probe{t}_prediction" in df.columns
    # the last probe is the head itself
    ok = df[(df["set"] != "train") & (df["status"] == "ok")]
    assert (ok[f"probe{len(run['taps']) - 1}_prediction"] == ok["prediction"]).all()
    layers = (Path(settings.site_dir) / "layers.html").read_text(encoding="utf-8")
    assert "probe" in layers.lower()


def test_warm_rerun_reuses_everything(small_site, tmp_path):
    """A second build with nothing changed decodes nothing and runs no forward pass."""
    from generator import explain, train
    from generator.build import build_site

    settings, _ = small_site
    calls = {"decode": 0, "forward": 0}
    real_compute, real_extract = explain._compute, train.extract_features

    def counting_compute(*a, **k):  # decodes, runs the network and encodes whatever is not cached
        calls["decode"] += 1
        return real_compute(*a, **k)

    def counting_extract(*a, **k):
        calls["forward"] += 1
        return real_extract(*a, **k)

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(explain, "_compute", counting_compute)
        mp.setattr(train, "extract_features", counting_extract)
        before = results_of(settings)
        build_site(settings, log=lambda _m: None, progress=False)
    finally:
        mp.undo()
    assert calls == {"decode": 0, "forward": 0}
    after = results_of(settings)
    pd.testing.assert_frame_equal(before, after)
