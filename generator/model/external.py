"""Bring your own classifier: a torchvision or timm architecture with a state dict, or a TorchScript file.

The network is loaded without running any code from the file (torch.load with weights_only=True for a state dict;
torch.jit.load for TorchScript, which holds TorchScript, never Python pickles), checked to be a classifier of the
training set's K classes, and then read structurally from one forward pass with a hook on every module:

- the head: the Linear layer whose output is the network's output, fed by the global average pool of a 4-D feature
  map (torchvision's `avgpool` + `fc`, timm's `global_pool` + `fc`/`classifier`/`head`). Its weights are the CAM
  weights of that feature map (spatial mean of CAM_c + bias_c = logit_c). Anything else (a norm or an MLP after the
  pooling, attention pooling) is not pooling + linear: such a model gets the gradient methods only.
- the taps: the last module of each spatial resolution whose output is a 4-D feature map (the idea of torch-cam's
  `locate_candidate_layer`, applied to every stage; identities and norms do not end a stage), the deepest four, the
  last one being the feature map the head pools; or the modules named by setting taps.

The model plugs into the pipeline as a `Backbone` whose `head` is the network's own: the tool fits no head, only the
probes of the earlier taps on the training photos (generator/model/train.py `own_or_load`). Its content hash keys
every cache (the checkpoint fingerprint).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from generator.config import Settings
from generator.errors import UserError
from generator.files import file_sha256
from generator.i18n import N_
from generator.model.backbones import Backbone, WeightsError, load_state_dict
from generator.model.heads import LinearHead

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LIBRARIES = ("torchvision", "timm")
MOST_TAPS = 4  # the deepest resolutions: earlier ones are the stem's few channels
PROBE_SIZE = 128  # side of the structural probe's input: large enough that the last stage is wider than 1x1


@dataclass(frozen=True)
class ModelSpec:
    """What setting model names: library torchvision, timm or torchscript, and the architecture (empty for
    TorchScript)."""

    library: str
    arch: str

    @property
    def name(self) -> str:
        """The backbone name in file names and on the pages: own_<library>_<arch>."""
        return "own_" + re.sub(r"[^a-z0-9_]", "_", f"{self.library}_{self.arch}".lower()).strip("_")


def parse_model(value: str) -> ModelSpec:
    """'torchscript', 'torchvision:<arch>' or 'timm:<arch>' -> ModelSpec; UserError (one sentence) otherwise."""
    if value == "torchscript":
        return ModelSpec("torchscript", "")
    library, sep, arch = value.partition(":")
    if not sep or library not in LIBRARIES or not re.fullmatch(r"[A-Za-z0-9_.\-]+", arch):
        raise UserError(f"setting model = {value!r} is not allowed: use torchscript, torchvision:<architecture> "
                        "(e.g. torchvision:resnet18) or timm:<architecture> (e.g. timm:resnet10t).")
    return ModelSpec(library, arch)


@dataclass(frozen=True)
class Structure:
    """What one forward pass shows of a network: where its CAM head is (or why there is none), its taps."""

    head: LinearHead | None  # the Linear over the pooled last feature map; None when the head is not pool + linear
    head_module: str  # the Linear's module name ('' when none)
    pooled_module: str  # the module whose 4-D output the head pools ('' when none)
    no_cam_reason: str  # why there is no CAM head ('' when there is one), a message id: the pages translate it
    head_modules: tuple[str, ...]  # the modules with weights run after the last tap (the head, whatever it is)
    taps: tuple[str, ...]  # the end of each spatial resolution, shallow to deep (at most MOST_TAPS)
    strides: tuple[int, ...]
    n_outputs: int


def _architecture(spec: ModelSpec, n_classes: int) -> nn.Module:
    """The architecture with random weights and n_classes outputs (no download)."""
    if spec.library == "timm":
        import timm

        if not timm.is_model(spec.arch):
            raise UserError(f"setting model = 'timm:{spec.arch}': timm has no architecture of that name; "
                            "`python -c \"import timm; print(timm.list_models())\"` lists them.")
        return timm.create_model(spec.arch, pretrained=False, num_classes=n_classes)
    import torchvision

    if spec.arch not in torchvision.models.list_models(module=torchvision.models):
        raise UserError(f"setting model = 'torchvision:{spec.arch}': torchvision has no classification "
                        "architecture of that name; `python -c \"import torchvision; "
                        "print(torchvision.models.list_models())\"` lists them.")
    return torchvision.models.get_model(spec.arch, weights=None, num_classes=n_classes)


def load_into(model: nn.Module, path: Path, n_classes: int) -> None:
    """The state dict at `path` (weights_only) into `model`; one sentence naming the first tensor that does not fit
    (missing, unexpected or of another shape), or saying the file was made for another number of classes."""
    state = load_state_dict(path)
    own = model.state_dict()
    head_keys = _head_keys(model)
    for k, v in state.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            if k in head_keys and v.ndim >= 1 and v.shape[0] != own[k].shape[0]:
                raise WeightsError(f"{path}: made for {v.shape[0]} classes (tensor {k} has shape {tuple(v.shape)}), "
                                   f"but the training set has {n_classes}; give the model of these classes, or a "
                                   "classes file with its classes.")
            raise WeightsError(f"{path}: tensor {k} has shape {tuple(v.shape)}, the architecture needs "
                               f"{tuple(own[k].shape)}; the file is not of this architecture: check setting model.")
    missing = [k for k in own if k not in state]
    if missing:
        raise WeightsError(f"{path}: tensor {missing[0]} is missing ({len(missing)} missing in all); the file is "
                           "not of this architecture: check setting model.")
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise WeightsError(f"{path}: tensor {unexpected[0]} is not in the architecture ({len(unexpected)} such in "
                           "all); the file is not of this architecture: check setting model.")
    model.load_state_dict(state, strict=True)


def _head_keys(model: nn.Module) -> set[str]:
    """State dict keys of the last Linear module (the usual classifier head)."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return {f"{linears[-1]}.weight", f"{linears[-1]}.bias"} if linears else set()


