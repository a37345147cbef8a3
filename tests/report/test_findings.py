"""The story's sentences are computed from the results: small tables where a finding flips, and the sentence
flips with it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from generator.frames import pd
from generator.i18n import Lang
from generator.report import analysis, findings

EN = Lang("en")


def rows(spec, set_name="test", n_taps=4):
    """spec: (label, prediction, p_cat, box_area, box_mass[, probe predictions...]) per photo."""
    out = []
    for i, r in enumerate(spec):
        label, pred, p_cat, area, mass = r[:5]
        row = {"set": set_name, "file": f"{set_name}/{label}.{i}.jpg", "label": label, "prediction": pred,
               "p_cat": p_cat, "p_dog": 1 - p_cat, "box_area": area, "box_mass": mass, "status": "ok",
               "pet_p": 0.9, "energy": -9.0, "imagenet1": "tabby", "imagenet1_p": 0.5}
        probes = r[5] if len(r) > 5 else [pred] * n_taps
        for t, p in enumerate(probes):
            row[f"probe{t}_prediction"] = p
            row[f"box{t}_area"] = area
        out.append(row)
    return analysis.tag_rows(pd.DataFrame(out), threshold=0.1)


def test_attention_agrees_when_mistakes_spread_out_and_says_so_otherwise():
    spread = rows([("cat", "cat", 0.9, 0.3, 0.9), ("dog", "dog", 0.1, 0.35, 0.9), ("cat", "dog", 0.3, 0.95, 1.0)])
    f = findings.attention(spread, ["test"], EN)
    assert f.agrees is True and f.text.startswith("As in the original post")
    assert "95%" in f.text and "32%" in f.text  # the medians, computed
    tight = spread.assign(box_area=[0.3, 0.35, 0.1])
    g = findings.attention(tight, ["test"], EN)
    assert g.agrees is False and g.text.startswith("Unlike the original post")
    assert ("sets/test/index.html?tag=wrong" in [h for h, _ in g.links])
    none = spread[spread["label"] == spread["prediction"]]
    assert findings.attention(none, ["test"], EN).agrees is None


def test_stages_finds_where_the_probes_separate_and_whether_the_map_widens():
    labels = ["s1", "s2", "s3", "s4"]
    spec = []
    for i in range(10):  # probes at stage 1 and 2 are wrong on 5 of 10, from stage 3 on always right
        label = "cat" if i % 2 else "dog"
        wrong = "dog" if label == "cat" else "cat"
        early = label if i < 5 else wrong
        spec.append((label, label, 0.9 if label == "cat" else 0.1, 0.5, 0.9, [early, early, label, label]))
    d = rows(spec)
    for t, a in enumerate([0.2, 0.3, 0.4, 0.6]):
        d[f"box{t}_area"] = a
    f = findings.stages(d, "test", labels, EN)
    assert "separable at s3:" in f.text and "50.0% one stage earlier" in f.text
    assert f.agrees is True and "widens" in f.text and "60%" in f.text
    d["box3_area"] = 0.35
    g = findings.stages(d, "test", labels, EN)
    assert g.agrees is False and "does not widen" in g.text


def test_own_photo_mistakes_say_what_they_have_in_common():
    spec = [("cat", "cat", 0.9, 0.4, 0.9)] * 6 + [("cat", "dog", 0.2, 0.9, 1.0), ("cat", "dog", 0.4, 0.8, 1.0),
                                                 ("dog", "cat", 0.7, 0.3, 0.9)]
    d = rows(spec, "personal")
    f = findings.own_photo_mistakes(d, "personal", EN)
    assert "3 of 9 are wrong" in f.text and "2 of them are cat photos called dog" in f.text
    flipped = d.assign(label=d["label"].map({"cat": "dog", "dog": "cat"}),
                       prediction=d["prediction"].map({"cat": "dog", "dog": "cat"}))
    g = findings.own_photo_mistakes(flipped, "personal", EN)
    assert "2 of them are dog photos called cat" in g.text


def test_name_stem():
    assert findings.name_stem("cat/oxfordpet_Sphynx_12.jpg") == "oxfordpet_Sphynx"
    assert findings.name_stem("IMG 0042.jpeg") == "IMG"


def test_unrelated_photos_say_what_the_head_calls_them():
    d = rows([("", "dog", 0.1, 0.5, 0.5), ("", "dog", 0.3, 0.5, 0.5), ("", "dog", 0.05, 0.5, 0.5)], "unrelated")
    d["pet_p"] = [0.01, 0.5, 0.02]
    d = analysis.tag_rows(d, threshold=0.1)
    test = rows([("cat", "cat", 0.9, 0.5, 0.9)])
    f = findings.unrelated_photos(pd.concat([d, test]), "unrelated", 0.1, 0.995, "test", EN)
    assert "calls all 3 unrelated photos dog" in f.text and "flags 2 of the 3" in f.text
    d.loc[d.index[0], "prediction"] = "cat"
    g = findings.unrelated_photos(pd.concat([d, test]), "unrelated", 0.1, 0.995, "test", EN)
    assert "calls 1 of the 3 unrelated photos cat and 2 dog" in g.text


def _board(cam_del, rnd_del):
    scores = []
    rng = np.random.default_rng(0)
    for i in range(8):
        for m, d in (("cam", cam_del), ("random", rnd_del), ("gaussian", 0.8), ("gradcam", cam_del + 0.01)):
            scores.append({"set": "test", "file": f"f{i}", "method": m, "tap": 3,
                           "deletion_auc": d + rng.normal(0, 0.01), "insertion_auc": 0.9 - d,
                           "average_drop": 0.1, "increase": 0.0})
    return pd.DataFrame(scores)


def test_faithfulness_sentence_follows_the_scores():
    titles = {"cam": "CAM", "gradcam": "Grad-CAM"}
    good = _board(0.5, 0.85)
    f = findings.faithfulness(analysis.leaderboard(good, 0), analysis.verdict(good, 3, 0), 3, titles, EN)
    assert "lowers the model's confidence faster than a random order" in f.text
    bad = _board(0.9, 0.6)
    g = findings.faithfulness(analysis.leaderboard(bad, 0), analysis.verdict(bad, 3, 0), 3, titles, EN)
    assert "does not lower" in g.text


def test_sanity_sentence_names_the_methods_that_do_not_change():
    table = pd.DataFrame([{"method": "cam", "randomised": "head", "n": 6, "median": 0.05, "unchanged": 0.0},
                          {"method": "eigencam", "randomised": "head", "n": 6, "median": 1.0, "unchanged": 1.0}])
    f = findings.sanity(table, {"cam": "CAM", "eigencam": "Eigen-CAM"}, EN)
    assert "changes the maps of CAM" in f.text and "The maps of Eigen-CAM barely change" in f.text


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_findings_are_sentences_in_the_chosen_language(lang):
    L = Lang(lang)
    spread = rows([("cat", "cat", 0.9, 0.3, 0.9), ("cat", "dog", 0.3, 0.95, 1.0)])
    text = findings.attention(spread, ["test"], L).text
    hangul = any("\uac00" <= ch <= "\ud7a3" for ch in text)
    assert hangul == (lang == "ko")


def _loc_table(hit, lo, hi, centre=(0.3, 0.25, 0.35)):
    rows = []
    for tap in range(2):
        for region in ("head", "pet"):
            rows.append({"method": "cam", "tap": tap, "region": region, "n": 40, "hit": hit, "hit_lo": lo,
                         "hit_hi": hi, "centre": centre[0], "centre_lo": centre[1], "centre_hi": centre[2]})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("hit, lo, hi, agrees, words", [
    (0.8, 0.7, 0.9, True, "As the original post says"),
    (0.1, 0.05, 0.15, False, "Unlike the original post"),
    (0.3, 0.2, 0.4, None, "cannot tell"),
])
def test_the_head_finding_follows_the_intervals(hit, lo, hi, agrees, words):
    f = findings.looks_at_head(_loc_table(hit, lo, hi), ["stage 1", "stage 2"], EN)
    assert f.agrees is agrees and words in f.text
    assert "40" in f.text and "30%" in f.text and "stage 2" in f.text  # n, the centre baseline, the last stage


def test_too_few_mistakes_are_said_plainly():
    from generator.evaluate.truth import ErrTest

    few = ErrTest(50, 3, None, None, None, None, 0.1, 0.3, False)
    f = findings.errs_when_head_unclear(few, EN)
    assert "Only 3" in f.text and "too few to tell" in f.text and f.agrees is None
    assert findings.errs_when_head_unclear(None, EN) is None


def three_class_rows():
    """Own photos of three breeds: Bengal called Siamese twice, Siamese called pug once, the rest right."""
    classes = ("Bengal", "Siamese", "pug")
    spec = [("Bengal", "Bengal"), ("Bengal", "Siamese"), ("Bengal", "Siamese"), ("Siamese", "Siamese"),
            ("Siamese", "pug"), ("pug", "pug"), ("pug", "pug")]
    out = []
    for i, (label, pred) in enumerate(spec):
        p = {c: 0.1 for c in classes}
        p[pred] = 0.8
        out.append({"set": "own", "file": f"{label}_{i}.jpg", "label": label, "prediction": pred,
                    **{f"p_{c}": v for c, v in p.items()}, "box_area": 0.9 if label != pred else 0.3,
                    "box_mass": 0.9, "status": "ok", "pet_p": 0.9, "energy": -9.0})
    return classes, analysis.tag_rows(pd.DataFrame(out), 0.5, classes, "msp")


def test_k_class_findings_name_the_mix_up_with_the_most_photos():
    classes, d = three_class_rows()
    f = findings.own_photo_mistakes(d, "own", EN, classes)
    assert "3 of 7 are wrong" in f.text and "2 of them are Bengal photos called Siamese." in f.text
    run = SimpleNamespace(classes=classes, n_taps=4, tuned=False, own=False, train_scores={"tap3_cv5_accuracy": 0.9})
    train = d.assign(set="train")
    g = findings.data_and_model(pd.concat([train, d.assign(set="test")]), "train", "test", run, EN)
    assert g.text.startswith("The head was fitted on 7 photos of 3 classes (2 to 3 per class)")
    assert "gets 57.1% right (3 wrong)" in g.text


def test_the_model_paragraph_says_which_recipe_trained_it():
    """The probe's paragraph says the network stayed frozen; a fine-tuned one's says it was trained as in the post,
    with the held-out share and the epoch kept, read from the training record."""
    from types import SimpleNamespace

    train = rows([("cat", "cat", 0.9, 0.3, 0.9), ("dog", "dog", 0.1, 0.3, 0.9), ("dog", "dog", 0.2, 0.3, 0.9)],
                 set_name="train")
    test = rows([("cat", "cat", 0.9, 0.3, 0.9), ("dog", "cat", 0.6, 0.3, 0.9)])
    d = pd.concat([train, test], ignore_index=True)
    probe = SimpleNamespace(n_taps=4, tuned=False, own=False, classes=("cat", "dog"),
                            train_scores={"tap3_cv5_accuracy": 0.97})
    f = findings.data_and_model(d, "train", "test", probe, EN)
    assert "stays frozen" in f.text and "97.0%" in f.text and f.agrees is False
    curve = ({"heldout_accuracy": 0.9}, {"heldout_accuracy": 0.95}, {"heldout_accuracy": 0.925})
    tuned = SimpleNamespace(n_taps=4, tuned=True, own=False, classes=("cat", "dog"), train_scores={},
                            training_curve=curve, training={"best_epoch": 2, "epochs_run": 3, "n_heldout": 1})
    g = findings.data_and_model(d, "train", "test", tuned, EN)
    assert "stays frozen" not in g.text and "fine-tuned on 1 cat and 2 dog photos, 1 of them held out" in g.text
    assert "gets 50.0% right (1 wrong)" in g.text and "held-out training photos it gets 95.0%" in g.text
    assert "3 epochs, the weights of epoch 2 kept" in g.text and g.agrees is True
    own = SimpleNamespace(n_taps=4, tuned=False, own=True, classes=("cat", "dog"), train_scores={})
    h = findings.data_and_model(d, "train", "test", own, EN)  # a user's own classifier: nothing trained here
    assert "your own classifier" in h.text and "on 3 training photos" in h.text and "stays frozen" not in h.text
    assert "tested on 2 photos, of which it gets 50.0% right (1 wrong)" in h.text


def test_the_stage_story_reads_a_fine_tuned_model_b_when_the_site_shows_the_probe():
    from types import SimpleNamespace

    labels = ["cat", "dog"] * 5
    probe_rows = rows([(c, c, 0.9 if c == "cat" else 0.1, 0.5, 0.9, ["cat"] * 4) for c in labels])  # probes: chance
    tuned_rows = rows([(c, c, 0.9 if c == "cat" else 0.1, 0.5, 0.9, [c] * 4) for c in labels])  # right everywhere
    run = SimpleNamespace(tuned=False, backbone="resnet18", tap_names=("s1", "s2", "s3", "s4"),
                          tap_modules=("l1", "l2", "l3", "l4"))
    compared = SimpleNamespace(b={"recipe_name": "finetune", "backbone": "resnet18"}, results_b=tuned_rows)
    f = findings.stage_story(SimpleNamespace(run=run, classes=("cat", "dog"), compare=compared), probe_rows, "test", EN)
    assert f.text.startswith("These stages are read from the fine-tuned network") and "separable at s1" in f.text
    assert ("compare.html", "the two models side by side") in f.links
    alone = findings.stage_story(SimpleNamespace(run=run, classes=("cat", "dog"), compare=None), probe_rows, "test", EN)
    assert alone.text.startswith("No stage's linear probe reaches")


def _against(cam: float, gauss: float, noise: float, n: int = 40) -> pd.DataFrame:
    """Scores of n photos at tap 3: CAM's and the Gaussian's insertion minus deletion around the given means, the
    random map's around 0 (its expectation), with noise."""
    rng = np.random.default_rng(4)
    out = []
    for i in range(n):
        for m, mu in (("cam", cam), ("gaussian", gauss), ("random", 0.0)):
            c = mu + rng.normal(0, noise)
            out.append({"set": "test", "file": f"f{i}", "method": m, "tap": 3, "deletion_auc": 0.5 - c / 2,
                        "insertion_auc": 0.5 + c / 2, "average_drop": 0.1, "increase": 0.0})
    return pd.DataFrame(out)


@pytest.mark.parametrize("cam, gauss, noise, expect", [
    (0.3, 0.0, 0.02, "It beats both baselines clearly."),
    (0.3, 0.3, 0.002, "the two are equivalent within ±0.03"),
    (0.2, 0.4, 0.02, "a centred Gaussian (a blob in the middle of the photo) does better"),
    (0.2, 0.18, 0.2, "this many photos cannot tell"),
    (0.01, 0.0, 0.2, "It is not clearly better than a random map on this many photos."),
])
def test_the_baselines_sentence_says_what_each_verdict_says(cam, gauss, noise, expect):
    s = _against(cam, gauss, noise)
    v = analysis.verdict(s, 3, 0)
    assert v.best == "cam"
    sentence = findings.baselines_sentence(v, EN)
    assert expect in sentence
    ko = findings.baselines_sentence(v, Lang("ko"))
    assert ko != sentence and "Gaussian" not in ko  # translated
    f = findings.faithfulness(analysis.leaderboard(s, 0), v, 3, {"cam": "CAM"}, EN)
    assert sentence in f.text  # the report says the same as the methods page
