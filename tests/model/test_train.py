"""generator/model/train.py: head fitting, cross-validation, and checkpoint reuse or retraining on a changed recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.model import train


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
    """Labels are pure noise and every photo appears twice (as with mirrored copies). Split by photo, the copies
    stay in one fold and the accuracy is chance; split by row, the model finds each test row's twin in the
    training folds and 'learns' the noise."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 60)).astype(np.float32)
    y = rng.integers(0, 2, 80)
    xx, yy = np.concatenate([x, x]), np.concatenate([y, y])
    groups = np.concatenate([np.arange(80), np.arange(80)])
    grouped = train.cross_validated_accuracy(xx, yy, 2, 1e-4, folds=5, seed=0, groups=groups)
    leaky = train.cross_validated_accuracy(xx, yy, 2, 1e-4, folds=5, seed=0)
    assert grouped < 0.65 < 0.8 < leaky


@pytest.mark.slow
def test_train_or_load_reuses_then_retrains_on_a_new_recipe(tmp_path):
    """On real photos: the second call loads the checkpoint; a changed weight decay retrains."""
    from conftest import make_small_data, small_settings

    from generator.data.scan import DEFAULT_CLASSES, as_table, scan_rows
    from generator.data.workers import make_pool
    from generator.model import backbones
    from generator.model.runtime import choose_runtime

    data = make_small_data(tmp_path, n_train=6, n_test=1)
    settings = small_settings(tmp_path, data, hflip=False)
    table = as_table(scan_rows(settings.data_dir, ["train"]))
    rows = table[table["label"].isin(DEFAULT_CLASSES)]
    backbone = backbones.build("efficientnet_lite0", settings.weights_dir)
    logs: list[str] = []
    with make_pool(1) as pool:
        runtime = choose_runtime(settings)
        trained = train.train_or_load(backbone, rows, settings, pool, runtime, DEFAULT_CLASSES, log=logs.append,
                                      progress=False)
        model = trained.model
        assert set(trained.statuses.values()) == {"ok"} and len(trained.probs) == 12 == len(trained.pet_p)
        stamp = model.path.stat().st_mtime_ns
        logs.clear()
        again = train.train_or_load(backbone, rows, settings, pool, runtime, DEFAULT_CLASSES, log=logs.append,
                                    progress=False).model
        assert again.path.stat().st_mtime_ns == stamp and not any("fitting" in m for m in logs)
        torch.testing.assert_close(again.heads[-1].weight, model.heads[-1].weight)
        from generator.config import make_settings

        changed = make_settings({**{k: getattr(settings, k) for k in ("data_dir", "weights_dir", "cache_dir",
                                                                      "workers", "hflip")},
                                 "weight_decay": 0.5})
        logs.clear()
        third = train.train_or_load(backbone, rows, changed, pool, runtime, DEFAULT_CLASSES, log=logs.append,
                                    progress=False).model
        assert any("retraining" in m and "recipe" in m for m in logs)
        assert third.meta["recipe"]["weight_decay"] == 0.5


def clusters(k: int, per: int = 12, d: int = 16, seed: int = 0):
    """k well-separated Gaussian clusters in d dimensions, `per` points each, labels 0..k-1 in order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(k, d))
    y = np.repeat(np.arange(k), per)
    return (centres[y] + rng.normal(size=(len(y), d))).astype(np.float32), y


@pytest.mark.parametrize("k", [2, 3, 37])
def test_fit_heads_fits_k_classes_at_every_tap(k):
    from generator.config import make_settings
    from generator.model.features import TrainingFeatures

    x, y = clusters(k)
    tf = TrainingFeatures(feats=[x[:, :8].copy(), x], statuses=["ok"] * len(y), mirror=None,
                          pet_p=np.ones(len(y)), energy=np.zeros(len(y)))
    classes = tuple(f"c{i}" for i in range(k))
    heads, scores = train.fit_heads(tf, y, make_settings({}), classes, log=lambda _m: None)
    assert [tuple(h.weight.shape) for h in heads] == [(k, 8), (k, 16)] and tuple(heads[-1].bias.shape) == (k,)
    assert scores["tap1_train_accuracy"] == 1.0 and scores["tap1_cv5_accuracy"] > 0.9


def test_a_class_without_readable_photos_is_one_sentence():
    from generator.config import make_settings
    from generator.errors import UserError
    from generator.model.features import TrainingFeatures

    x, y = clusters(3, per=4)
    statuses = ["ok" if label != 2 else "skipped: cannot be decoded" for label in y]
    ok = np.array([s == "ok" for s in statuses])
    tf = TrainingFeatures(feats=[x[ok]], statuses=statuses, mirror=None, pet_p=np.ones(int(ok.sum())),
                          energy=np.zeros(int(ok.sum())))
    with pytest.raises(UserError, match="class 'tabby' has none") as exc:
        train.fit_heads(tf, y, make_settings({}), ("ginger", "black", "tabby"), log=lambda _m: None)
    assert "\n" not in str(exc.value)


def test_cross_validated_probabilities_come_from_the_head_without_the_photo():
    x, y = clusters(3, per=10)
    acc, probs = train.cross_validated(x, y, 3, 1e-2, folds=5, seed=0)
    assert acc == train.cross_validated_accuracy(x, y, 3, 1e-2, folds=5, seed=0)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-9)
    assert ((probs.argmax(1) == y).mean()) == pytest.approx(acc)
    full = train.fit_logistic(x, y, 3, 1e-2)  # fitted on every photo, it is surer of them than held out
    inside = torch.softmax(torch.as_tensor(x) @ full.weight.T + full.bias, 1).numpy().max(1)
    assert np.median(inside) >= np.median(probs.max(1))