class _Hookable(nn.Module):
    """A TorchScript submodule behind a Python module, so that forward hooks (the taps) can read its output."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


class ScriptChain(nn.Module):
    """A TorchScript network run child by child from Python: its top-level modules, in order, a flatten before a
    Linear that gets a 4-D input. Used only when this gives the file's own output (checked on a probe input), so
    that the taps (the children: torchvision's layer1..layer4) are readable with hooks, which TorchScript forbids."""

    def __init__(self, script: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.names = [n for n, _ in script.named_children()]
        for n, child in script.named_children():
            self.add_module(n, _Hookable(child))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for n in self.names:
            module = getattr(self, n)
            if x.ndim == 4 and getattr(module.inner, "original_name", "") == "Linear":
                x = torch.flatten(x, 1)
            x = module(x)
        return x


def load_torchscript(path: Path, n_classes: int, size: int) -> nn.Module:
    """The TorchScript file as a network whose children take hooks; one sentence when it is not a classifier of
    n_classes or when its modules do not run in sequence."""
    try:
        script = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise WeightsError(f"{path}: cannot be read as a TorchScript file ({type(exc).__name__}); save the model "
                           "with torch.jit.save, or give its architecture and a state dict.") from None
    script.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            out = script(x)
        except Exception as exc:
            raise UserError(f"{path}: the TorchScript model does not take a batch of {size}x{size} RGB photos "
                            f"({type(exc).__name__}); it is not an image classifier this tool can explain.") from None
    _check_logits(path, out, n_classes)
    chain = ScriptChain(script).eval()
    with torch.no_grad():
        try:
            mine = chain(x)
        except Exception:
            mine = None
    if mine is None or mine.shape != out.shape or not torch.allclose(mine, out, rtol=1e-4, atol=1e-5):
        raise UserError(f"{path}: the taps of this TorchScript model cannot be read (its top-level modules do not "
                        "run one after another, as torchvision's ResNets do); give its architecture and a state "
                        "dict instead (setting model = torchvision:<name> or timm:<name>).")
    return chain


def _check_logits(path: Path, out, n_classes: int) -> None:
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        what = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"{path}: the model returns {what}, not (photos, classes) logits; it is not a classifier "
                        "this tool can explain.")
    if out.shape[1] != n_classes:
        raise UserError(f"{path}: the model has {out.shape[1]} outputs, but the training set has {n_classes} "
                        "classes; give the model of these classes, or a classes file with its classes.")


def find_structure(model: nn.Module, size: int = PROBE_SIZE, taps: tuple[str, ...] = ()) -> Structure:
    """The head and the taps of `model`, from one forward pass of a seeded random input with a hook on every
    module (see the module docstring). `taps`: names given by setting (checked to be modules)."""
    # TorchScript modules take no hooks: only the Python modules around them (ScriptChain's children) are tappable
    modules = {n: m for n, m in model.named_modules() if not isinstance(m, torch.jit.ScriptModule)}
    bad = [t for t in taps if t not in modules or not t]
    if bad:
        raise UserError(f"setting taps names {bad[0]!r}, which is not a module of the model; name modules such as "
                        f"{', '.join(n for n in list(modules)[1:4])} (print(model) lists them).")
    fired: list[tuple[str, nn.Module, torch.Tensor | None, torch.Tensor]] = []

    def hook(name):
        def keep(mod, inputs, out):
            if isinstance(out, torch.Tensor):
                first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
                fired.append((name, mod, first, out))
        return keep

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items() if n]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    maps = [(n, o) for n, _m, _i, o in fired if o.ndim == 4 and o.shape[2] * o.shape[3] > 1]
    # a stage ends where its last block does: an Identity, or a norm opening the next stage's downsampling (as in
    # ConvNeXt), runs later at the same resolution but is not the end of a stage
    ends = [(n, o) for n, m, _i, o in fired if o.ndim == 4 and o.shape[2] * o.shape[3] > 1
            and not isinstance(m, nn.Identity) and "Norm" not in type(m).__name__]
    if not maps:
        raise UserError("the model has no module whose output is a feature map (photos, channels, height, width); "
                        "it is not a CNN this tool can explain.")
    last_of: dict[tuple[int, int], str] = {}
    for n, o in ends or maps:
        last_of.pop(tuple(o.shape[2:]), None)
        last_of[tuple(o.shape[2:])] = n  # re-inserted: the dict keeps the order of each resolution's last module
    by_size = sorted(last_of.items(), key=lambda kv: -kv[0][0] * kv[0][1])
    head, head_name, pooled_name, reason = _find_head(fired, out, maps)
    if taps:
        chosen = tuple(taps)
    else:
        chosen = tuple(n for _s, n in by_size[-MOST_TAPS:])
        if pooled_name and chosen[-1] != pooled_name:
            chosen = (*chosen[:-1], pooled_name)
    if head is not None and chosen[-1] != pooled_name:
        raise UserError(f"setting taps: the last tap must be {pooled_name!r}, the feature map the model's head "
                        "pools (its CAM is made there); end the list with it or leave setting taps empty.")
    shapes = {n: tuple(o.shape[2:]) for n, o in maps}
    strides = []
    for t in chosen:
        if t not in shapes:
            raise UserError(f"setting taps names {t!r}, whose output is not a feature map of at least 2x2 "
                            "positions; name modules of the network's stages instead.")
        strides.append(max(1, round(size / shapes[t][0])))
    last = max(i for i, (n, *_rest) in enumerate(fired) if n == chosen[-1])
    after = tuple(dict.fromkeys(n for n, m, _i, _o in fired[last + 1:]
                                if not chosen[-1].startswith(n + ".") and any(True for _ in m.parameters())))
    return Structure(head, head_name, pooled_name, reason, after, chosen, tuple(strides), int(out.shape[1]))


