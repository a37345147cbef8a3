"""Shared by the tests: a tiny GAP + linear network, a synthetic per-photo record, what the explainer would hand a
method for it, and each peer library's maps and post-processing, so that ours are compared at the library's own
output."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from generator.explain.methods import BatchInputs, TapInputs
from generator.explain.record import PhotoRecord, as_stored
from generator.model.heads import LinearHead


class TinyGapNet(nn.Module):
    """conv-relu (tap 'c1': 8x8 at 16 px with c1_stride 2, 16x16 with 1) -> conv-relu (tap 'c2', 4x4 or 8x8)
    -> GAP -> linear 'fc': the last tap is what the head pools."""

    def __init__(self, k: int = 2, c1_stride: int = 2) -> None:
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 6, 3, stride=c1_stride, padding=1), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c2(self.c1(x)).mean(dim=(2, 3)))


def tiny_net(seed: int = 0, head_scale: float = 1000.0, constant_channels: bool = False) -> TinyGapNet:
    """Random weights. The head is scaled up so that gradients are ~1 to 10: pytorch-grad-cam's Grad-CAM++ adds 1e-6 to
    a denominator of ~2 g^2, which would otherwise show. `constant_channels`: c2's channel 0 is 0.5 everywhere
    and channel 1 is dead (0 everywhere), as ReLU6 channels often are in EfficientNet."""
    torch.manual_seed(seed)
    net = TinyGapNet().eval()
    with torch.no_grad():
        net.fc.weight.mul_(head_scale)
        if constant_channels:
            net.c2[0].weight[:2] = 0.0
            net.c2[0].bias[:2] = torch.tensor([0.5, -1.0])
    return net


def batch_inputs(model: nn.Module, layers: tuple[str, ...], x: torch.Tensor, fc: nn.Linear) -> BatchInputs:
    """What the explainer hands a method: one forward with hooks on `layers` (shallow to deep, the last one pooled
    by `fc`), one backward of the predicted logits summed over the batch into every layer, target = prediction.
    Earlier taps get a random probe for a head (only CAM reads it)."""
    modules = dict(model.named_modules())
    store: dict[str, torch.Tensor] = {}
    handles = [modules[n].register_forward_hook(lambda _m, _i, out, n=n: store.__setitem__(n, out)) for n in layers]
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))
            target = logits.argmax(dim=1)
            feats = [store[n] for n in layers]
            grads = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), feats)
    finally:
        for h in handles:
            h.remove()
    k = fc.out_features
    heads = [LinearHead(torch.randn(k, f.shape[1]), torch.randn(k)) for f in feats[:-1]]
    heads.append(LinearHead(fc.weight.detach().clone(), fc.bias.detach().clone()))
    taps = tuple(
        TapInputs(features=f.detach().float(), gradients=g.float(), head=h, is_last=i == len(layers) - 1)
        for i, (f, g, h) in enumerate(zip(feats, grads, heads, strict=True))
    )

    def class_scores(inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(inputs)

    return BatchInputs(x=x.detach(), target=target.detach(), taps=taps, class_scores=class_scores)


def torchcam_scaled(maps: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> torchcam's own min-max scaling of each map (its `_CAM._normalize`)."""
    from torchcam.methods.core import _CAM

    return _CAM._normalize(maps.detach().clone().float())


def torchcam_maps(method: str, model: nn.Module, layer: str, x: torch.Tensor, target: torch.Tensor,
                  **kwargs) -> torch.Tensor:
    """(B, H, W) maps of torchcam's `method` (a class name in torchcam.methods) for `target`, as it scales them."""
    import torchcam.methods

    extractor_cls = getattr(torchcam.methods, method)
    with extractor_cls(model, target_layer=layer, input_shape=tuple(x.shape[1:]), **kwargs) as extractor:
        with torch.set_grad_enabled(method not in ("CAM", "ScoreCAM")):
            scores = model(x)
        return extractor(class_idx=target.tolist(), scores=scores)[0].detach()


