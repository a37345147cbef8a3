"""generator/build.py end to end on a small real subset: make site's outputs, their counts, maps as data, and
the reruns that must do nothing or only re-render."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generator.data.scan import DEFAULT_CLASSES as CLASSES
from generator.explain.overlay import decode_maps
from generator.frames import pd

pytestmark = pytest.mark.numerics  # make test runs these again in float32 where bf16 is on

ROOT = Path(__file__).resolve().parent.parent


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
    for col in ("set", "file", "label", "prediction", "p_cat", "p_dog", "correct", "neither", "tag", "page",
                "status", "pet_p", "imagenet1", "imagenet1_p"):
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
    assert ((df["neither"] == "yes") == (df["tag"] == "neither")).all()


def test_small_model_is_better_than_chance(small_site):
    settings, _ = small_site
    df = results_of(settings)
    test = df[df["set"] == "test"]
    assert (test["label"] == test["prediction"]).mean() >= 0.8


def test_three_files_per_photo_and_maps_as_data(small_site):
    """A photo gets its page, one display copy and one thumbnail; its maps are numbers inside the page."""
    settings, run = small_site
    site = Path(settings.site_dir)
    df = results_of(settings)
    explained = df[(df["set"] != "train") & (df["status"] == "ok")]
    assert len(explained) == 16 + 6 + 4
    assets = [p for p in (site / "assets").rglob("*") if p.is_file()]
    distinct = explained["page"].nunique()
    assert len(assets) == 2 * explained["sha256"].nunique() <= 2 * distinct  # display copy and thumbnail
    shas = set(explained["sha256"])
    assert {p.name for p in assets} <= {f"{sha}.{ext}" for sha in shas for ext in ("jpg", "webp", "thumb.webp")}
    assert all(p.parent.name == p.name[:2] for p in assets)  # assets/ab/<sha>.*: no folder per photo
    n_taps = len(run["tap_modules"])
    for page in explained["page"]:
        text = (site / page).read_text(encoding="utf-8")
        assert re.search(r'src="[^"]+/[0-9a-f]{64}\.(jpg|webp)"', text)
        data = json.loads(re.search(r'<script type="application/json" id="photo-data">(.*?)</script>', text,
                                    re.S).group(1))
        keys = [k for k, _ in decode_maps(data["payload"])]
        for t in range(n_taps):  # CAM of every class and Grad-CAM, at every tap
            assert {f"cam/{t}/0", f"cam/{t}/1", f"gradcam/{t}"} <= set(keys)
        pictures = {src.rsplit("/", 1)[-1] for src in re.findall(r'<img[^>]* src="([^"]+)"', text)}
        sha = explained.loc[explained["page"] == page, "sha256"].iloc[0]
        assert pictures <= {f"{sha}.{ext}" for ext in ("jpg", "webp", "thumb.webp")}, pictures  # no other picture
    assert (df.loc[df["set"] == "train", "page"] == "").all()


def test_site_pages_and_figures_exist(small_site):
    settings, run = small_site
    site = Path(settings.site_dir)
    for page in ("index.html", "report.html", "overview.html", "errors.html", "layers.html", "methods.html",
                 "figures.html", "skipped.html", "sets/test/index.html", "sets/personal/index.html",
                 "sets/unrelated/index.html", "static/colormaps.js", "static/maps.js", "leaderboard.csv"):
        assert (site / page).is_file(), page
    for fig in ("samples.png", "cam_test.png", "cam_personal.png", "cam_unrelated.png", "layers.png",
                "reliability.png", "confidence.png", "attention.png", "neither.png", "leaderboard.png"):
        assert (site / "figures" / fig).stat().st_size > 1000, fig
    overview = (site / "overview.html").read_text(encoding="utf-8")
    assert run["weights_sha256"] in overview and run["backbone"] in overview
    saved = json.loads((site / "run.json").read_text())
    assert set(saved["timings"]) >= {"scan", "model", "explain", "leaderboard", "figures", "pages", "total"}
    assert not any(re.search(r'(src|href)="(https?:)?//', (p.read_text(encoding="utf-8")))
                   for p in site.rglob("*.html"))


def test_probe_accuracies_on_the_layers_page_are_computed(small_site):
    """The last probe is the head itself; every accuracy on layers.html is the share of right probe answers."""
    settings, run = small_site
    df = results_of(settings)
    n = len(run["tap_modules"])
    ok = df[(df["set"] != "train") & (df["status"] == "ok")]
    assert (ok[f"probe{n - 1}_prediction"] == ok["prediction"]).all()
    layers = (Path(settings.site_dir) / "layers.html").read_text(encoding="utf-8")
    row = re.search(r'<tr><th scope="row">test</th>(.*?)</tr>', layers).group(1)
    shown = [float(v) / 100 for v in re.findall(r"<td>([\d.]+)%</td>", row)]
    test = ok[ok["set"] == "test"]
    want = [float((test[f"probe{t}_prediction"] == test["label"]).mean()) for t in range(n)]
    assert shown == pytest.approx(want, abs=0.0006)


def test_the_evidence_identity_holds_on_every_page(small_site):
    """mean(CAM_pred - CAM_other) + (b_pred - b_other) = the logit margin, as each image page states it."""
    settings, _ = small_site
    site = Path(settings.site_dir)
    df = results_of(settings)
    checked = 0
    for page, margin in zip(df["page"], df["logit_margin"]):
        if not page:
            continue
        text = re.sub(r"\s+", " ", html.unescape((site / page).read_text(encoding="utf-8")))
        m = re.search(r"The mean of the map \w+ − \w+ is (-?[\d.]+); plus the difference of the head's biases, "
                      r"(-?[\d.]+), it gives the logit margin (-?[\d.]+)\.", text)
        mean, bias, shown = (float(v) for v in m.groups())
        assert mean + bias == pytest.approx(shown, abs=2e-3)
        assert shown == pytest.approx(float(margin), abs=2e-3)
        checked += 1
    assert checked == 26


def test_neither_threshold_comes_from_the_training_photos(small_site):
    settings, _ = small_site
    from generator.report.analysis import keep_threshold

    df = results_of(settings)
    train = df[(df["set"] == "train") & (df["status"] == "ok")]
    threshold = keep_threshold(train["pet_p"].astype(float).to_numpy(), settings.neither_keep)
    ok = df[(df["set"] != "train") & (df["status"] == "ok")]
    assert ((ok["pet_p"].astype(float) < threshold) == (ok["tag"] == "neither")).all()


def test_nothing_changed_means_nothing_done_without_torch(small_site, tmp_path):
    """A rerun with the same inputs, settings and code stops after the manifest check: torch, numpy, pandas and
    matplotlib are never imported (issue 25: at most 0.5 s)."""
    settings, _ = small_site
    before = {p: p.stat().st_mtime_ns for p in Path(settings.site_dir).rglob("*")}
    code = ("import sys, json; from generator.build import build_site; from generator.config import make_settings; "
            f"s = make_settings(json.loads({json.dumps(json.dumps(_settings_dict(settings)))})); "
            "build_site(s, log=lambda m: print(m)); print([m for m in ('torch', 'numpy', 'pandas', 'matplotlib') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]  # not even numpy: 0.2 s of imports
    assert "nothing changed" in out.stdout
    assert {p: p.stat().st_mtime_ns for p in Path(settings.site_dir).rglob("*")} == before


def _settings_dict(settings) -> dict:
    from generator.config import jsonable

    return jsonable(settings)


def test_a_template_change_re_renders_without_the_model(small_site, monkeypatch):
    """Pages only: no forward pass, no cache written, the figures reused as they were."""
    from generator import build, manifest

    settings, _ = small_site
    site, cache = Path(settings.site_dir), Path(settings.cache_dir)
    figures_before = {p.name: p.stat().st_ino for p in (site / "figures").iterdir()}
    caches_before = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file() and "manifests" not in p.parts
                     and p.suffix != ".pkl"}
    real = manifest.tree_hash
    change = ["x"]  # what the templates' hash gains: a new value is a new template change
    monkeypatch.setattr(manifest, "tree_hash",
                        lambda root, suffixes: real(root, suffixes) + (change[0] if root == manifest.TEMPLATES else ""))
    monkeypatch.setattr(build, "compute", lambda *a, **k: pytest.fail("the model ran"))
    cold = _site_bytes(site)
    # A first template change brings the page data cache up to date: an earlier test of this module may have
    # rebuilt records (more methods), and an entry made from another record file is not used.
    build.build_site(settings, log=lambda _m: None, progress=False)
    from generator.publish.pages import photo

    def decoded(*_a):  # raised in a forked worker too: an AssertionError comes back through the pool
        raise AssertionError("a record was decoded: the page data were not read from the cache")

    monkeypatch.setattr(photo, "decode_record", decoded)
    monkeypatch.setattr(build, "load_bundle", lambda *a: pytest.fail("the results bundle was read: the report does"))
    change[0] = "y"
    build.build_site(settings, log=lambda _m: None, progress=False)
    rerun = _site_bytes(site)
    assert cold.keys() == rerun.keys() and sum(k.startswith("sets/") for k in cold) > 20
    assert [k for k in cold if cold[k] != rerun[k]] == []  # every page as the cold build wrote it
    assert {p.name: p.stat().st_ino for p in (site / "figures").iterdir()} == figures_before  # linked, not drawn
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file() and "manifests" not in p.parts
            and p.suffix != ".pkl"} == caches_before
    monkeypatch.undo()
    build.build_site(settings, log=lambda _m: None, progress=False)  # back to the real templates


def test_pages_are_made_from_the_report_only_while_its_inputs_are_there(small_site):
    """reusable_report: the saved report of the site's figure key, while the results bundle it came from is in the
    cache and every shown photo's record opens; else None (and the build reads the bundle, or computes)."""
    from generator import build, manifest

    settings, _ = small_site
    now = manifest.load(settings)
    report = build.reusable_report(settings, now)
    assert report is not None and report.run.model_fingerprint
    bundle = build.bundle_path(settings, now.compute)
    aside = bundle.with_name(bundle.name + ".aside")
    bundle.rename(aside)
    try:
        assert build.reusable_report(settings, now) is None  # no bundle: compute (and save both) again
    finally:
        aside.rename(bundle)
    from generator.explain.record import record_path

    shown = report.results[(report.results["status"] == "ok") & (report.results["set"] != settings.train_set)]
    record = record_path(settings.cache_dir, report.run.model_fingerprint, shown["sha256"].iloc[0])
    kept = record.read_bytes()
    record.write_bytes(kept[:100])  # truncated: its zip directory no longer reads
    try:
        assert build.reusable_report(settings, now) is None
    finally:
        record.write_bytes(kept)
    assert build.reusable_report(settings, now) is not None