def _find_head(fired, out: torch.Tensor, maps) -> tuple[LinearHead | None, str, str, str]:
    """(head, its module, the pooled module, '') for a global average pool + Linear head, else (None, '', '',
    why not)."""
    linear = [(n, m, i, o) for n, m, i, o in fired if isinstance(m, nn.Linear) or
              getattr(getattr(m, "inner", None), "original_name", "") == "Linear"]
    final = [(n, m, i, o) for n, m, i, o in linear if o.shape == out.shape and torch.allclose(o, out, rtol=1e-4,
                                                                                             atol=1e-5)]
    if not final:
        return None, "", "", N_("its output does not come from a linear layer")
    name, module, given, _o = final[-1]
    lin = module.inner if isinstance(module, _Hookable) else module
    if given is None or given.ndim != 2:
        return None, "", "", N_("its linear layer does not take a vector of pooled channels")
    for n, o in reversed(maps):
        if o.shape[:2] == given.shape and torch.allclose(o.float().mean(dim=(2, 3)), given, rtol=1e-4, atol=1e-5):
            weight = lin.weight.detach().float().clone()
            bias = lin.bias.detach().float().clone() if lin.bias is not None else torch.zeros(weight.shape[0])
            return LinearHead(weight=weight, bias=bias), name, n, ""
    return None, "", "", N_("its linear layer is not fed by the global average pool of a feature map")


