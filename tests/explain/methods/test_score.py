"""Score-CAM (generator/explain/methods/score.py): agreement with torchcam's ScoreCAM, chunked extra passes,
and constant channels scored once without changing a number."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from fixtures_models import batch_inputs, explain_watching_autograd, tiny_net, torchcam_maps, torchcam_scaled

from generator.explain.methods import REGISTRY, get, resolve, score

pytestmark = pytest.mark.numerics  # make test runs these again in float32 where bf16 is on

TOLERANCE = 1e-4


def tiny_batch(n: int = 5, seed: int = 9):
    """The tiny net with a constant and a dead channel at c2, its inputs for n photos, and those photos."""
    net = tiny_net(seed=seed, head_scale=3.0, constant_channels=True)
    x = torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    return net, batch_inputs(net, ("c1", "c2"), x, net.fc), x


def counting(batch):
    """`batch` whose class_scores records the number of inputs of each call."""
    sizes: list[int] = []

    def class_scores(inputs: torch.Tensor) -> torch.Tensor:
        sizes.append(len(inputs))
        return batch.class_scores(inputs)

    return replace(batch, class_scores=class_scores), sizes


def test_same_map_as_torchcam():
    pytest.importorskip("torchcam")
    net, batch, x = tiny_batch()
    ours = get("scorecam").tap_map(batch.taps[-1], batch)
    theirs = torchcam_maps("ScoreCAM", net, "c2", x, batch.target)
    assert float(ours.amax()) > 0
    assert float((torchcam_scaled(ours) - theirs).abs().max()) <= TOLERANCE


def test_constant_channels_are_scored_once_and_change_nothing(monkeypatch):
    monkeypatch.setattr(score, "CHUNK", 3)
    net, batch, x = tiny_batch(n=4)
    features = batch.taps[-1].features
    counted, sizes = counting(batch)
    scores = score.masked_scores(features, counted)

    flat = features.flatten(2)
    constant = flat.amax(dim=2) == flat.amin(dim=2)
    assert constant[:, :2].all()  # the planted ones, in every photo
    rows = int((~constant).sum()) + 1  # every varying channel, and one all-zero input for all the constant ones
    assert sum(sizes) == rows and len(sizes) == math.ceil(rows / 3) and max(sizes) == 3

    # Reference without the shortcut: every channel of every photo masks the input and is scored on its own.
    low = flat.amin(dim=2)[..., None, None]
    masks = (features - low) / (flat.amax(dim=2)[..., None, None] - low + score.EPS)
    masks = F.interpolate(masks, size=x.shape[-2:], mode="bilinear", align_corners=False)  # (B, C, S, S)
    with torch.no_grad():
        logits = net((x[:, None] * masks[:, :, None]).flatten(0, 1)).view(*masks.shape[:2], -1)  # (B, C, K)
    expected = logits.gather(2, batch.target[:, None, None].expand(-1, masks.shape[1], 1)).squeeze(2)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_without_constant_channels_there_is_no_extra_pass():
    net = tiny_net(seed=10, head_scale=3.0)
    with torch.no_grad():
        net.c2[0].bias.fill_(10.0)  # no ReLU clips c2 to a constant
    counted, sizes = counting(batch_inputs(net, ("c1", "c2"), torch.randn(3, 3, 16, 16), net.fc))
    flat = counted.taps[-1].features.flatten(2)
    assert (flat.amax(dim=2) > flat.amin(dim=2)).all()
    get("scorecam").tap_map(counted.taps[-1], counted)
    assert sizes == [3 * 8]  # one pass per channel of each photo, in one chunk


def test_declarations_are_what_the_explainer_does():
    """Score-CAM's declarations drive the explainer: a map at the last tap only, extra forward passes and no
    backward; the cost readers see names the real channel count of EfficientNet-Lite0's last tap."""
    timm = pytest.importorskip("timm")
    method = REGISTRY["scorecam"]
    out, grads_on = explain_watching_autograd(tiny_net(seed=4, head_scale=3.0), method, torch.randn(2, 3, 16, 16))
    assert out.maps["scorecam"][0] is None and tuple(out.maps["scorecam"][1].shape) == (2, 4, 4)
    assert len(grads_on) > 1 and not any(grads_on)  # the photo's pass, then the masked ones; no autograd
    assert list(method.taps_of(4)) == [3] and "scorecam" not in resolve("default")
    lite0 = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2)
    assert f"{lite0.num_features:,}" in method.cost


@pytest.mark.slow
def test_constant_channels_of_efficientnet_lite0_on_a_real_photo(capsys):
    """How many of bn2's 1,280 channels Score-CAM scores once, together, on one cat (ImageNet weights, 224 px)."""
    import numpy as np
    from conftest import CATS_DOGS, need_datasets

    from generator.data.imaging import decode_bytes
    from generator.model.backbones import build_efficientnet_lite0

    need_datasets()
    photo = CATS_DOGS / "validation" / "cats" / "cat.2000.jpg"
    decoded = decode_bytes(photo.read_bytes(), input_size=224, display_size=224, max_pixels=50_000_000)
    x = torch.from_numpy(np.asarray(decoded.model_input, np.float32) / 255.0).permute(2, 0, 1)[None]
    backbone = build_efficientnet_lite0()
    x = (x - torch.tensor(backbone.mean)[:, None, None]) / torch.tensor(backbone.std)[:, None, None]
    store: dict[str, torch.Tensor] = {}
    handle = backbone.model.bn2.register_forward_hook(lambda _m, _i, out: store.__setitem__("bn2", out))
    try:
        with torch.no_grad():
            backbone.model(x)
    finally:
        handle.remove()
    flat = store["bn2"].flatten(2)[0]  # (1280, 49)
    constant = int((flat.amax(dim=1) == flat.amin(dim=1)).sum())
    with capsys.disabled():
        print(f"\nScore-CAM on {photo.name}: {constant} of {flat.shape[0]} bn2 channels are constant "
              f"({int((flat.amax(dim=1) == 0).sum())} all zero): {flat.shape[0] - constant + (constant > 0)} passes")
    assert flat.shape[0] == 1280 and 0 <= constant < 1280
