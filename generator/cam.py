"""CAM math, batched: every class at every tap from one forward pass (plus one backward for Grad-CAM).

Zhou et al. 2016: CAM_c(x, y) = sum_k w_k^c f_k(x, y), with f the tapped feature map and w the weights of a
linear layer on its global average pool. For the last tap that layer is the trained head; for earlier taps it
is a linear probe fitted the same way (see train.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn


@dataclass(frozen=True)
class LinearHead:
    """Class weights over one tap's channels: logit = weight @ mean_xy(f) + bias."""

    weight: torch.Tensor  # (K, C)
    bias: torch.Tensor  # (K,)


@dataclass
class BatchExplanation:
    """What one batch yields. Shapes: B images, K classes, T taps, tap t of size H_t x W_t."""

    logits: torch.Tensor  # (B, K) from the head on the last tap
    probe_logits: list[torch.Tensor]  # T x (B, K), each tap's probe (the last one equals `logits`)
    cams: list[torch.Tensor]  # T x (B, K, H_t, W_t), raw CAM of every class (no ReLU, no scaling)
    gradcams: list[torch.Tensor] | None  # T x (B, H_t, W_t), Grad-CAM of the predicted class, after ReLU
    imagenet_logits: torch.Tensor | None  # (B, 1000) from the backbone's own classifier, for OOD scores


def class_activation_maps(features: torch.Tensor, head: LinearHead) -> torch.Tensor:
    """(B, C, H, W) features and (K, C) weights -> (B, K, H, W) CAMs; mean over (H, W) + bias = logits."""
    return torch.einsum("kc,bchw->bkhw", head.weight.to(features.dtype), features)


def grad_cam(features: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Selvaraju et al. 2017: ReLU(sum_k mean_xy(dS/df_k) f_k). (B, C, H, W) x2 -> (B, H, W)."""
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    return F.relu((alpha * features).sum(dim=1))


@contextmanager
def recording(model: nn.Module, taps: tuple[str, ...]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks that store each tap's output in the yielded dict; always removed on exit."""
    modules = dict(model.named_modules())
    missing = [t for t in taps if t not in modules]
    if missing:
        raise ValueError(f"model has no module named {', '.join(missing)}")
    store: dict[str, torch.Tensor] = {}
    handles = [
        modules[t].register_forward_hook(lambda _m, _i, out, t=t: store.__setitem__(t, out)) for t in taps
    ]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


class Explainer:
    """Runs the backbone once per batch with hooks on every tap and turns the taps into maps.

    Use as a context manager (`with Explainer(...) as ex: ex(batch)`): the hooks live only inside it.
    """

    def __init__(
        self,
        model: nn.Module,
        taps: tuple[str, ...],
        heads: list[LinearHead],
        gradcam: bool = True,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        if len(heads) != len(taps):
            raise ValueError(f"need one head per tap: {len(taps)} taps, {len(heads)} heads")
        self.model = model.eval()
        self.taps = taps
        self.heads = heads
        self.gradcam = gradcam
        self.autocast_dtype = autocast_dtype
        self._ctx = None
        self._store: dict[str, torch.Tensor] | None = None
        self._grad_flags: list[bool] = []

    def __enter__(self) -> Explainer:
        self._grad_flags = [p.requires_grad for p in self.model.parameters()]
        for p in self.model.parameters():
            p.requires_grad_(False)  # Grad-CAM needs gradients of activations only, never of weights
        self._ctx = recording(self.model, self.taps)
        self._store = self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for p, flag in zip(self.model.parameters(), self._grad_flags):
            p.requires_grad_(flag)
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
        self._ctx = None
        self._store = None

    def __call__(self, x: torch.Tensor) -> BatchExplanation:
        if self._store is None:
            raise RuntimeError("use Explainer inside a `with` block")
        device_type = x.device.type
        grad_ctx = torch.enable_grad() if self.gradcam else torch.inference_mode()
        with grad_ctx:
            if self.gradcam:
                x = x.detach().requires_grad_(True)
            with torch.autocast(device_type, dtype=self.autocast_dtype or torch.bfloat16,
                                enabled=self.autocast_dtype is not None):
                imagenet_logits = self.model(x)
            feats = [self._store[t] for t in self.taps]
            pooled = [f.float().mean(dim=(2, 3)) for f in feats]
            probe_logits = [p @ h.weight.T.to(p) + h.bias.to(p) for p, h in zip(pooled, self.heads)]
            logits = probe_logits[-1]
            gradcams = None
            if self.gradcam:
                score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
                grads = torch.autograd.grad(score, feats)
                gradcams = [grad_cam(f.detach().float(), g.float()) for f, g in zip(feats, grads)]
            with torch.no_grad():
                cams = [class_activation_maps(f.detach().float(), h) for f, h in zip(feats, self.heads)]
        self._store.clear()
        return BatchExplanation(
            logits=logits.detach().float(),
            probe_logits=[p.detach().float() for p in probe_logits],
            cams=cams,
            gradcams=gradcams,
            imagenet_logits=imagenet_logits.detach().float() if imagenet_logits is not None else None,
        )


@dataclass(frozen=True)
class Box:
    """The CAM box in fractions of the image (x0, y0 inclusive; x1, y1 exclusive), and what it holds."""

    x0: float
    y0: float
    x1: float
    y1: float
    area: float  # share of the image the box covers, 0..1
    mass: float  # share of the map's positive mass inside the box, 0..1


def cam_box(cam: np.ndarray, threshold: float = 0.2) -> Box:
    """The paper's rule: the bounding box of the largest connected region at or above `threshold` of the map.

    `cam` is one raw map (H, W), already upsampled to the image's (model) resolution. It is min-max scaled
    first, as in the paper's released code, so the threshold is a fraction of the map's range.
    `mass` is the share of the scaled map's total inside the box.
    """
    cam = np.asarray(cam, dtype=np.float32)
    cam = cam - float(cam.min())
    h, w = cam.shape
    top = float(cam.max())
    if top <= 0:  # a flat map points nowhere: the box is the whole image
        return Box(0.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    labels, _ = ndimage.label(cam >= threshold * top)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    ys, xs = np.nonzero(labels == int(sizes.argmax()))
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    mass = float(cam[y0:y1, x0:x1].sum() / cam.sum())
    return Box(x0 / w, y0 / h, x1 / w, y1 / h, (y1 - y0) * (x1 - x0) / (h * w), mass)


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) -> (B, size, size), bilinear, as CAM is shown over the image."""
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
