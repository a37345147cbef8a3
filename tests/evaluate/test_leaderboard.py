"""generator/evaluate/leaderboard.py: which maps are scored, scored once when equal, cached by content; and the
parameter-randomisation sanity check on a tiny model whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures_models import TinyGapNet, make_record

from generator.evaluate import leaderboard
from generator.frames import pd
from generator.model.backbones import Backbone
from generator.model.checkpoint import TrainedModel
from generator.model.heads import LinearHead
from generator.model.runtime import Runtime


def test_candidates_are_every_method_at_the_last_tap_and_the_gradient_family_at_every_tap():
    rec = make_record()
    rec.maps["eigencam"] = [np.ones((s, s), np.float16) for s in (8, 4, 2)]
    got = {c.key for c, _ in leaderboard.candidates(rec, 3)}
    assert got == {"cam@2", "gradcam@0", "gradcam@1", "gradcam@2", "scorecam@2", "eigencam@2"}
    cam = dict((c.key, m) for c, m in leaderboard.candidates(rec, 3))["cam@2"]
    np.testing.assert_array_equal(cam, rec.maps["cam"][2][rec.pred])  # the predicted class's map


def test_equal_maps_are_scored_once_and_scores_are_cached(tmp_path):
    rec = make_record()
    grad = np.asarray(rec.maps["gradcam"][2], np.float32)
    rec.maps["hirescam"] = [None, None, (grad * 3).astype(np.float16)]  # the same map at another scale
    calls = []

    def probs_of(batch):
        calls.append(len(batch))
        p = torch.sigmoid(batch.mean(dim=(1, 2, 3)))
        return torch.stack([p, 1 - p], 1)

    class S:
        input_size, faithfulness_steps, seed = 16, 4, 0

    x = torch.randn(3, 16, 16)
    scores = leaderboard.score_photo(probs_of, x, rec, "ab" * 32, 3, S)
    assert scores["hirescam@2"] == scores["gradcam@2"]  # the same map up to scale: scored once
    per_map = 2 * (S.faithfulness_steps - 1) + 1
    distinct = len(scores) - 1  # hirescam shares gradcam's
    assert sum(calls) == 2 + distinct * per_map  # the photo and the blurred photo, then each distinct map
    cache = leaderboard.ScoreCache(tmp_path, "fp", S)
    cache.save("ab" * 32, scores)
    assert cache.load("ab" * 32, set(scores)) == scores
    assert cache.load("ab" * 32, set(scores) | {"other@2"}) is None  # a new method: scored again


def _tiny_model(seed: int = 0) -> TrainedModel:
    torch.manual_seed(seed)
    net = TinyGapNet(c1_stride=1).eval()
    backbone = Backbone(name="tiny", model=net, taps=("c1", "c2"), tap_names=("a", "b"), strides=(1, 2),
                        mean=(0.5,) * 3, std=(0.5,) * 3, weights_file="none", weights_sha256="0" * 64,
                        last_stage=("c2",))
    heads = [LinearHead(torch.randn(2, 6), torch.randn(2)),
             LinearHead(net.fc.weight.detach().clone(), net.fc.bias.detach().clone())]
    return TrainedModel(backbone, heads, {}, None)


def test_sanity_check_tells_a_model_explanation_from_a_photo_explanation():
    """Randomising the head scrambles CAM (its map is the head's weights times the features) but cannot move
    Eigen-CAM (the features' first component, which no head enters); randomising the last stage moves both."""
    model = _tiny_model()
    from generator.explain.run import make_explainer

    runtime = Runtime("cpu", False, False)
    x = torch.randn(6, 3, 24, 24)
    with make_explainer(model, ("cam", "eigencam"), runtime) as ex:
        before = ex(x)
    target = before.logits.argmax(1)
    original = [{n: before.maps[n][-1][j].numpy() for n in ("cam", "eigencam")} for j in range(len(x))]
    rows = pd.DataFrame(leaderboard.rank_correlations(model, x, target, original, ["cam", "eigencam"], runtime, 0))
    med = rows.groupby(["method", "randomised"])["spearman"].median()
    assert med["eigencam", "head"] == 1.0
    assert abs(med["cam", "head"]) < 0.9
    assert med["eigencam", "head + last stage"] < 0.9
    # the model itself is untouched
    with make_explainer(model, ("cam",), runtime) as ex:
        torch.testing.assert_close(ex(x).maps["cam"][-1], before.maps["cam"][-1])


def test_sanity_check_of_a_model_without_a_linear_head_redraws_its_own_head():
    """No linear head at the last tap (a user's MLP head): 'head' re-initialises the head's own modules (the
    backbone names them) and leaves the last stage alone, 'head + last stage' re-initialises both; Grad-CAM,
    computed through that head, changes with it."""
    from fixtures_models import TinyMlpHeadNet

    from generator.explain.run import make_explainer

    torch.manual_seed(0)
    net = TinyMlpHeadNet().eval()
    backbone = Backbone(name="tiny", model=net, taps=("c1", "c2"), tap_names=("a", "b"), strides=(2, 4),
                        mean=(0.5,) * 3, std=(0.5,) * 3, weights_file="none", weights_sha256="0" * 64,
                        last_stage=("c2",), imagenet=False, head_modules=("head.0", "head.2"))
    model = TrainedModel(backbone, [LinearHead(torch.randn(2, 6), torch.randn(2)), None], {}, None)
    head_only, heads = leaderboard.randomised(model, "head", 0)
    assert heads[-1] is None
    assert not torch.equal(head_only.head[2].weight, net.head[2].weight)
    assert torch.equal(head_only.c2[0].weight, net.c2[0].weight)
    both, _ = leaderboard.randomised(model, "head + last stage", 1)
    assert not torch.equal(both.head[0].weight, net.head[0].weight)
    assert not torch.equal(both.c2[0].weight, net.c2[0].weight)
    runtime = Runtime("cpu", False, False)
    x = torch.randn(6, 3, 24, 24)
    with make_explainer(model, ("gradcam",), runtime) as ex:
        before = ex(x)
    target = before.logits.argmax(1)
    original = [{"gradcam": before.maps["gradcam"][-1][j].numpy()} for j in range(len(x))]
    rows = pd.DataFrame(leaderboard.rank_correlations(model, x, target, original, ["gradcam"], runtime, 0))
    assert set(rows["randomised"]) == set(leaderboard.RANDOMISATIONS)
    assert rows["spearman"].notna().any() and not (rows["spearman"] == 1.0).all()


def test_sample_is_seeded_per_set():
    df = pd.DataFrame({"set": ["a"] * 10 + ["b"] * 3, "status": "ok", "file": [f"f{i}" for i in range(13)]})
    one = leaderboard.sample_rows(df, ["a", "b"], 2, seed=0)
    assert list(one["set"]) == ["a", "a", "b", "b"]
    assert list(leaderboard.sample_rows(df, ["a", "b"], 2, seed=0)["file"]) == list(one["file"])
    assert len(leaderboard.sample_rows(df, ["a", "b"], 0, seed=0)) == 13  # 0 = every photo


# ---- the adaptive sample: stream, stopping rule --------------------------------------------------------------


def test_stream_is_stratified_by_set_and_by_right_or_wrong_in_proportion():
    rows = [{"set": "a", "file": f"a{i}", "status": "ok", "correct": "yes" if i < 24 else "no"} for i in range(32)]
    rows += [{"set": "u", "file": f"u{i}", "status": "ok", "correct": ""} for i in range(8)]
    rows += [{"set": "a", "file": "bad", "status": "skipped: unreadable", "correct": ""}]
    df = pd.DataFrame(rows)
    order = leaderboard.photo_stream(df, ["a", "u"], seed=0)
    assert len(order) == 40 and "bad" not in set(order["file"])
    assert sorted(order["file"]) == sorted(r["file"] for r in rows if r["file"] != "bad")  # each photo once
    # strata of 24, 8 and 8 photos (a right, a wrong, u): every prefix holds each within one photo of its share
    sizes = {("a", "yes"): 24, ("a", "no"): 8, ("u", ""): 8}
    for n in range(1, 41):
        head = order.iloc[:n]
        for (st, c), size in sizes.items():
            got = int(((head["set"] == st) & (head["correct"] == c)).sum())
            assert abs(got - n * size / 40) < 1, (n, st, c, got)
    assert list(order.iloc[:5]["correct"]) == ["yes", "yes", "no", "", "yes"]  # 24 : 8 : 8 from the first photos
    assert list(leaderboard.photo_stream(df, ["a", "u"], seed=0)["file"]) == list(order["file"])
    assert list(leaderboard.photo_stream(df, ["a", "u"], seed=1)["file"]) != list(order["file"])


def _stream_scores(n: int, effects: dict[str, float], noise: float, seed: int) -> pd.DataFrame:
    """Simulated scores of n photos: each map's insertion minus deletion is a photo effect plus its own effect
    plus noise, the random map's is noise around 0 (its expectation on every photo, faithfulness.py); the right
    verdict of each comparison is known from the effects."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        photo = rng.normal(0.3, 0.1)
        for m, e in effects.items():
            c = (photo + e if m != "random" else 0.0) + rng.normal(0, noise)
            rows.append({"set": "s", "file": f"f{i}", "method": m, "tap": 1, "deletion_auc": 0.5 - c / 2,
                         "insertion_auc": 0.5 + c / 2, "average_drop": 0.1, "increase": 0.0})
    return pd.DataFrame(rows)


def _run_rule(effects, noise, pool, seconds_per_photo, budget_s):
    """The stopping rule as the stage runs it (rounds from next_size, looks from FIRST_LOOK on, the Bonferroni
    factor from planned_looks) on a simulated stream, with a simulated clock."""
    from generator.evaluate import stats

    full = _stream_scores(pool, effects, noise, seed=3)
    looks = leaderboard.planned_looks(pool)
    done, spent, stopped, comps, looked = 0, 0.0, "all photos", [], 0
    while done < pool:
        k, cut = leaderboard.next_size(done, (budget_s - spent) / seconds_per_photo if done else None, pool, True)
        if k <= 0:
            stopped = "budget"
            break
        first = done == 0
        done += k
        spent += k * seconds_per_photo
        if first:  # the probe measured the time: the looks are fixed from what the budget can buy
            looks = leaderboard.affordable_looks(done, (budget_s - spent) / seconds_per_photo, pool)
        if done >= leaderboard.FIRST_LOOK:
            scores = full[full["file"].isin([f"f{i}" for i in range(done)])]
            comps = stats.comparisons(scores, 1, 0, looks)
            looked += 1
            if all(c.verdict != "undecided" for c in comps):
                stopped = "resolved"
                break
            if looked >= looks:
                stopped = "budget"
                break
        if cut:
            stopped = "budget"
            break
    return stopped, done, {(c.a, c.b): c for c in comps}


def test_stopping_rule_stops_early_when_a_method_is_clearly_better():
    stopped, n, comps = _run_rule({"good": 0.25, "random": 0.0, "gaussian": 0.1}, 0.03, 400, 1.0, 1e9)
    assert stopped == "resolved" and n < 400
    assert comps["good", "random"].verdict == "better" and comps["good", "gaussian"].verdict == "better"


def test_stopping_rule_calls_two_equal_methods_equivalent():
    stopped, n, comps = _run_rule({"a": 0.2, "b": 0.2, "random": 0.0, "gaussian": -0.3}, 0.02, 400, 1.0, 1e9)
    assert stopped == "resolved"
    assert next(c for k, c in comps.items() if set(k) == {"a", "b"}).verdict == "equivalent"
    assert comps["a", "random"].verdict == "better"


def test_stopping_rule_reports_the_budget_and_the_photos_a_verdict_needs():
    """A difference of 0.03 (at the margin) under noise 0.2: undecidable in a 30-photo budget."""
    stopped, n, comps = _run_rule({"a": 0.23, "b": 0.2, "random": 0.0, "gaussian": 0.1}, 0.2, 400, 1.0, 30.0)
    assert stopped == "budget" and n <= 30
    pair = next(c for k, c in comps.items() if set(k) == {"a", "b"})
    assert pair.verdict == "undecided" and pair.needed > n
    # the extrapolation: the half width at `needed` photos (~1/sqrt(n)) reaches the distance to a verdict
    half = (pair.hi - pair.lo) / 2
    from generator.evaluate.stats import MARGIN
    gap = max(abs(pair.mean), MARGIN - abs(pair.mean))
    assert half * np.sqrt(n / pair.needed) <= gap * 1.001


def test_too_few_photos_decide_nothing():
    from generator.evaluate import stats

    s = _stream_scores(3, {"good": 0.3, "random": 0.0, "gaussian": 0.1}, 0.001, 0)
    comps = stats.comparisons(s, 1, 0)
    assert {c.verdict for c in comps} == {"undecided"}
    assert all(c.needed >= stats.MIN_PHOTOS for c in comps)


def test_identical_maps_are_the_same_map_and_count_for_nothing():
    from generator.evaluate import stats

    s = _stream_scores(20, {"gradcam": 0.2, "random": 0.0, "gaussian": 0.1}, 0.01, 0)
    s = pd.concat([s, s[s["method"] == "gradcam"].assign(method="hirescam")])
    comps = {(c.a, c.b): c for c in stats.comparisons(s, 1, 0)}
    pair = next(c for k, c in comps.items() if set(k) == {"gradcam", "hirescam"})
    assert pair.verdict == "same map"


def test_gpu_default_scores_every_photo_and_settings_override():
    class S:
        faithfulness_budget_s = 0.0
        faithfulness_budget_images = 0

    inf = float("inf")
    gpu, cpu = Runtime("cuda", False, False), Runtime("cpu", False, False)
    assert not leaderboard.budget_of(S, gpu).finite
    assert leaderboard.budget_of(S, cpu) == leaderboard.Budget(leaderboard.CPU_BUDGET_IMAGES, inf)
    import dataclasses

    from generator.config import Settings

    help_ = next(f.metadata["help"] for f in dataclasses.fields(Settings) if f.name == "faithfulness_budget_images")
    assert f"0 = {leaderboard.CPU_BUDGET_IMAGES} on a CPU" in help_  # what --help and README's table say it is
    S.faithfulness_budget_s = 5.0
    assert leaderboard.budget_of(S, gpu) == leaderboard.Budget(inf, 5.0)
    S.faithfulness_budget_images = 300
    assert leaderboard.budget_of(S, gpu) == leaderboard.Budget(300, 5.0)
    assert leaderboard.next_size(0, None, 1000, adaptive=False) == (leaderboard.GPU_ROUND, False)


def test_the_budget_buys_the_photos_of_whichever_runs_out_first():
    b = leaderboard.Budget(images=1000, seconds=20.0)
    # 400 images and 5 s spent; a photo costs 40 images and 1 s: the images buy 15 more, the seconds 15 too
    assert b.photos_left(400, 5.0, 40, 1.0) == pytest.approx(15)
    assert b.photos_left(400, 5.0, 40, 3.0) == pytest.approx(5)  # slower photos: the seconds run out first
    assert b.photos_left(400, 5.0, 60, 0.1) == pytest.approx(10)  # costlier photos: the images do
    assert leaderboard.Budget(images=1000).photos_left(400, 1e9, 40, 1e9) == pytest.approx(15)  # no clock at all
    assert leaderboard.Budget(images=100).photos_left(400, 0, 40, 1) < 0  # overdrawn
    assert not leaderboard.Budget().finite and leaderboard.Budget().photos_left(0, 0, 1, 1) == float("inf")
    assert b.ran_out(900, 5.0) == "images" and b.ran_out(400, 19.0) == "seconds"
    assert leaderboard.Budget(seconds=1.0).ran_out(10**6, 0.5) == "seconds"


def _tiny_photos(tmp_path, model, n: int):
    """n small PNG photos on disk, their records in the record cache (maps from the tiny model's explainer), and
    the results rows the stage reads."""
    from PIL import Image

    from generator.explain.record import PhotoRecord, as_stored
    from generator.explain.run import RecordCache, make_explainer, scored_methods
    from generator.files import file_sha256

    rng = np.random.default_rng(0)
    runtime = Runtime("cpu", False, False)
    names = scored_methods(())
    cache = RecordCache(tmp_path / "cache", model.fingerprint, 2)
    rows = []
    for i in range(n):
        path = tmp_path / f"p{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        sha = file_sha256(path)
        x = model.backbone.to_input(np.asarray(Image.open(path).convert("RGB"))[None])
        with make_explainer(model, names, runtime) as ex:
            out = ex(x)
        maps = {m: [None if t is None else as_stored(t[0].float().numpy()) for t in per_tap]
                for m, per_tap in out.maps.items()}
        logits = out.logits[0].detach().float().numpy()
        cache.save(sha, PhotoRecord(width=32, height=32, logits=logits, probe_logits=np.stack([logits, logits]),
                                    imagenet_top=np.array([1, 2, 3]), imagenet_top_p=np.full(3, 0.1, np.float32),
                                    pet_p=0.5, energy=-1.0, maps=maps))
        rows.append({"set": "s" if i % 2 else "t", "file": path.name, "path": str(path), "sha256": sha,
                     "status": "ok", "correct": "yes" if i % 3 else "no"})
    return pd.DataFrame(rows)


def _quiet(*_):
    pass


def test_the_stage_scores_the_stream_batched_caches_it_and_stops_at_the_budget(tmp_path):
    from generator.config import make_settings
    from generator.model.checkpoint import IDENTITY

    model = _tiny_model()
    model.meta.update({k: "tiny" for k in IDENTITY})
    results = _tiny_photos(tmp_path, model, 6)
    runtime = Runtime("cpu", False, False)
    settings = make_settings({"cache_dir": tmp_path / "cache", "input_size": 32, "faithfulness_steps": 3,
                              "faithfulness_budget_s": 1e5, "device": "cpu"})
    scores, sanity, outcome = leaderboard.leaderboard_stage(model, results, ["t", "s"], settings, runtime, log=_quiet)
    assert outcome.stopped in ("all photos", "resolved") and outcome.photos == 6
    assert set(scores["file"]) == set(results["file"]) and {0, 1} == set(scores["tap"])  # earlier taps too
    assert set(sanity["file"]) == set(results["file"]) and set(sanity["randomised"]) == set(leaderboard.RANDOMISATIONS)
    # scores batched across the photos equal each photo's alone (float32 tolerance, see test_faithfulness)
    stage = leaderboard.Stage(model, settings, runtime)
    one = stage.run([results.iloc[0].to_dict()], {1}, with_sanity=False)  # from the cache: nothing computed
    assert stage.passes == 0
    again, _, _ = leaderboard.leaderboard_stage(model, results, ["t", "s"], settings, runtime, log=_quiet)
    pd.testing.assert_frame_equal(again, scores)
    fresh = make_settings({**{k: getattr(settings, k) for k in ("input_size", "faithfulness_steps")},
                           "cache_dir": tmp_path / "fresh", "device": "cpu"})
    alone = leaderboard.Stage(model, fresh, runtime)
    alone.records = stage.records
    solo = alone.run([results.iloc[0].to_dict()], {1}, with_sanity=False)[0].scores
    for key, s in one[0].scores.items():
        for name, v in s.items():
            assert v == pytest.approx(solo[key][name], abs=1e-5), (key, name)
    # a budget that the probe round alone spends: the stage stops there, and says so
    tight = make_settings({"cache_dir": tmp_path / "tight", "input_size": 32, "faithfulness_steps": 3,
                           "faithfulness_budget_s": 1e-3, "device": "cpu"})
    s2, _, out2 = leaderboard.leaderboard_stage(model, results, ["t", "s"], tight, runtime, log=_quiet)
    assert out2.stopped == "budget" and out2.photos == leaderboard.PROBE and out2.stage_photos == 0
    assert out2.pool == 6  # drawn from all six explained photos, which the page says
    assert set(s2["tap"]) == {1}
    # The rerun, every score now cached: free photos would let it go further each time, so the board would change
    # from one rebuild to the next. It replays the first build's sample instead: the same photos, the same board.
    s3, sanity3, out3 = leaderboard.leaderboard_stage(model, results, ["t", "s"], tight, runtime, log=_quiet)
    assert (out3.photos, out3.stopped, out3.looks, out3.stage_photos) == (out2.photos, "budget", out2.looks, 0)
    pd.testing.assert_frame_equal(s3, s2)
    assert len(list((tmp_path / "tight" / "leaderboard").glob("*/plan-*.json"))) == 1
    # a larger budget is another plan: it starts from the cached scores and takes more photos
    wider = make_settings({**{k: getattr(tight, k) for k in ("cache_dir", "input_size", "faithfulness_steps",
                                                             "device")}, "faithfulness_budget_s": 1e5})
    s4, _, out4 = leaderboard.leaderboard_stage(model, results, ["t", "s"], wider, runtime, log=_quiet)
    assert out4.photos == 6 and len(s4) > len(s2)


def test_the_looks_corrected_for_are_those_the_budget_can_buy():
    """After the probe (2 photos at 1 s each, 28 s left), at most 30 photos can be scored: the Bonferroni factor
    counts the looks of 30 photos (at 10, 20 and 30), not the ~10 looks of the whole pool of 1,384."""
    assert leaderboard.affordable_looks(2, 28.0, 1384) == leaderboard.planned_looks(30) == 4
    assert leaderboard.planned_looks(1384) == 10
    assert leaderboard.affordable_looks(2, None, 1384) == 10  # no cost measured yet: the whole pool
    assert leaderboard.affordable_looks(2, float("inf"), 50) == leaderboard.planned_looks(50)
    assert leaderboard.affordable_looks(2, -5.0, 1384) == leaderboard.planned_looks(2)  # overdrawn


def test_a_budget_of_twenty_photos_decides_what_the_whole_pool_correction_could_not():
    """The same stream, the same 20-photo budget: with the looks the budget can buy (3), a clearly better method
    is separated from the random map; corrected for the pool's 10 looks it would not be, on these photos. (The
    method's score averages 0.3 - 0.18 = 0.12, the random map's 0.)"""
    from generator.evaluate import stats

    stopped, n, comps = _run_rule({"good": -0.18, "random": 0.0, "gaussian": 0.0}, 0.12, 1384, 1.0, 20.0)
    assert n <= 20
    assert comps["good", "random"].verdict == "better"
    full = _stream_scores(1384, {"good": -0.18, "random": 0.0, "gaussian": 0.0}, 0.12, seed=3)
    seen = full[full["file"].isin([f"f{i}" for i in range(n)])]
    strict = {(c.a, c.b): c for c in stats.comparisons(seen, 1, 0, leaderboard.planned_looks(1384))}
    assert strict["good", "random"].verdict == "undecided" and strict["good", "random"].lo < 0


def test_the_sanity_check_in_small_batches_gives_the_rows_of_one_batch(tmp_path, monkeypatch):
    """The sanity check runs SANITY_BATCH photos at a time (its memory grows with the batch): the rows are those
    of one batch of all photos, in the same order, with Spearman's rho equal within float32 batch-shape noise
    (the maps move in the 7th digit; ranks of near-equal cells can swap, hence 1e-3)."""
    from generator.config import make_settings
    from generator.model.checkpoint import IDENTITY

    model = _tiny_model()
    model.meta.update({k: "tiny" for k in IDENTITY})
    results = _tiny_photos(tmp_path, model, 5)
    runtime = Runtime("cpu", False, False)
    rows = [r for r in results.to_dict("records")]
    got = {}
    for size in (2, 64):
        monkeypatch.setattr(leaderboard, "SANITY_BATCH", size)
        settings = make_settings({"cache_dir": tmp_path / f"cache-{size}", "input_size": 32,
                                  "faithfulness_steps": 3, "device": "cpu"})
        stage = leaderboard.Stage(model, settings, runtime)
        stage.records = leaderboard.RecordCache(tmp_path / "cache", model.fingerprint, 2)
        got[size] = [r for ph in stage.run(rows, {1}, with_sanity=True) for r in ph.sanity]
    assert [(r["method"], r["randomised"]) for r in got[2]] == [(r["method"], r["randomised"]) for r in got[64]]
    assert len(got[2]) == 5 * len(leaderboard.RANDOMISATIONS) * len(stage.sanity_names)
    for a, b in zip(got[2], got[64]):
        assert (np.isnan(a["spearman"]) and np.isnan(b["spearman"])) or a["spearman"] == pytest.approx(b["spearman"],
                                                                                                       abs=1e-3)


def test_an_image_budget_takes_the_same_photos_on_a_slower_clock(tmp_path, monkeypatch):
    """The default budget counts images through the network, not seconds: the same photos and the same board on
    a machine whose clock runs 1,000x faster than this one's (as if it were 1,000x slower), from fresh caches."""
    import time as real_time

    from generator.config import make_settings
    from generator.model.checkpoint import IDENTITY

    model = _tiny_model()
    model.meta.update({k: "tiny" for k in IDENTITY})
    results = _tiny_photos(tmp_path, model, 8)
    runtime = Runtime("cpu", False, False)

    def run(cache, budget, clock=None):
        if clock is not None:
            monkeypatch.setattr(leaderboard, "time", clock)
        settings = make_settings({"cache_dir": tmp_path / cache, "input_size": 32, "faithfulness_steps": 3,
                                  "faithfulness_budget_images": budget, "device": "cpu"})
        out = leaderboard.leaderboard_stage(model, results, ["t", "s"], settings, runtime, log=_quiet)
        monkeypatch.setattr(leaderboard, "time", real_time)
        return out

    _, _, whole = run("whole", 10**6)
    assert whole.photos == 8 and whole.images > 0
    budget = whole.images // 3  # buys some of the photos, not all
    scores, _, out = run("a", budget)
    assert out.stopped == "budget" and leaderboard.PROBE <= out.photos < 8
    assert out.budget_images == budget and out.budget_s == 0.0 and out.ran_out == "images"
    assert out.images <= budget + whole.images / 8 * leaderboard.FIRST_LOOK  # at most one round over

    class Slow:
        @staticmethod
        def perf_counter():
            return real_time.perf_counter() * 1000

    scores2, _, out2 = run("b", budget, Slow)
    assert (out2.photos, out2.stage_photos, out2.images, out2.looks) == (out.photos, out.stage_photos, out.images,
                                                                          out.looks)
    pd.testing.assert_frame_equal(scores2, scores)
    # a budget in seconds beside it does depend on the clock: on the slow one it stops at the probe
    monkeypatch.setattr(leaderboard, "time", Slow)
    slow_s = make_settings({"cache_dir": tmp_path / "c", "input_size": 32, "faithfulness_steps": 3,
                            "faithfulness_budget_images": budget, "faithfulness_budget_s": 1.0, "device": "cpu"})
    _, _, out3 = leaderboard.leaderboard_stage(model, results, ["t", "s"], slow_s, runtime, log=_quiet)
    assert out3.photos == leaderboard.PROBE and out3.stopped == "budget" and out3.ran_out == "seconds"
