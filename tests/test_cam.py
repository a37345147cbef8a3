"""CAM math: identities that hold exactly for a GAP + linear network, and agreement with torchcam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from generator.cam import Explainer, LinearHead, cam_box, class_activation_maps, recording, upsample


class TinyGapNet(nn.Module):
    """conv -> relu -> conv -> relu -> (tap 'c2') -> GAP -> linear; the last tap is what the head pools."""

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, k)

    def forward(self, x):
        return self.fc(self.c2(self.c1(x)).mean(dim=(2, 3)))


def _net_and_heads(seed: int = 0):
    torch.manual_seed(seed)
    net = TinyGapNet().eval()
    probe = LinearHead(weight=torch.randn(2, 6), bias=torch.randn(2))
    head = LinearHead(weight=net.fc.weight.detach().clone(), bias=net.fc.bias.detach().clone())
    return net, [probe, head]


def test_spatial_mean_of_cam_plus_bias_is_the_logit():
    net, heads = _net_and_heads()
    x = torch.randn(5, 3, 16, 20)
    with Explainer(net, ("c1", "c2"), heads, gradcam=False) as ex:
        out = ex(x)
    logits = net(x)
    cam = out.cams[-1]  # (B, K, H, W)
    assert cam.shape == (5, 2, 8, 10)
    torch.testing.assert_close(cam.mean(dim=(2, 3)) + heads[-1].bias, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
    # The probe's logits obey the same identity at the first tap.
    torch.testing.assert_close(out.cams[0].mean(dim=(2, 3)) + heads[0].bias, out.probe_logits[0],
                               rtol=1e-5, atol=1e-5)


def test_gradcam_at_last_tap_is_relu_cam_over_hw():
    net, heads = _net_and_heads(1)
    x = torch.randn(4, 3, 12, 12)
    with Explainer(net, ("c1", "c2"), heads, gradcam=True) as ex:
        out = ex(x)
    pred = out.logits.argmax(1)
    cam_pred = out.cams[-1][torch.arange(4), pred]
    h, w = cam_pred.shape[-2:]
    torch.testing.assert_close(out.gradcams[-1], torch.relu(cam_pred) / (h * w), rtol=1e-4, atol=1e-6)


def test_probe_cam_equals_head_cam_when_the_probe_is_the_head():
    net, heads = _net_and_heads(2)
    x = torch.randn(3, 3, 16, 16)
    with Explainer(net, ("c2", "c2"), [heads[1], heads[1]], gradcam=False) as ex:
        out = ex(x)
    torch.testing.assert_close(out.cams[0], out.cams[1])
    with recording(net, ("c2",)) as store, torch.no_grad():
        net(x)
        feats = store["c2"]
    torch.testing.assert_close(class_activation_maps(feats, heads[1]), out.cams[1])


def test_hooks_are_released_after_the_block():
    net, heads = _net_and_heads()
    with Explainer(net, ("c1", "c2"), heads) as ex:
        ex(torch.randn(1, 3, 8, 8))
    assert all(not m._forward_hooks for m in net.modules())
    assert all(p.requires_grad for p in net.parameters())  # the model is given back as it came
    with pytest.raises(RuntimeError):
        ex(torch.randn(1, 3, 8, 8))


def test_early_tap_map_peaks_where_the_evidence_is():
    """A probe on the first tap that scores 'red' puts the peak of its map in the red corner."""
    net = TinyGapNet().eval()
    with torch.no_grad():
        net.c1[0].weight.zero_()
        net.c1[0].bias.zero_()
        net.c1[0].weight[0, 0, 1, 1] = 1.0  # channel 0 = red intensity
    probe = LinearHead(weight=torch.tensor([[1.0, 0, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0, 0]]), bias=torch.zeros(2))
    head = LinearHead(weight=net.fc.weight.detach(), bias=net.fc.bias.detach())
    x = torch.zeros(1, 3, 32, 32)
    x[0, 0, 24:30, 2:8] = 1.0  # red patch in the bottom-left corner
    with Explainer(net, ("c1", "c2"), [probe, head], gradcam=False) as ex:
        out = ex(x)
    up = upsample(out.cams[0][:, 0], 32)[0]
    y, xx = np.unravel_index(int(up.argmax()), up.shape)
    assert y >= 20 and xx <= 10, (y, xx)


def test_cam_box_finds_the_largest_region_above_threshold():
    cam = np.zeros((10, 20), np.float32)
    cam[2:5, 3:9] = 1.0  # big region
    cam[8, 18] = 0.9  # small separate blob
    box = cam_box(cam, 0.2)
    assert (box.x0, box.y0, box.x1, box.y1) == (3 / 20, 2 / 10, 9 / 20, 5 / 10)
    assert box.area == pytest.approx(18 / 200)
    assert box.mass == pytest.approx(18 / (18 + 0.9))
    flat = cam_box(np.ones((4, 4)), 0.2)
    assert (flat.x0, flat.y1, flat.area) == (0.0, 1.0, 1.0)


def test_same_map_as_torchcam():
    torchcam = pytest.importorskip("torchcam.methods")
    net, heads = _net_and_heads(3)
    x = torch.randn(2, 3, 16, 16)
    with Explainer(net, ("c1", "c2"), heads, gradcam=False) as ex:
        ours = ex(x).cams[-1]
    for cls in (0, 1):
        with torchcam.CAM(net, target_layer="c2", fc_layer="fc", input_shape=(3, 16, 16)) as extractor:
            scores = net(x)
            theirs = extractor(class_idx=cls, scores=scores, normalized=True)[0]
        mine = ours[:, cls]  # torchcam's CAM: no ReLU, then min-max over (H, W)
        lo = mine.amin(dim=(1, 2), keepdim=True)
        mine = (mine - lo) / (mine.amax(dim=(1, 2), keepdim=True) - lo)
        torch.testing.assert_close(theirs, mine, rtol=1e-4, atol=1e-5)
        # and the site's own normalization (imaging.normalize_map) gives the same picture
        from generator.imaging import normalize_map

        np.testing.assert_allclose(normalize_map(ours[0, cls].numpy()), theirs[0].numpy(), atol=1e-5)
