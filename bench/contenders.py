"""What is timed: the bare forward pass, this project's explainer, and the two CAM libraries called as their
docs show, all on the same model, photos, layers and classes.

Each contender is a function of one batch (B, 3, S, S) that returns what it made, so that nothing is skipped
and the agreement check can reuse it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from generator.explain import methods as registry
from generator.explain.explainer import BatchResult, Explainer
from generator.explain.run import scored_methods
from generator.model.heads import LinearHead

from .inputs import Setup

Contender = Callable[[torch.Tensor], object]
TORCHCAM = "torchcam"
PGC = "pytorch-grad-cam"


@dataclass(frozen=True)
class Peer:
    """A library's counterpart of one of our methods."""

    method: str  # ours, a registered name
    library: str  # TORCHCAM or PGC
    name: str  # its class in the library
    checked: bool = True  # compared map by map; False where the library defines the method otherwise
    # For the check only. Grad-CAM++ is not invariant to the logit's scale, and pytorch-grad-cam adds 1e-6 to its
    # denominator, which outweighs 2 g^2 once |g| < ~1e-3 (our head's gradients at the last tap are ~4e-4): as in
    # tests/methods_fixtures.py, both sides are compared on the model with the head scaled up.
    head_scale: float = 1.0
    # Taps where the maps are compared and counted: all of them, or only the last where the method is meant for
    # features >= 0 (Grad-CAM++: at a signed tap its denominator has poles, and near them the library's eps and
    # rounding decide the map; the others are still compared and printed).
    last_tap_only: bool = False

    @property
    def label(self) -> str:
        return f"{self.library} {self.name}"


# Grad-CAM++ is checked against pytorch-grad-cam only: torchcam's differs from the paper's eq. 19 (see
# generator/explain/methods/gradient.py, GradCAMPlusPlus); it is timed all the same.
PEERS = (
    Peer("cam", TORCHCAM, "CAM"),
    Peer("gradcam", TORCHCAM, "GradCAM"),
    Peer("gradcam", PGC, "GradCAM"),
    Peer("gradcampp", PGC, "GradCAMPlusPlus", head_scale=1000.0, last_tap_only=True),
    Peer("gradcampp", TORCHCAM, "GradCAMpp", checked=False),
    Peer("xgradcam", TORCHCAM, "XGradCAM"),
    Peer("xgradcam", PGC, "XGradCAM"),
    Peer("layercam", TORCHCAM, "LayerCAM"),
    Peer("layercam", PGC, "LayerCAM"),
    Peer("hirescam", PGC, "HiResCAM"),
    Peer("eigencam", PGC, "EigenCAM"),
)
SCORE_PEER = Peer("scorecam", TORCHCAM, "ScoreCAM")
# CAM and every gradient method: one backward pass for all of them (a new gradient method joins by registering)
FAMILY = ("cam",) + tuple(n for n in registry.names() if registry.get(n).needs == registry.Need.GRADIENTS)


def cheap_methods() -> tuple[str, ...]:
    """Every registered method that is not opt-in: what the leaderboard's sample photos get (the other photos get
    only the chosen methods); explain.scored_methods with nothing opt-in chosen."""
    return scored_methods(())


def autocast(dtype: torch.dtype | None):
    return torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None)


# ---- ours --------------------------------------------------------------------------------------------------------


def bare_forward(setup: Setup) -> Contender:
    """A: the network alone, in inference mode."""
    net = setup.backbone.model

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(setup.dtype):
            return net(x)

    return run


def explainer(setup: Setup, names: tuple[str, ...]) -> Explainer:
    return Explainer(setup.backbone.model, setup.taps, setup.heads, [registry.get(n) for n in names],
                     autocast_dtype=setup.dtype, channels_last=setup.runtime.channels_last)


def ours(setup: Setup, names: tuple[str, ...]) -> Contender:
    """The explainer with these methods, maps at every tap they support (all four, but Score-CAM's last only).
    Entered per batch, so that its hooks are off while the others run."""
    ex = explainer(setup, names)

    def run(x: torch.Tensor) -> BatchResult:
        with ex:
            return ex(x)

    return run


# ---- the libraries -----------------------------------------------------------------------------------------------


