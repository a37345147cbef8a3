"""Methods from the features alone (generator/explain/methods/activation.py): CAM against torchcam, Eigen-CAM against
pytorch-grad-cam (up to the SVD's sign) and its own sign rule."""

from __future__ import annotations

import re

import pytest
import torch
from fixtures_models import (
    batch_inputs,
    explain_watching_autograd,
    pgc_maps,
    pgc_scaled,
    tiny_net,
    torchcam_maps,
    torchcam_scaled,
)

from generator.explain.methods import REGISTRY, get, resolve
from generator.explain.methods.activation import first_component_projection

pytestmark = pytest.mark.numerics  # make test runs these again in float32 where bf16 is on

TOLERANCE = 1e-4


def test_cam_same_map_as_torchcam():
    pytest.importorskip("torchcam")
    net = tiny_net(seed=4, head_scale=1.0)
    x = torch.randn(3, 3, 16, 16)
    batch = batch_inputs(net, ("c1", "c2"), x, net.fc)
    ours = get("cam").tap_map(batch.taps[-1], batch)[torch.arange(3), batch.target]  # (B, K, H, W) -> target's
    # torchcam's CAM applies no ReLU: both maps are signed before the min-max scaling.
    theirs = torchcam_maps("CAM", net, "c2", x, batch.target, fc_layer="fc")
    assert float((torchcam_scaled(ours) - theirs).abs().max()) <= TOLERANCE


def eigencam_against_pgc(model, fc, layers, layer: str, x: torch.Tensor) -> list[int]:
    """Checks Eigen-CAM against pytorch-grad-cam photo by photo and returns the sign between the two projections.

    Before the ReLU: ours = sign * theirs, sign = +1 or -1. After ReLU and scaling: equal where sign = +1; where
    sign = -1 the library shows the other half of the same projection, ReLU(-ours).
    """
    svd = pytest.importorskip("pytorch_grad_cam.utils.svd_on_activations")
    batch = batch_inputs(model, layers, x, fc)
    tap = batch.taps[layers.index(layer)]
    signed = first_component_projection(tap.features)  # (B, H, W)
    theirs_signed = torch.from_numpy(svd.get_2d_projection(tap.features.numpy()))
    theirs = pgc_maps("EigenCAM", model, layer, x, batch.target)
    ours = get("eigencam").tap_map(tap, batch)
    size = tuple(x.shape[-2:])
    signs = []
    for i in range(len(x)):
        sign = 1 if float((signed[i] * theirs_signed[i]).sum()) >= 0 else -1
        scale = float(signed[i].abs().max())
        assert float((signed[i] - sign * theirs_signed[i]).abs().max()) <= TOLERANCE * scale
        shown = ours[i : i + 1] if sign == 1 else torch.relu(-signed[i : i + 1])
        assert float(abs(pgc_scaled(shown, size)[0] - theirs[i]).max()) <= TOLERANCE
        signs.append(sign)
    return signs


def test_eigencam_same_projection_as_pytorch_grad_cam_up_to_sign():
    net = tiny_net(seed=5)
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    signs = [s for layer in ("c1", "c2") for s in eigencam_against_pgc(net, net.fc, ("c1", "c2"), layer, x)]
    # Both cases are met (fixed seeds): the maps agree where the signs agree, and only there.
    assert 1 in signs and -1 in signs, signs


def test_eigencam_sign_follows_the_mean_activation():
    features = torch.randn(6, 16, 5, 7, generator=torch.Generator().manual_seed(7))
    projection = first_component_projection(features)
    mean_activation = features.mean(dim=1)
    covariance = (projection * (mean_activation - mean_activation.mean(dim=(1, 2), keepdim=True))).sum(dim=(1, 2))
    assert (covariance > 0).all(), covariance
    torch.testing.assert_close(projection.sum(dim=(1, 2)), torch.zeros(6), atol=1e-4, rtol=0)  # why sum can't decide


@pytest.mark.parametrize("loading_sign", [1.0, -1.0])
def test_eigencam_finds_a_planted_pattern(loading_sign):
    """Features a_k * m(x, y) + b_k: the first component is the pattern m, shown where the activation is high."""
    gen = torch.Generator().manual_seed(8)
    pattern = torch.rand(6, 9, generator=gen)
    loadings = loading_sign * torch.rand(12, generator=gen)
    offsets = torch.randn(12, generator=gen)
    features = loadings[:, None, None] * pattern + offsets[:, None, None]  # (C, H, W)
    batch_of_one = features[None]
    centred = pattern - pattern.mean()
    expected = torch.relu(loading_sign * centred) * loadings.norm()
    torch.testing.assert_close(torch.relu(first_component_projection(batch_of_one))[0], expected,
                               atol=1e-5, rtol=1e-4)


def test_eigencam_declarations_are_what_the_explainer_does():
    """Eigen-CAM's declared needs drive the explainer: a map at every tap, one per photo (not per class), made
    without any backward pass; chosen by 'all' and by name, not by 'default'."""
    method = REGISTRY["eigencam"]
    assert re.fullmatch(r"[A-Z][\w-]+ (et al\.|& [A-Z]\w+) \d{4}", method.citation)
    out, grads_on = explain_watching_autograd(tiny_net(3), method, torch.randn(3, 3, 16, 16))
    assert [tuple(m.shape) for m in out.maps["eigencam"]] == [(3, 8, 8), (3, 4, 4)]
    assert grads_on and not any(grads_on)
    assert "eigencam" in resolve("all") and "eigencam" not in resolve("default") and "eigencam" in resolve("eigencam")


@pytest.mark.slow
def test_eigencam_same_projection_as_pytorch_grad_cam_on_efficientnet_lite0():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2).eval()
    x = torch.randn(2, 3, 96, 96)
    signs = eigencam_against_pgc(model, model.classifier, ("blocks.4", "bn2"), "blocks.4", x)
    assert len(signs) == 2
