"""The gradient family (generator/explain/methods/gradient.py): agreement with torchcam and pytorch-grad-cam,
and what each method reduces to at the last tap of a GAP + linear network."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from fixtures_models import batch_inputs, pgc_maps, pgc_scaled, tiny_net, torchcam_maps, torchcam_scaled

from generator.explain.methods import REGISTRY, Need, get
from generator.explain.methods.activation import class_activation_maps

pytestmark = pytest.mark.numerics  # make test runs these again in float32 where bf16 is on

FAMILY = ("gradcam", "gradcampp", "xgradcam", "layercam", "hirescam")
# (our method, the library, its class there); Grad-CAM++ only against pytorch-grad-cam, the one that follows the
# paper's eq. 19 (see the GradCAMPlusPlus docstring).
PEERS = [
    ("gradcam", "torchcam", "GradCAM"),
    ("gradcam", "pytorch_grad_cam", "GradCAM"),
    ("gradcampp", "pytorch_grad_cam", "GradCAMPlusPlus"),
    ("xgradcam", "torchcam", "XGradCAM"),
    ("xgradcam", "pytorch_grad_cam", "XGradCAM"),
    ("layercam", "torchcam", "LayerCAM"),
    ("layercam", "pytorch_grad_cam", "LayerCAM"),
    ("hirescam", "pytorch_grad_cam", "HiResCAM"),
]
TOLERANCE = 1e-4


def max_difference_from_peer(name: str, library: str, peer: str, model, layers, layer: str, x, fc) -> float:
    """Our map at `layer` against the library's, both at the library's own output (scaling, size)."""
    batch = batch_inputs(model, layers, x, fc)
    ours = get(name).tap_map(batch.taps[layers.index(layer)], batch)
    if library == "torchcam":
        theirs = torchcam_maps(peer, model, layer, x, batch.target)
        return float((torchcam_scaled(ours) - theirs).abs().max())
    pytest.importorskip("pytorch_grad_cam")
    theirs = pgc_maps(peer, model, layer, x, batch.target)
    return float(abs(pgc_scaled(ours, tuple(x.shape[-2:])) - theirs).max())


@pytest.mark.parametrize("layer", ["c1", "c2"])
@pytest.mark.parametrize(("name", "library", "peer"), PEERS)
def test_same_map_as_the_library(name, library, peer, layer):
    pytest.importorskip(library)
    net = tiny_net(seed=1)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    assert max_difference_from_peer(name, library, peer, net, ("c1", "c2"), layer, x, net.fc) <= TOLERANCE


def test_gap_linear_last_tap_identities():
    """g_k = w_k / (H*W) everywhere: Grad-CAM = XGrad-CAM = HiResCAM = ReLU(CAM) / (H*W), LayerCAM and Grad-CAM++
    are CAMs with re-weighted channels."""
    net = tiny_net(seed=3, head_scale=1.0, constant_channels=True)
    batch = batch_inputs(net, ("c1", "c2"), torch.randn(5, 3, 16, 16), net.fc)
    tap = batch.taps[-1]
    f = tap.features
    hw = f.shape[2] * f.shape[3]
    w = tap.head.weight[batch.target]  # (B, C): the target class's weights
    cam = class_activation_maps(f, tap.head.weight)[torch.arange(len(f)), batch.target]
    expected = {
        "gradcam": F.relu(cam) / hw,
        "xgradcam": F.relu(cam) / hw,
        "hirescam": F.relu(cam) / hw,
        "layercam": F.relu(torch.einsum("bc,bchw->bhw", F.relu(w), f)) / hw,
        "gradcampp": F.relu(torch.einsum("bc,bchw->bhw", (w > 0) * w / (2 + w * f.mean(dim=(2, 3))), f)),
    }
    assert F.relu(cam).amax() > 0  # a map that is all 0 would make the identities empty
    for name, want in expected.items():
        torch.testing.assert_close(get(name).tap_map(tap, batch), want, rtol=1e-4, atol=1e-6, msg=name)


def test_a_tap_without_gradients_is_refused():
    net = tiny_net()
    batch = batch_inputs(net, ("c2",), torch.randn(2, 3, 16, 16), net.fc)
    with pytest.raises(ValueError, match="gradients"):
        get("layercam").tap_map(replace(batch.taps[0], gradients=None), batch)


@pytest.mark.parametrize("name", FAMILY)
def test_registered_with_what_readers_see(name):
    method = REGISTRY[name]
    assert re.fullmatch(r"[a-z]+", method.name)
    assert re.fullmatch(r"[A-Z][\w-]+ (et al\.|& [A-Z]\w+) \d{4}", method.citation)
    assert method.needs == Need.GRADIENTS and not method.per_class and not method.last_tap_only
    assert "backward" in method.cost


@pytest.mark.slow
@pytest.mark.parametrize(("name", "library", "peer"), PEERS)
def test_same_map_as_the_library_on_efficientnet_lite0(name, library, peer):
    """Random weights, 2 photos of noise at 96 px, tap blocks.4 (a linear bottleneck: features of both signs)."""
    timm = pytest.importorskip("timm")
    pytest.importorskip(library)
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2).eval()
    with torch.no_grad():
        # Gradients at blocks.4 go from ~3e-2 to ~3. At this signed tap Grad-CAM++'s denominator 2 + g sum(f) passes
        # through 0, and near 0 pytorch-grad-cam's eps of 1e-6 decides its map unless g^2 is far above it.
        model.classifier.weight.mul_(100.0)
    x = torch.randn(2, 3, 96, 96)
    diff = max_difference_from_peer(name, library, peer, model, ("blocks.4", "bn2"), "blocks.4", x, model.classifier)
    assert diff <= TOLERANCE