class CatDogNet(nn.Module):
    """The classifier as one nn.Module, as a user of the libraries would hold it: the backbone, the global
    average pool of its last tap and the head as `fc` (float32 logits out); the earlier taps' probes sit beside
    it as `probes.<t>`, used only as torchcam CAM's fc layers. The backbone runs whole, ImageNet classifier too,
    as in A and in ours."""

    def __init__(self, net: nn.Module, taps: tuple[str, ...], heads: list[LinearHead]) -> None:
        super().__init__()
        self.net = net
        self.taps = taps
        self.fc = _linear(heads[-1])
        self.probes = nn.ModuleList(_linear(h) for h in heads[:-1])
        self._last: torch.Tensor | None = None
        dict(net.named_modules())[taps[-1]].register_forward_hook(self._keep)

    def _keep(self, _module, _inputs, out: torch.Tensor) -> None:
        self._last = out

    def layer_name(self, tap: int) -> str:
        return f"net.{self.taps[tap]}"

    def layer(self, tap: int) -> nn.Module:
        return dict(self.named_modules())[self.layer_name(tap)]

    def fc_name(self, tap: int) -> str:
        return "fc" if tap == len(self.taps) - 1 else f"probes.{tap}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.net(x)
        features, self._last = self._last, None
        return self.fc(features.mean(dim=(2, 3))).float()


def _linear(head: LinearHead) -> nn.Linear:
    k, c = head.weight.shape
    lin = nn.Linear(c, k)
    with torch.no_grad():
        lin.weight.copy_(head.weight)
        lin.bias.copy_(head.bias)
    return lin


def library_net(setup: Setup) -> CatDogNet:
    """A copy of the backbone with trainable parameters (as a pretrained model is loaded; the libraries' gradient
    hooks need activations that require grad), in the runtime's memory format."""
    net = copy.deepcopy(setup.backbone.model)
    for p in net.parameters():
        p.requires_grad_(True)
    return setup.runtime.prepare(CatDogNet(net, setup.taps, setup.heads).eval())


def _as_float(t: torch.Tensor) -> torch.Tensor:  # pytorch-grad-cam turns maps into numpy, which has no bfloat16
    return t.float()


def torchcam_maps(model: CatDogNet, peer: str, tap: int, x: torch.Tensor, dtype: torch.dtype | None,
                  target: list[int] | None = None) -> torch.Tensor:
    """(B, H, W) maps of torchcam's `peer` at `tap` for `target` (default: the predicted class), scaled by
    torchcam: one forward pass (and one backward for the gradient methods) per call, as its docs show."""
    import torchcam.methods

    kwargs = {"fc_layer": model.fc_name(tap)} if peer == "CAM" else {}
    gradients = peer not in ("CAM", "ScoreCAM")
    with getattr(torchcam.methods, peer)(model, model.layer_name(tap), input_shape=tuple(x.shape[1:]),
                                         **kwargs) as extractor:
        with torch.enable_grad() if gradients else torch.inference_mode(), autocast(dtype):
            scores = model(x)
        classes = scores.argmax(1).tolist() if target is None else [int(t) for t in target]
        with autocast(dtype):  # Score-CAM's own forward passes run here
            return extractor(class_idx=classes, scores=scores)[0].detach()


def pgc_maps(model: CatDogNet, peer: str, tap: int, x: torch.Tensor, dtype: torch.dtype | None,
             target: list[int] | None = None) -> np.ndarray:
    """(B, S, S) maps of pytorch-grad-cam's `peer` at `tap` for `target` (default: the predicted class), scaled
    and upsampled to the input by the library: one forward and one backward per call, as its docs show."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = None if target is None else [ClassifierOutputTarget(int(t)) for t in target]
    with autocast(dtype), getattr(pytorch_grad_cam, peer)(model=model, target_layers=[model.layer(tap)],
                                                          reshape_transform=_as_float) as cam:
        return cam(input_tensor=x, targets=targets)


def library(setup: Setup, model: CatDogNet, peer: Peer, tap: int) -> Contender:
    """`peer` at `tap`, one call per batch, for the predicted class."""
    maps = torchcam_maps if peer.library == TORCHCAM else pgc_maps

    def run(x: torch.Tensor):
        return maps(model, peer.name, tap, x, setup.dtype)

    return run