def _site_bytes(site: Path) -> dict[str, bytes]:
    """Every file of the site but run.json (its timings differ run to run)."""
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*"))
            if p.is_file() and p.name != "run.json"}


def _stored_results(settings) -> dict[str, tuple[int, int, str]]:
    """Every cached result and checkpoint by size, modification time and content, except the files a rerun after
    a code change writes by design: the results bundle, the analysed report (runs/), the manifest, and what the
    image pages take from the records (pages/: keyed on the code, as the pages themselves are re-rendered)."""
    import hashlib

    out = {}
    for folder in (Path(settings.cache_dir), Path(settings.weights_dir)):
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not {"runs", "manifests", "pages"} & set(p.relative_to(folder).parts):
                st = p.stat()
                out[str(p)] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def test_a_build_that_needs_more_maps_keeps_the_reported_numbers(small_site, tmp_path):
    """A second site sharing the cache, drawing one more method (LayerCAM), computes again the photos whose records
    lack it, in batches of another shape, where float32 results can differ in the 7th digit. The stored record wins
    (RecordCache.save): this site reports the first build's numbers digit for digit, and the cache keeps them for
    the first site's next build (the warm rerun below checks that too)."""
    import dataclasses

    from generator import build
    from generator.explain import run as explain

    settings, _ = small_site
    recomputed = []
    real_compute = explain._compute

    def counting_compute(model, rows, todo, *a, **k):
        recomputed.extend((rows[i]["set"], rows[i]["file"]) for i in todo)
        return real_compute(model, rows, todo, *a, **k)

    other = dataclasses.replace(settings, site_dir=tmp_path / "site", methods=("cam", "gradcam", "layercam"))
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(explain, "_compute", counting_compute)
        build.build_site(other, log=lambda _m: None, progress=False)
    finally:
        mp.undo()
    assert recomputed, "no photo needed more maps: this test no longer tests what it says"
    first, second = (results_of(s).query("set != 'train'").set_index(["set", "file"]).sort_index()
                     for s in (settings, other))
    assert set(recomputed) <= set(second.index)
    pd.testing.assert_frame_equal(first[second.columns], second)


