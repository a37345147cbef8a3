"""generator/evaluate/leaderboard.py: which maps are scored, scored once when equal, cached by content; and the
parameter-randomisation sanity check on a tiny model whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from fixtures_models import TinyGapNet, make_record

from generator.evaluate import leaderboard
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
    assert sum(calls) == 3 + distinct * per_map
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


def test_sample_is_seeded_per_set():
    df = pd.DataFrame({"set": ["a"] * 10 + ["b"] * 3, "status": "ok", "file": [f"f{i}" for i in range(13)]})
    one = leaderboard.sample_rows(df, ["a", "b"], 2, seed=0)
    assert list(one["set"]) == ["a", "a", "b", "b"]
    assert list(leaderboard.sample_rows(df, ["a", "b"], 2, seed=0)["file"]) == list(one["file"])
    assert len(leaderboard.sample_rows(df, ["a", "b"], 0, seed=0)) == 13  # 0 = every photo
