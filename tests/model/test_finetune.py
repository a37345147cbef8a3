"""generator/model/finetune.py: on a tiny network and a few small photos the loss falls, two runs with one seed end
with the same weights on CPU, and a run killed mid-epoch resumes from its last finished epoch and ends where an
unbroken run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from generator.model import finetune
from generator.model.runtime import Runtime

CPU = Runtime(device="cpu", autocast=False, channels_last=False)
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
ROOT = Path(__file__).resolve().parents[2]


def photos(n: int = 24, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Small photos of two kinds: class 1 has a bright blob somewhere, class 0 a dark one, on noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.integers(60, 196, size=(n, size, size, 3)).astype(np.uint8)
    for i in range(n):
        r, c = rng.integers(2, size - 8, 2)
        x[i, r:r + 6, c:c + 6] = 250 if y[i] else 5
    return x, y


def net(seed: int = 0):
    from fixtures_models import TinyGapNet

    torch.manual_seed(seed)
    return TinyGapNet()


def plan(**kw) -> finetune.Plan:
    values = dict(epochs=3, lr_head=3e-2, lr_backbone=1e-2, batch=8, holdout=0.25, patience=3, seed=0)
    values.update(kw)
    return finetune.Plan(**values)


def run(tmp_path: Path, p: finetune.Plan, key: str = "k", log=lambda _m: None) -> tuple:
    model = net()
    x, y = photos()
    out = finetune.finetune(model, "c2", 8, x, y, p, CPU, MEAN, STD, tmp_path / "state.pt", key, log=log,
                            progress=False)
    return model, out


def test_the_loss_falls_and_the_curve_is_recorded(tmp_path):
    _, out = run(tmp_path, plan(epochs=6, patience=6))
    losses = [e["train_loss"] for e in out.curve]
    assert len(out.curve) == 6 and out.n_train == 18 and out.n_heldout == 6
    assert losses[-1] < 0.7 * losses[0], losses
    assert {"train_accuracy", "heldout_loss", "heldout_accuracy", "seconds"} <= set(out.curve[0])
    assert out.curve[out.best_epoch - 1]["heldout_loss"] == min(e["heldout_loss"] for e in out.curve)


def test_two_runs_with_one_seed_give_the_same_weights_and_another_seed_does_not(tmp_path):
    a, _ = run(tmp_path / "a", plan())
    b, _ = run(tmp_path / "b", plan())
    c, _ = run(tmp_path / "c", plan(seed=1))
    # exact equality: one process, one thread count, same operations in the same order on CPU
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.c1[0].weight, c.c1[0].weight)


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    """A head rate this high makes the held-out loss jump about: training stops after `patience` worse epochs
    and the weights are those of the best epoch, checked by scoring them again."""
    p = plan(epochs=8, patience=1, lr_head=3.0, lr_backbone=0.3)
    model, out = run(tmp_path, p)
    x, y = photos()
    held = finetune.holdout_split(y, p.holdout, p.seed)
    pooled = finetune.PooledHead(model, "c2", 8, 2, finetune.LinearHead(out.head.weight, out.head.bias)).eval()
    xs = torch.from_numpy(x[held]).permute(0, 3, 1, 2)
    loss, _ = finetune.evaluate(pooled, xs, torch.as_tensor(y[held]), 8, MEAN, STD, CPU)
    best = out.curve[out.best_epoch - 1]
    assert out.stopped_early == (len(out.curve) < 8)
    # float32 sums of 6 photos in another batch order: a few ulps
    assert loss == pytest.approx(best["heldout_loss"], rel=1e-5)


def test_holdout_split_is_seeded_per_class_and_never_takes_a_whole_class():
    y = np.array([0] * 10 + [1] * 3 + [2])
    a, b = finetune.holdout_split(y, 0.2, 5), finetune.holdout_split(y, 0.2, 5)
    assert np.array_equal(a, b) and not np.array_equal(a, finetune.holdout_split(y, 0.2, 6))
    assert a[:10].sum() == 2 and a[10:13].sum() == 1 and a[13].sum() == 0


def test_warm_up_then_cosine():
    f = [finetune.lr_factor(s, 100, 10) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.01


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path[:0] = [{tests!r}, {tests_model!r}]
    from test_finetune import CPU, MEAN, STD, net, photos, plan
    from generator.model import finetune
    x, y = photos()
    finetune.finetune(net(), "c2", 8, x, y, plan(), CPU, MEAN, STD, Path({state!r}), "k", progress=False)
    print("finished", flush=True)
""")


def test_a_run_killed_mid_epoch_resumes_from_its_last_finished_epoch(tmp_path):
    """The child is killed (SIGKILL) while it trains epoch 2; the next run starts after epoch 1 and ends with the
    weights of an unbroken run."""
    state = tmp_path / "killed" / "state.pt"
    code = CHILD.format(tests=str(ROOT / "tests"), tests_model=str(ROOT / "tests" / "model"), state=str(state))
    env = dict(os.environ, CAM_PAUSE_AT="finetuning", OMP_NUM_THREADS=str(torch.get_num_threads()))
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stderr.readline()
        assert "paused at finetuning" in line, line + child.stderr.read()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    saved = torch.load(state, weights_only=True)
    assert saved["epoch"] == 1 and not saved["done"]

    logs: list[str] = []
    model = net()
    x, y = photos()
    out = finetune.finetune(model, "c2", 8, x, y, plan(), CPU, MEAN, STD, state, "k", log=logs.append,
                            progress=False)
    assert out.resumed_from == 1 and len(out.curve) == 3
    assert any("resumes after epoch 1" in m for m in logs)
    whole, _ = run(tmp_path / "whole", plan())
    # the child ran with the same thread count; the same seeded draws per epoch make the two runs one
    for (k, va), vb in zip(whole.state_dict().items(), model.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=k)


def test_another_key_starts_afresh(tmp_path):
    run(tmp_path, plan(epochs=1))
    logs: list[str] = []
    _, out = run(tmp_path, plan(epochs=1), key="other", log=logs.append)
    assert out.resumed_from == 0 and not any("resumes" in m for m in logs)


def test_the_two_class_head_stays_antisymmetric(tmp_path):
    """Started from zero, the rows of the two classes get opposite gradients and AdamW moves them oppositely: the
    map of dog stays minus the map of cat, as for the probe."""
    from generator.model.checkpoint import antisymmetry

    _, out = run(tmp_path, plan(epochs=2))
    # relative deviation: float32 rounding of p_dog = 1 - p_cat over a few dozen steps
    assert antisymmetry([out.head])[0] < 1e-4