def test_warm_rerun_reuses_everything(small_site):
    """A second build after a code change (here: a new manifest format) runs no forward pass, decodes and fits
    nothing, writes no cached result, and reports the first build's numbers exactly: it reuses every stored value
    (so equality is guaranteed by the code, whatever the batch shapes, thread counts or bf16)."""
    import collections

    import torch

    from generator import build, manifest
    from generator.explain import run as explain
    from generator.model import train

    settings, _ = small_site
    calls = {"explain": 0, "features": 0}
    real_compute, real_extract = explain._compute, train.extract  # train calls the name it imported
    passes: collections.Counter = collections.Counter()  # shapes of the image batches that entered a network

    def counting_compute(*a, **k):  # decodes, runs the network and encodes whatever is not cached
        calls["explain"] += 1
        return real_compute(*a, **k)

    def counting_extract(*a, **k):
        calls["features"] += 1
        return real_extract(*a, **k)

    before = results_of(settings)
    stored = _stored_results(settings)
    assert any("/records/" in p for p in stored) and any("/leaderboard/" in p for p in stored)

    def count(_module, inputs) -> None:  # every module call of every network in this process
        x = inputs[0] if inputs else None
        if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] == 3:
            passes[tuple(x.shape)] += 1

    mp = pytest.MonkeyPatch()
    hook = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        mp.setattr(explain, "_compute", counting_compute)
        mp.setattr(train, "extract", counting_extract)
        mp.setattr(manifest, "MANIFEST_FORMAT", manifest.MANIFEST_FORMAT + 100)
        build.build_site(settings, log=lambda _m: None, progress=False)
    finally:
        hook.remove()
        mp.undo()
    assert calls == {"explain": 0, "features": 0}
    # Backbone.channels reads each tap's width off one pass of a 64 px zero image: that computes no result.
    passes.pop((1, 3, 64, 64), None)
    assert not passes, f"the rerun ran the network on photos: batches of shape {dict(passes)}"
    assert _stored_results(settings) == stored, "the rerun wrote a cached result again"
    pd.testing.assert_frame_equal(before, results_of(settings))
    build.build_site(settings, log=lambda _m: None, progress=False)  # the manifest as it really is


