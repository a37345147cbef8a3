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


@pytest.mark.slow
def test_the_posts_experiment_fine_tunes_resnet18_from_a_local_state_dict(tmp_path, monkeypatch):
    """--backbone resnet18 --recipe finetune on real photos, with a ResNet18 state dict saved here standing in for
    the download: the checkpoint keeps the tuned weights, the recipe and its curve; the next call reuses it (no
    training), puts the same weights back into a freshly built network, and the maps' fingerprint differs from the
    probe's."""
    import torchvision
    from conftest import make_small_data, small_settings

    from generator.data.scan import DEFAULT_CLASSES as CLASSES
    from generator.data.scan import as_table, scan_rows
    from generator.data.workers import make_pool
    from generator.model import backbones
    from generator.model.checkpoint import TUNED, read_checkpoint, state_sha256
    from generator.model.runtime import choose_runtime

    monkeypatch.setattr(backbones, "RESNET18_FILE", "resnet18-local.pth")  # no hash in the name to check
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    data = make_small_data(tmp_path, n_train=6, n_test=1)
    settings = small_settings(tmp_path, data, backbone="resnet18", recipe="finetune", input_size=64,
                              finetune_epochs=2, finetune_batch=4, finetune_holdout=0.2, finetune_patience=2)
    (tmp_path / "weights").mkdir()
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "weights" / "resnet18-local.pth")
    table = as_table(scan_rows(settings.data_dir, ["train"]))
    rows = table[table["label"].isin(CLASSES)]
    logs: list[str] = []
    with make_pool(1) as pool:
        runtime = choose_runtime(settings)
        pretrained = backbones.build(settings.backbone, settings.weights_dir)
        before = {k: v.clone() for k, v in pretrained.model.state_dict().items()}
        trained = train.train_or_load(pretrained, rows, settings, pool, runtime, CLASSES,
            log=logs.append, progress=False)
        model = trained.model
        assert model.path.name == "catdog-resnet18-finetune.pt"
        assert any(m.startswith("epoch 1/2: training loss") for m in logs)
        meta = model.meta
        assert meta["recipe"]["name"] == "finetune" and len(meta["training_curve"]) == meta["training"]["epochs_run"]
        assert meta[TUNED] == state_sha256(model.backbone.model.state_dict())
        tuned_conv = model.backbone.model.state_dict()["layer1.0.conv1.weight"]
        assert not torch.equal(before["layer1.0.conv1.weight"], tuned_conv)
        assert len(model.heads) == 4 and len(trained.probs) == 12
        assert not (tmp_path / "cache" / "finetune").exists() or not any((tmp_path / "cache" / "finetune").iterdir())

        logs.clear()
        fresh = backbones.build(settings.backbone, settings.weights_dir)
        again = train.train_or_load(fresh, rows, settings, pool, runtime, CLASSES,
            log=logs.append, progress=False).model
        assert not any("fine-tuning" in m or "epoch" in m for m in logs), logs
        for k, v in model.backbone.model.state_dict().items():
            assert torch.equal(v, fresh.model.state_dict()[k]), k
        torch.testing.assert_close(again.heads[-1].weight, model.heads[-1].weight, rtol=0, atol=0)
        assert again.fingerprint == model.fingerprint
        heads, stored = read_checkpoint(model.path)
        assert stored[TUNED] == meta[TUNED]

        from generator.config import make_settings

        probe = make_settings({**{k: getattr(settings, k) for k in ("data_dir", "weights_dir", "cache_dir",
                                                                    "workers", "backbone", "input_size")}})
        plain = train.train_or_load(backbones.build("resnet18", settings.weights_dir), rows, probe, pool, runtime,
                                    CLASSES, log=lambda _m: None, progress=False).model
        assert plain.path.name == "catdog-resnet18.pt" and plain.fingerprint != model.fingerprint


