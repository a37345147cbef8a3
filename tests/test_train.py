"""Head fitting, checkpoint reuse and retraining on a changed recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator import train
from generator.cam import LinearHead


def separable(n: int = 200, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 2.5, -2.5)
    return x, y


def test_logistic_fit_is_accurate_and_deterministic():
    x, y = separable()
    a = train.fit_logistic(x, y, 2, 1e-3)
    b = train.fit_logistic(x, y, 2, 1e-3)
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)
    assert (train.predict(a, x) == y).mean() > 0.95
    # the evidence sits in feature 0
    assert int((a.weight[1] - a.weight[0]).abs().argmax()) == 0


def test_weight_decay_shrinks_the_weights():
    x, y = separable()
    loose = train.fit_logistic(x, y, 2, 1e-4)
    tight = train.fit_logistic(x, y, 2, 1.0)
    assert float(tight.weight.norm()) < float(loose.weight.norm())


def test_cross_validation_keeps_groups_together():
    x, y = separable(100)
    # duplicate every row: with groups, a duplicate never lands in the other fold
    xx, yy = np.concatenate([x, x]), np.concatenate([y, y])
    groups = np.concatenate([np.arange(100), np.arange(100)])
    acc = train.cross_validated_accuracy(xx, yy, 2, 1e-3, folds=5, seed=0, groups=groups)
    assert 0.85 < acc <= 1.0


def test_checkpoint_round_trip(tmp_path):
    heads = [LinearHead(torch.randn(2, 3), torch.randn(2)), LinearHead(torch.randn(2, 5), torch.randn(2))]
    meta = {"backbone": "x", "backbone_weights_sha256": "s", "classes": ["cat", "dog"], "input_size": 224,
            "mean": [0.5] * 3, "std": [0.5] * 3, "data_key": "k", "recipe": {"a": 1}}
    path = tmp_path / "c.pt"
    train.save_checkpoint(path, heads, meta)
    got, got_meta = train.read_checkpoint(path)
    assert got_meta == meta
    for h, g in zip(heads, got, strict=True):
        torch.testing.assert_close(h.weight, g.weight)
        torch.testing.assert_close(h.bias, g.bias)
    assert not list(tmp_path.glob(".*tmp"))


def test_mismatch_names_what_changed():
    base = {"backbone": "b", "backbone_weights_sha256": "s", "classes": ["cat", "dog"], "input_size": 224,
            "mean": [0.5] * 3, "std": [0.5] * 3, "data_key": "k", "recipe": {"weight_decay": 1e-3}}
    assert train.mismatch(base, dict(base)) == []
    assert train.mismatch(base, dict(base, data_key="other")) == ["data_key"]
    assert train.mismatch(base, dict(base, recipe={"weight_decay": 1.0})) == ["recipe"]


@pytest.mark.slow
def test_train_or_load_reuses_then_retrains_on_a_new_recipe(tmp_path):
    """On real photos: the second call loads the checkpoint; a changed weight decay retrains."""
    from conftest import make_small_data, small_settings

    from generator import backbones
    from generator.datasets import CLASSES, scan
    from generator.explain import choose_runtime
    from generator.workers import make_pool

    data = make_small_data(tmp_path, n_train=6, n_test=1)
    settings = small_settings(tmp_path, data, hflip=False)
    table = scan(settings.data_dir, ["train"])
    rows = table[table["label"].isin(CLASSES)]
    backbone = backbones.build("efficientnet_lite0", settings.weights_dir)
    logs: list[str] = []
    with make_pool(1) as pool:
        runtime = choose_runtime(settings)
        model, statuses, probs = train.train_or_load(backbone, rows, settings, pool, runtime, log=logs.append,
                                                     progress=False)
        assert set(statuses.values()) == {"ok"} and len(probs) == 12
        stamp = model.path.stat().st_mtime_ns
        logs.clear()
        again, _, _ = train.train_or_load(backbone, rows, settings, pool, runtime, log=logs.append, progress=False)
        assert again.path.stat().st_mtime_ns == stamp and not any("fitting" in m for m in logs)
        torch.testing.assert_close(again.heads[-1].weight, model.heads[-1].weight)
        from generator.config import make_settings

        changed = make_settings({**{k: getattr(settings, k) for k in ("data_dir", "weights_dir", "cache_dir",
                                                                      "workers", "hflip")},
                                 "weight_decay": 0.5})
        logs.clear()
        third, _, _ = train.train_or_load(backbone, rows, changed, pool, runtime, log=logs.append, progress=False)
        assert any("retraining" in m and "recipe" in m for m in logs)
        assert third.meta["recipe"]["weight_decay"] == 0.5