def test_maps_of_two_class_heads_are_stored_once(small_site):
    """The dog map is exactly minus the cat map (checked on the trained head), so it costs no bytes."""
    settings, run = small_site
    assert max(run["antisymmetry"]) < 1e-5
    page = next(p for p in results_of(settings)["page"] if p)
    text = (Path(settings.site_dir) / page).read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="photo-data">(.*?)</script>', text, re.S).group(1))
    entries = {e["key"]: e for e in data["payload"]["maps"]}
    assert all("neg" in entries[f"cam/{t}/1"] for t in range(len(run["tap_modules"])))
    maps = dict(decode_maps(data["payload"]))
    np.testing.assert_array_equal(maps["cam/0/1"], -maps["cam/0/0"])


def test_ground_truth_reaches_the_photo_pages_the_methods_page_and_the_report(small_site):
    from conftest import PERSONAL_TRUTH

    if not PERSONAL_TRUTH.is_file():
        pytest.skip(f"no ground truth at {PERSONAL_TRUTH}")
    settings, run = small_site
    site = Path(settings.site_dir)
    assert "localisation" in run["timings"]
    methods = (site / "methods.html").read_text()
    assert 'id="localisation-table"' in methods
    n_annotated = len(json.loads(PERSONAL_TRUTH.read_text())["images"])
    pages = sorted(p for p in (site / "sets" / "personal").glob("*.html") if not p.name.startswith(("index", "page-")))
    shown = []
    for p in pages:
        m = re.search(r'<script type="application/json" id="truth-data">(.*?)</script>', p.read_text(), re.S)
        if m:
            shown.append(json.loads(m.group(1)))
    assert shown, "no personal photo page shows its ground truth"
    # the small build links 6 of the annotated photos: the rest are counted apart, not listed as errors
    assert f"{n_annotated - len(shown)} annotated photos are not in this set" in methods.replace(",", "")
    from generator.evaluate.truth import MAX_POINTS

    for d in shown:
        x0, y0, x1, y1 = d["boxes"]["head"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert 3 <= len(d["outline"]) <= MAX_POINTS and all(0 <= v <= 1 for pt in d["outline"] for v in pt)
        assert 0 <= d["peak"][0] < d["w"] and 0 <= d["peak"][1] < d["h"]
    report = (site / "report.html").read_text()
    assert 'id="head"' in report and "centre point" in report
    gallery = (site / "sets" / "personal" / "index.html").read_text()
    assert 'value="off-head"' in gallery and 'value="off-pet"' in gallery
    photos_js = (site / "sets" / "personal" / "photos.js").read_text()
    assert '"loc":' in photos_js


@pytest.fixture(scope="module")
def three_breeds(tmp_path_factory):
    """(settings, run, root) of one build of three Oxford-IIIT Pet breeds (7 training and 3 test photos each) from
    the shared personal photos, through the command line's own steps (a data folder of its own: nothing added)."""
    from conftest import DATASETS, need_datasets, small_settings

    from generator.build import build_site
    from generator.data.breeds import link_breeds

    need_datasets()
    root = tmp_path_factory.mktemp("breeds")
    link_breeds(DATASETS / "personal", root / "data", only=("Bengal", "pug", "Siamese"))
    settings = small_settings(root, root / "data", eval_sets=("test",), roles=("test=test",), faithfulness_sample=1,
                              faithfulness_steps=2, layer_sample=1, figure_sample=4)
    return settings, build_site(settings, log=lambda _m: None, progress=False), root


@pytest.mark.slow
def test_a_three_class_site(three_breeds):
    """K = 3 end to end: the classes from the folders, a checkpoint of their own, a probability column each, the
    3 x 3 confusion, per-class accuracy, 'neither' decided by the head's own confidence, the signed map against
    the runner-up, and no default set added to the named data folder."""
    settings, run, root = three_breeds
    classes = ("Bengal", "Siamese", "pug")  # sorted folder names
    assert tuple(run["classes"]) == classes
    assert Path(run["checkpoint"]).name.startswith("k3-") and not (root / "weights" / "catdog-efficientnet_lite0.pt"
                                                                    ).exists()
    assert sorted(p.name for p in (root / "data").iterdir() if not p.name.startswith(".")) == ["test", "train"]
    site = Path(settings.site_dir)
    df = pd.read_csv(site / "results.csv")
    assert list(df.columns[:7]) == ["set", "file", "label", "prediction", *(f"p_{c}" for c in classes)]
    ok = df[df["status"] == "ok"]
    np.testing.assert_allclose(ok[[f"p_{c}" for c in classes]].sum(axis=1), 1, atol=1e-5)  # printed to 6 digits
    assert set(ok["prediction"]) <= set(classes) and set(ok["label"]) == set(classes)
    test = ok[ok["set"] == "test"]
    assert (test["prediction"] == test["label"]).mean() > 1 / 3  # better than chance on 9 photos
    overview = html.unescape((site / "overview.html").read_text(encoding="utf-8"))
    assert "Each class" in overview and "head's own highest probability" in overview
    errors = (site / "errors.html").read_text()
    assert errors.count('<tr><th scope="row">') >= 3
    page = site / ok[ok["set"] == "test"].iloc[0]["page"]
    data = json.loads(re.search(r'id="photo-data">(.*?)</script>', page.read_text(encoding="utf-8"), re.S).group(1))
    assert data["classes"] == list(classes) and data["other"] != data["pred"]
    assert sorted({k.split("/")[-1] for k, _ in decode_maps(data["payload"]) if k.startswith("cam/")}) == ["0", "1",
                                                                                                         "2"]


@pytest.mark.slow
def test_a_fine_tuned_site_draws_its_curve_tells_its_recipe_and_is_never_tuned_twice(tmp_path):
    """--recipe finetune on a few real photos: the overview draws the training curve and describes the recipe
    used, the report's model paragraph no longer says the network stayed frozen, and a rebuild for a page setting
    reuses the site, and one for a setting that changes the maps but not the model computes again on the tuned
    checkpoint (no epoch is trained again)."""
    from conftest import make_small_data, small_settings

    from generator.build import build_site
    from generator.config import jsonable, make_settings

    data = make_small_data(tmp_path, n_train=4, n_test=2)
    settings = small_settings(tmp_path, data, recipe="finetune", input_size=64, finetune_epochs=2,
                              finetune_batch=4, finetune_holdout=0.25, finetune_patience=2, faithfulness_sample=1,
                              faithfulness_steps=2)
    logs: list[str] = []
    run = build_site(settings, log=logs.append, progress=False)
    assert run["recipe"]["name"] == "finetune" and len(run["training_curve"]) == run["training"]["epochs_run"]
    assert Path(run["checkpoint"]).name == "catdog-efficientnet_lite0-finetune.pt"
    assert sum(m.startswith("epoch ") for m in logs) == run["training"]["epochs_run"]
    site = Path(settings.site_dir)
    overview = (site / "overview.html").read_text()
    assert 'id="training"' in overview and "<polyline" in overview and "stays frozen" not in overview
    assert overview.count('class="best"') == 1
    story = (site / "index.html").read_text()
    assert "The whole network was fine-tuned on 4 cat and 4 dog photos, 2 of them held out" in html.unescape(story)
    assert "Unlike the original post, which fine-tuned a whole ResNet18" not in story

    logs.clear()
    values = {k: v for k, v in jsonable(settings).items() if v is not None}
    build_site(make_settings({**values, "page_size": 3}), log=logs.append, progress=False)
    assert not any(m.startswith("epoch ") or "fine-tuning" in m for m in logs), logs
    again = build_site(make_settings({**values, "box_threshold": 0.3}), log=logs.append, progress=False)
    assert any(m.startswith("[model]") for m in logs) and again["model_fingerprint"] == run["model_fingerprint"]
    assert not any(m.startswith("epoch ") or "fine-tuning" in m for m in logs), logs


@pytest.mark.slow
def test_compare_explains_the_second_model_into_its_own_cache_and_pairs_the_photos(tmp_path):
    """--recipe finetune --compare probe on a few real photos: both models explain the same photos, each into its
    own records; the report's comparison pairs every labelled test photo, and its flip counts are those of the two
    results tables."""
    import pickle

    from conftest import make_small_data, small_settings

    from generator.build import build_site
    from generator.explain.record import record_path

    data = make_small_data(tmp_path, n_train=4, n_test=3)
    settings = small_settings(tmp_path, data, recipe="finetune", compare="probe", input_size=64, finetune_epochs=1,
                              finetune_batch=4, faithfulness_sample=1, faithfulness_steps=2)
    run = build_site(settings, log=lambda _m: None, progress=False)
    runs = Path(settings.cache_dir) / "runs"
    bundle = pickle.loads(max((p for p in runs.glob("*.pkl") if not p.name.endswith(".report.pkl")),
                              key=lambda p: p.stat().st_mtime).read_bytes())
    report = pickle.loads(max(runs.glob("*.report.pkl"), key=lambda p: p.stat().st_mtime).read_bytes())
    other = bundle["compare"]["model"]
    assert other["recipe_name"] == "probe" and other["fingerprint"] != run["model_fingerprint"]
    a, b = bundle["results"], bundle["compare"]["results"]
    test_a = a[(a["set"] == "test") & (a["status"] == "ok")].set_index("file")
    test_b = b[(b["set"] == "test") & (b["status"] == "ok")].set_index("file").loc[test_a.index]
    for sha in test_a["sha256"]:
        assert record_path(settings.cache_dir, run["model_fingerprint"], sha).is_file()
        assert record_path(settings.cache_dir, other["fingerprint"], sha).is_file()
    c = report.compare
    row = c.accuracy[c.accuracy["set"] == "test"].iloc[0]
    right_a, right_b = test_a["prediction"] == test_a["label"], test_b["prediction"] == test_b["label"]
    assert row["n"] == len(test_a) == 6
    assert row["right_to_wrong"] == int((right_b & ~right_a).sum()) == len(c.broke[c.broke["set"] == "test"])
    assert row["wrong_to_right"] == int((~right_b & right_a).sum())
    assert c.moves["rho"].notna().sum() >= 6 and c.moves["rho"].between(-1, 1).all()

    page = (Path(settings.site_dir) / "compare.html").read_text()
    assert 'id="compare-maps-a"' in page and 'id="compare-maps-b"' in page and "McNemar" in page
    payload_b = json.loads(page.split('id="compare-maps-b">', 1)[1].split("</script>", 1)[0])
    shown = set(c.broke["file"].head(12)) | set(c.fixed["file"].head(12)) | set(c.moves["file"].head(12))
    assert len(payload_b) == len(shown)  # B's maps of every photo the page shows with both maps
    assert f'{int(row["right_to_wrong"])}</td><td>{int(row["wrong_to_right"])}</td>' in page
    assert 'href="compare.html"' in (Path(settings.site_dir) / "index.html").read_text()
    assert run["pages"]["compare"]["count"] == 1
    first = test_a.iloc[0]
    photo_page = (Path(settings.site_dir) / first["page"]).read_text()
    other_b = c.photo("test", test_a.index[0])
    assert "Under the other model" in photo_page and 'href="../../compare.html"' in photo_page
    assert f"Model B (probe) predicts {other_b['prediction']}" in photo_page
    # a page-only rerun takes the report only while model B's records are there too
    from generator import build, manifest

    now = manifest.load(settings)
    assert build.reusable_report(settings, now) is not None
    b_record = record_path(settings.cache_dir, other["fingerprint"], test_a["sha256"].iloc[0])
    b_record.rename(b_record.with_name(b_record.name + ".aside"))
    try:
        assert build.reusable_report(settings, now) is None
    finally:
        b_record.with_name(b_record.name + ".aside").rename(b_record)


def test_result_bundles_are_pruned_to_the_most_recently_used(tmp_path):
    """Every code or compute-settings change makes a new bundle of several MB: saving one keeps KEEP_RUNS of
    them (the most recently used, loading counts as use) and the reports beside them likewise."""
    import os

    from generator import build
    from generator.config import make_settings

    settings = make_settings({"cache_dir": tmp_path / "cache"})
    keys = [f"{i:024x}" for i in range(build.KEEP_RUNS + 2)]
    for i, k in enumerate(keys):
        for p in (build.bundle_path(settings, k), build.report_path(settings, k)):
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"old")
            os.utime(p, (1000 + i, 1000 + i))
    os.utime(build.bundle_path(settings, keys[0]))  # the oldest was loaded again just now
    build.save_bundle(settings, "f" * 24, {"format": -1})
    left = {p.name for p in (tmp_path / "cache" / "runs").iterdir()}
    bundles = sorted(n for n in left if not n.endswith(".report.pkl"))
    assert bundles == sorted([f"{'f' * 24}.pkl", f"{keys[0]}.pkl"] + [f"{k}.pkl" for k in keys[-2:]])
    assert len([n for n in left if n.endswith(".report.pkl")]) == build.KEEP_RUNS