@pytest.mark.slow
def test_lp_ft_starts_fine_tuning_from_the_probes_head(tmp_path):
    """Recipe lp-ft: the head is the probe's logistic regression before the first step. With rates too small to
    move anything, the tuned head is the probe's head (up to float32 rounding of a few AdamW steps of 1e-12)."""
    from conftest import make_small_data, small_settings

    from generator.config import make_settings
    from generator.data.scan import DEFAULT_CLASSES as CLASSES
    from generator.data.scan import as_table, scan_rows
    from generator.data.workers import make_pool
    from generator.model import backbones
    from generator.model.runtime import choose_runtime

    data = make_small_data(tmp_path, n_train=4, n_test=1)
    common = dict(input_size=64, hflip=False)
    settings = small_settings(tmp_path, data, recipe="lp-ft", finetune_epochs=1, finetune_batch=4,
                              finetune_lr=1e-12, finetune_backbone_lr=1e-12, **common)
    table = as_table(scan_rows(settings.data_dir, ["train"]))
    rows = table[table["label"].isin(CLASSES)]
    with make_pool(1) as pool:
        runtime = choose_runtime(settings)
        tuned = train.train_or_load(backbones.build("efficientnet_lite0", settings.weights_dir), rows, settings,
                                    pool, runtime, CLASSES, log=lambda _m: None, progress=False).model
        probe_settings = make_settings({k: getattr(settings, k) for k in ("data_dir", "weights_dir", "cache_dir",
                                                                          "workers", "input_size", "hflip")})
        probe = train.train_or_load(backbones.build("efficientnet_lite0", settings.weights_dir), rows, probe_settings,
                                    pool, runtime, CLASSES, log=lambda _m: None, progress=False).model
    assert tuned.path.name.endswith("-lp-ft.pt") and tuned.meta["recipe"]["name"] == "lp-ft"
    # the probe's head came from the same frozen features; 1e-12 steps move it by far less than this
    torch.testing.assert_close(tuned.heads[-1].weight, probe.heads[-1].weight, rtol=1e-4, atol=1e-5)


def test_own_model_without_a_linear_head_fits_the_probes_only_and_reuses_them(tmp_path):
    """On real photos, a user's model whose head is an MLP: the earlier tap gets its probe, the last tap no head;
    the training probabilities are the network's own; the checkpoint (probes only) is reused by the next call."""
    from conftest import make_small_data, small_settings
    from fixtures_models import TinyMlpHeadNet, build_numerics

    from generator.data.imaging import decode_bytes, read_image_file
    from generator.data.scan import DEFAULT_CLASSES, as_table, scan_rows
    from generator.data.workers import make_pool
    from generator.model.backbones import Backbone
    from generator.model.runtime import choose_runtime

    data = make_small_data(tmp_path, n_train=6, n_test=1)
    torch.manual_seed(0)
    net = TinyMlpHeadNet(k=2).eval()
    torch.save(net.state_dict(), tmp_path / "mine.pth")
    settings = small_settings(tmp_path, data, hflip=False, input_size=32, model="torchvision:mine",
                              model_weights=str(tmp_path / "mine.pth"))
    table = as_table(scan_rows(settings.data_dir, ["train"]))
    rows = table[table["label"].isin(DEFAULT_CLASSES)]
    backbone = Backbone(name="own_tiny", model=net, taps=("c1", "c2"), tap_names=("c1", "c2"), strides=(2, 4),
                        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), weights_file="mine.pth",
                        weights_sha256="0" * 64, last_stage=("c2",), imagenet=False, head=None,
                        no_cam_reason="its linear layer is not fed by the global average pool of a feature map",
                        head_modules=("head.0", "head.2"))
    logs: list[str] = []
    with make_pool(1) as pool:
        runtime = choose_runtime(settings)
        first = train.train_or_load(backbone, rows, settings, pool, runtime, DEFAULT_CLASSES, log=logs.append,
                                    progress=False)
        model = first.model
        assert model.heads[-1] is None and model.heads[0].weight.shape == (2, 6)
        assert model.meta["recipe"]["no_cam"] == backbone.no_cam_reason
        path = next(iter(first.probs))
        arr = decode_bytes(read_image_file(path, settings.max_pixels), 32, 32, settings.max_pixels).model_input
        numerics, tol = build_numerics(settings)  # float32, or bf16 autocast where the build runs it
        with torch.no_grad(), numerics:
            own = net(backbone.to_input(arr[None])).float().softmax(1)[0].numpy()
        np.testing.assert_allclose(first.probs[path], own, atol=tol / 10)  # float32: 1e-5, ten times the ~1e-7 seen
        stamp = model.path.stat().st_mtime_ns
        logs.clear()
        again = train.train_or_load(backbone, rows, settings, pool, runtime, DEFAULT_CLASSES, log=logs.append,
                                    progress=False).model
    assert again.path.stat().st_mtime_ns == stamp and not any("fitting" in m for m in logs)
    assert again.heads[-1] is None and torch.equal(again.heads[0].weight, model.heads[0].weight)
    assert again.fingerprint == model.fingerprint
