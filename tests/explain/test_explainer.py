"""The explainer (generator/explain/explainer.py): identities that hold exactly for a GAP + linear network, one
forward and at most one backward per batch, hooks that never outlive the block, and agreement with torchcam's
CAM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures_models import TinyGapNet

from generator.explain import methods as registry
from generator.explain.explainer import Explainer
from generator.model.heads import LinearHead
from generator.model.taps import recording

pytestmark = pytest.mark.numerics  # make test runs these again in float32 where bf16 is on



def _net_and_heads(seed: int = 0):
    torch.manual_seed(seed)
    net = TinyGapNet(c1_stride=1).eval()
    probe = LinearHead(weight=torch.randn(2, 6), bias=torch.randn(2))
    head = LinearHead(weight=net.fc.weight.detach().clone(), bias=net.fc.bias.detach().clone())
    return net, [probe, head]


def explain(net, heads, x, names=("cam",), taps=("c1", "c2"), target=None):
    with Explainer(net, taps, heads, [registry.get(n) for n in names]) as ex:
        return ex(x, target=target)


def test_spatial_mean_of_cam_plus_bias_is_the_logit():
    net, heads = _net_and_heads()
    x = torch.randn(5, 3, 16, 20)
    out = explain(net, heads, x)
    logits = net(x)
    cam = out.maps["cam"][-1]  # (B, K, H, W)
    assert cam.shape == (5, 2, 8, 10)
    torch.testing.assert_close(cam.mean(dim=(2, 3)) + heads[-1].bias, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
    # The probe's logits obey the same identity at the first tap.
    torch.testing.assert_close(out.maps["cam"][0].mean(dim=(2, 3)) + heads[0].bias, out.probe_logits[0],
                               rtol=1e-5, atol=1e-5)


def test_signed_evidence_map_mean_plus_bias_difference_is_the_margin():
    """mean(CAM_pred - CAM_other) + (b_pred - b_other) = logit_pred - logit_other: what the signed view shows."""
    net, heads = _net_and_heads(4)
    x = torch.randn(6, 3, 12, 12)
    out = explain(net, heads, x)
    pred = out.logits.argmax(1)
    other = 1 - pred
    idx = torch.arange(len(x))
    cam = out.maps["cam"][-1]
    signed = cam[idx, pred] - cam[idx, other]
    bias = heads[-1].bias
    margin = out.logits[idx, pred] - out.logits[idx, other]
    torch.testing.assert_close(signed.mean(dim=(1, 2)) + bias[pred] - bias[other], margin, rtol=1e-5, atol=1e-5)


def test_gradcam_at_last_tap_is_relu_cam_over_hw():
    net, heads = _net_and_heads(1)
    x = torch.randn(4, 3, 12, 12)
    out = explain(net, heads, x, names=("cam", "gradcam"))
    pred = out.logits.argmax(1)
    cam_pred = out.maps["cam"][-1][torch.arange(4), pred]
    h, w = cam_pred.shape[-2:]
    torch.testing.assert_close(out.maps["gradcam"][-1], torch.relu(cam_pred) / (h * w), rtol=1e-4, atol=1e-6)


def test_target_chooses_the_class_explained():
    net, heads = _net_and_heads(5)
    x = torch.randn(3, 3, 12, 12)
    pred = explain(net, heads, x).logits.argmax(1)
    other = 1 - pred
    out = explain(net, heads, x, names=("cam", "gradcam"), target=other)
    cam_other = out.maps["cam"][-1][torch.arange(3), other]
    h, w = cam_other.shape[-2:]
    torch.testing.assert_close(out.maps["gradcam"][-1], torch.relu(cam_other) / (h * w), rtol=1e-4, atol=1e-6)


def test_backward_only_when_a_method_needs_it(monkeypatch):
    net, heads = _net_and_heads()
    calls = []
    real = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(1) or real(*a, **k))
    explain(net, heads, torch.randn(2, 3, 8, 8), names=("cam", "eigencam"))
    assert calls == []
    explain(net, heads, torch.randn(2, 3, 8, 8), names=("cam", "gradcam", "layercam", "hirescam"))
    assert calls == [1]  # the whole gradient family shares one backward


def test_class_scores_are_the_heads_logits():
    net, heads = _net_and_heads(2)
    x = torch.randn(7, 3, 16, 16)
    with Explainer(net, ("c1", "c2"), heads, [registry.get("cam")], score_batch=3) as ex:
        torch.testing.assert_close(ex.class_scores(x), net(x), rtol=1e-5, atol=1e-5)


def test_probe_cam_equals_head_cam_when_the_probe_is_the_head():
    net, heads = _net_and_heads(2)
    x = torch.randn(3, 3, 16, 16)
    out = explain(net, [heads[1], heads[1]], x, taps=("c2", "c2"))
    torch.testing.assert_close(out.maps["cam"][0], out.maps["cam"][1])


def test_hooks_are_released_after_the_block():
    net, heads = _net_and_heads()
    with Explainer(net, ("c1", "c2"), heads, [registry.get("cam"), registry.get("gradcam")]) as ex:
        ex(torch.randn(1, 3, 8, 8))
    assert all(not m._forward_hooks for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())  # the model is given back as it came
    with pytest.raises(RuntimeError):
        ex(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="no module named"):
        with recording(net, ("nope",)):
            pass


def test_early_tap_map_peaks_where_the_evidence_is():
    """A probe on the first tap that scores 'red' puts the peak of its map in the red corner."""
    net = TinyGapNet(c1_stride=1).eval()
    with torch.no_grad():
        net.c1[0].weight.zero_()
        net.c1[0].bias.zero_()
        net.c1[0].weight[0, 0, 1, 1] = 1.0  # channel 0 = red intensity
    probe = LinearHead(weight=torch.tensor([[1.0, 0, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0, 0]]), bias=torch.zeros(2))
    head = LinearHead(weight=net.fc.weight.detach(), bias=net.fc.bias.detach())
    x = torch.zeros(1, 3, 32, 32)
    x[0, 0, 24:30, 2:8] = 1.0  # red patch in the bottom-left corner
    out = explain(net, [probe, head], x)
    up = F.interpolate(out.maps["cam"][0][:, :1], size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    y, xx = np.unravel_index(int(up.argmax()), up.shape)
    assert y >= 20 and xx <= 10, (y, xx)


def test_same_map_as_torchcam():
    torchcam = pytest.importorskip("torchcam.methods")
    net, heads = _net_and_heads(3)
    x = torch.randn(2, 3, 16, 16)
    ours = explain(net, heads, x).maps["cam"][-1]
    for cls in (0, 1):
        with torchcam.CAM(net, target_layer="c2", fc_layer="fc", input_shape=(3, 16, 16)) as extractor:
            scores = net(x)
            theirs = extractor(class_idx=cls, scores=scores, normalized=True)[0]
        mine = ours[:, cls]  # torchcam's CAM: no ReLU, then min-max over (H, W)
        lo = mine.amin(dim=(1, 2), keepdim=True)
        mine = (mine - lo) / (mine.amax(dim=(1, 2), keepdim=True) - lo)
        torch.testing.assert_close(theirs, mine, rtol=1e-4, atol=1e-5)
        # and the site's own normalisation (overlay.normalize) gives the same picture
        from generator.explain.overlay import normalize

        np.testing.assert_allclose(normalize(ours[0, cls].numpy()), theirs[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("k", [3, 37])
def test_k_class_cam_and_signed_map_against_the_runner_up(k):
    """K classes: one CAM per class whose mean plus bias is its logit, and the signed map of the predicted class
    against the runner-up (the second highest logit) sums to their margin; for K = 2 the runner-up is the other
    class, so this is the two-class signed map. Tolerance: float32 sums of 64 to 80 terms of order 1."""
    torch.manual_seed(k)
    net = TinyGapNet(k=k, c1_stride=1).eval()
    heads = [LinearHead(weight=torch.randn(k, 6), bias=torch.randn(k)),
             LinearHead(weight=net.fc.weight.detach().clone(), bias=net.fc.bias.detach().clone())]
    x = torch.randn(4, 3, 16, 20)
    out = explain(net, heads, x)
    cam = out.maps["cam"][-1]
    assert cam.shape == (4, k, 8, 10)
    torch.testing.assert_close(cam.mean(dim=(2, 3)) + heads[-1].bias, net(x), rtol=1e-5, atol=1e-5)
    top2 = out.logits.topk(2, dim=1).indices
    pred, runner = top2[:, 0], top2[:, 1]
    idx = torch.arange(len(x))
    signed = cam[idx, pred] - cam[idx, runner]
    bias = heads[-1].bias
    torch.testing.assert_close(signed.mean(dim=(1, 2)) + bias[pred] - bias[runner],
                               out.logits[idx, pred] - out.logits[idx, runner], rtol=1e-5, atol=1e-5)


def test_a_network_without_a_linear_head_is_explained_through_its_own_head():
    """No head at the last tap (a user's model whose head is an MLP): the logits are the network's own output, the
    gradient methods backpropagate through that head, CAM is made at the earlier tap (its probe) and not at the
    last one, and extra forward passes score with the network's own output too."""
    from fixtures_models import TinyMlpHeadNet

    torch.manual_seed(0)
    net = TinyMlpHeadNet(k=3).eval()
    probe = LinearHead(weight=torch.randn(3, 6), bias=torch.randn(3))
    x = torch.randn(4, 3, 16, 16)
    with Explainer(net, ("c1", "c2"), [probe, None], [registry.get(n) for n in ("cam", "gradcam")]) as ex:
        out = ex(x)
        scores = ex.class_scores(x)
    with torch.no_grad():
        want = net(x)
    # the same network on the same batch: float32 sums in the same order, equal up to rounding
    torch.testing.assert_close(out.logits, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.probe_logits[-1], want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(scores, want, rtol=1e-6, atol=1e-6)
    assert out.maps["cam"][-1] is None and out.maps["cam"][0].shape == (4, 3, 8, 8)
    # Grad-CAM by hand: the gradient of the predicted logit through the MLP into c2's features
    with recording(net, ("c1", "c2")) as store, torch.enable_grad():
        logits = net(x.requires_grad_(True))
        f = store["c2"]
        g, = torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), f)
    by_hand = F.relu((g.mean(dim=(2, 3), keepdim=True) * f).sum(dim=1)).detach()
    assert float(by_hand.abs().max()) > 0
    torch.testing.assert_close(out.maps["gradcam"][-1], by_hand, rtol=1e-5, atol=1e-7)
    with recording(net, ("c1",)) as store, torch.no_grad():
        net(x)
        probe_cam = torch.einsum("kc,bchw->bkhw", probe.weight, store["c1"])
    torch.testing.assert_close(out.maps["cam"][0], probe_cam, rtol=1e-5, atol=1e-6)


def test_only_the_last_tap_may_lack_a_head():
    net, heads = _net_and_heads()
    with pytest.raises(ValueError, match="only the last tap"):
        Explainer(net, ("c1", "c2"), [None, heads[1]], [registry.get("cam")])