def pgc_scaled(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(B, H, W) -> what pytorch-grad-cam makes of a map of one layer: ReLU, min-max and cv2 resize to `size`
    (H, W), then min-max again (its aggregation over layers), all with its own functions."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    cam = np.maximum(maps.detach().float().cpu().numpy(), 0)
    return scale_cam_image(scale_cam_image(cam, (size[1], size[0])))


def pgc_maps(method: str, model: nn.Module, layer: str, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """(B, S, S) maps of pytorch-grad-cam's `method` (a class name in pytorch_grad_cam) for `target`."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    module = dict(model.named_modules())[layer]
    with getattr(pytorch_grad_cam, method)(model, [module]) as extractor:
        return extractor(x, targets=[ClassifierOutputTarget(int(t)) for t in target])


def make_record(seed: int = 0, n_taps: int = 3, k: int = 2) -> PhotoRecord:
    """A synthetic record of a k-class head: random logits, probes and per-class CAMs at three taps."""
    rng = np.random.default_rng(seed)
    sizes = [8, 4, 2][:n_taps]
    cams = [as_stored(rng.normal(size=(k, s, s))) for s in sizes]
    grads = [as_stored(np.abs(rng.normal(size=(s, s))) * 1e-5) for s in sizes]  # early-stage gradients are tiny
    score = [None] * (n_taps - 1) + [as_stored(np.abs(rng.normal(size=(sizes[-1],) * 2)) * 3e5)]  # over fp16
    return PhotoRecord(
        width=640, height=480, logits=rng.normal(size=k).astype(np.float32),
        probe_logits=rng.normal(size=(n_taps, k)).astype(np.float32),
        imagenet_top=np.array([281, 282, 5]), imagenet_top_p=np.array([0.5, 0.2, 0.1], np.float32),
        pet_p=0.73, energy=-9.5, maps={"cam": cams, "gradcam": grads, "scorecam": score})


def explain_watching_autograd(net: TinyGapNet, method, x: torch.Tensor):
    """Explain x with CAM and `method` on the tiny net's two taps (a random probe, the net's own head), and
    record whether autograd was on at each forward pass of the net: (BatchResult, [grad enabled per pass])."""
    from generator.explain.explainer import Explainer
    from generator.explain.methods import REGISTRY

    heads = [LinearHead(torch.randn(2, 6), torch.randn(2)),
             LinearHead(net.fc.weight.detach().clone(), net.fc.bias.detach().clone())]
    grads_on: list[bool] = []
    net.register_forward_hook(lambda *_: grads_on.append(torch.is_grad_enabled()))
    with Explainer(net, ("c1", "c2"), heads, [REGISTRY["cam"], method]) as ex:
        return ex(x), grads_on


class TinyMlpHeadNet(nn.Module):
    """A network whose head is NOT pooling + one linear layer: conv-relu (tap 'c1') -> conv-relu (tap 'c2') -> GAP ->
    linear -> ReLU -> linear. Its output comes from a Linear, but one fed by a ReLU, not by the pooled features."""

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.c2(self.c1(x)).mean(dim=(2, 3)))


def build_numerics(settings) -> tuple[object, float]:
    """How a test recomputes what a build computed, and how close the two may come. The build runs bf16 autocast
    where the CPU has it (AVX512-BF16 or AMX: generator.model.runtime.choose_runtime), float32 elsewhere. Returns
    (a context manager for the reference pass, under the same autocast; the tolerance on a probability): float32
    in another batch shape agrees to ~1e-6, and 1e-4 leaves room for thread counts; bf16 keeps 8 bits of
    mantissa, and a photo computed in another batch moved by up to 4.5e-4 (measured on an AVX512-BF16 CPU)."""
    from generator.model.runtime import choose_runtime

    runtime = choose_runtime(settings)
    return (torch.autocast("cpu", dtype=torch.bfloat16, enabled=runtime.autocast),
            5e-3 if runtime.autocast else 1e-4)