def normalisation(spec: ModelSpec, model: nn.Module, settings: Settings, log=print
                  ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input normalisation: setting model_mean / model_std, else the library's config (timm's
    resolve_data_config; torchvision's weights transforms), else ImageNet's, said in the log. The input size
    stays setting input_size; a library that configures another size is said in the log."""
    mean = std = size = None
    source = "ImageNet's (the library gives none)"
    if spec.library == "timm":
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=model)
        mean, std, size, source = tuple(cfg["mean"]), tuple(cfg["std"]), int(cfg["input_size"][-1]), "timm's config"
    elif spec.library == "torchvision":
        import torchvision

        try:
            weights = list(torchvision.models.get_model_weights(spec.arch))
        except (ValueError, KeyError):
            weights = []
        if weights:
            t = weights[0].transforms()
            mean, std, size = tuple(t.mean), tuple(t.std), int(t.crop_size[0])
            source = f"torchvision's {weights[0]} transforms"
    if settings.model_mean:
        mean, source = tuple(float(v) for v in settings.model_mean), "setting model_mean"
    if settings.model_std:
        std = tuple(float(v) for v in settings.model_std)
    mean, std = tuple(mean or IMAGENET_MEAN), tuple(std or IMAGENET_STD)
    log(f"model input: {settings.input_size}x{settings.input_size} pixels (setting input_size), normalised with "
        f"mean {mean} and std {std} ({source})")
    if size and size != settings.input_size:
        log(f"note: {source.split(' (')[0]} uses {size}x{size} inputs; give --input-size {size} to match it")
    return mean, std


def build_backbone(settings: Settings, classes: tuple[str, ...], log=print) -> Backbone:
    """The user's classifier as a Backbone with its own head (setting model, model_weights, taps, model_mean,
    model_std); every problem is one sentence."""
    spec = parse_model(settings.model)
    path = Path(settings.model_weights)
    if not path.is_file():
        raise UserError(f"setting model_weights = {str(path)!r} is not a file; give the model's weights file "
                        "(a state dict, or the TorchScript file).")
    K = len(classes)
    if spec.library == "torchscript":
        model = load_torchscript(path, K, settings.input_size)
    else:
        model = _architecture(spec, K)
        load_into(model, path, K)
        with torch.no_grad():
            _check_logits(path, model.eval()(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE)), K)
    model.eval()
    mean, std = normalisation(spec, model, settings, log)
    found = find_structure(model, PROBE_SIZE, tuple(settings.taps))
    if found.head is None:
        log(f"no CAM head: {found.no_cam_reason}; the gradient methods only")
    else:
        log(f"CAM head: {found.head_module} over the pooled {found.pooled_module}")
    log(f"taps: {', '.join(found.taps)}" + (" (setting taps)" if settings.taps else " (the end of each stage)"))
    if found.head is None:
        log(f"the model's head (after {found.taps[-1]}): {', '.join(found.head_modules) or 'no modules with weights'}")
    return Backbone(
        name=spec.name, model=model, taps=found.taps, tap_names=found.taps, strides=found.strides,
        mean=mean, std=std, weights_file=path.name, weights_sha256=file_sha256(path),
        last_stage=(found.taps[-1],), imagenet=False, head=found.head,
        no_cam_reason=found.no_cam_reason, head_modules=found.head_modules,
    )
