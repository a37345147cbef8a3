"""The trained heads on disk: weights/catdog-<backbone>.pt (cat and dog; k<K>-<hash>-<backbone>.pt for other
classes), what it records, and when it may be reused."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from generator.config import Settings
from generator.data.scan import DEFAULT_CLASSES
from generator.files import write_bytes
from generator.model.backbones import Backbone, WeightsError
from generator.model.heads import LinearHead

CHECKPOINT_FORMAT = 1
# What identifies a model: anything here that changes also changes a probability or a map.
IDENTITY = ("backbone", "backbone_weights_sha256", "classes", "input_size", "mean", "std", "data_key", "recipe")
# A fine-tuned network's own weights: an outcome of the identity above, not part of what a run asks for, but part of
# the fingerprint that keys every cache of its maps (a probe checkpoint has none, and its fingerprint is unchanged).
TUNED = "tuned_weights_sha256"


@dataclass
class TrainedModel:
    backbone: Backbone
    heads: list[LinearHead | None]  # one per tap; the last is the classifier head (None: a user's model whose head
    # is not pooling + linear; its checkpoint holds the earlier taps' probes only)
    meta: dict[str, Any]
    path: Path

    @property
    def classes(self) -> tuple[str, ...]:
        """The class of each output of the head, in order."""
        return tuple(self.meta["classes"])

    @property
    def fingerprint(self) -> str:
        """Identity of everything that changes a map or a probability."""
        return identity_hash(self.meta, 16)


def identity_hash(meta: dict[str, Any], length: int) -> str:
    fields = {k: meta[k] for k in IDENTITY}
    if meta.get(TUNED):
        fields[TUNED] = meta[TUNED]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:length]


def checkpoint_path(weights_dir: Path, backbone: str, classes: tuple[str, ...] = DEFAULT_CLASSES, *,
                    recipe: str = "probe") -> Path:
    """catdog-<backbone>.pt for cat and dog; k<K>-<first 8 hex of the class list's hash>-<backbone>.pt otherwise,
    so that models of other classes never replace each other's checkpoint (manifest.FITTED knows both forms); a
    tuned network adds -<recipe> (catdog-<backbone>-finetune.pt), so that it and the probe are kept (and compared)
    side by side."""
    suffix = "" if recipe == "probe" else f"-{recipe}"
    if tuple(classes) == DEFAULT_CLASSES:
        return Path(weights_dir) / f"catdog-{backbone}{suffix}.pt"
    digest = hashlib.sha256(json.dumps(list(classes)).encode()).hexdigest()[:8]
    return Path(weights_dir) / f"k{len(classes)}-{digest}-{backbone}{suffix}.pt"


def expected_meta(backbone: Backbone, settings: Settings, data_key: str, classes: tuple[str, ...]) -> dict[str, Any]:
    """What a checkpoint for this backbone, these settings, these classes and this training data must record."""
    return {
        "backbone": backbone.name,
        "backbone_weights_file": backbone.weights_file,
        "backbone_weights_sha256": backbone.weights_sha256,
        "classes": list(classes),
        "input_size": settings.input_size,
        "mean": list(backbone.mean),
        "std": list(backbone.std),
        "taps": list(backbone.taps),
        "data_key": data_key,
        "recipe": _probe_recipe(settings) if settings.recipe == "probe" else tuned_recipe(settings),
    }


def _probe_recipe(settings: Settings) -> dict[str, Any]:
    return {
        "method": "frozen ImageNet backbone; L2 logistic regression (L-BFGS) on globally pooled features, "
                  "one per tap",
        "weight_decay": settings.weight_decay,
        "hflip": settings.hflip,
        "seed": settings.seed,
        "resize": f"whole photo resized to {settings.input_size}x{settings.input_size}, bicubic",
    }


def tuned_recipe(settings: Settings) -> dict[str, Any]:
    """What a fine-tuned checkpoint was made with (generator/model/finetune.py reads its numbers from here)."""
    first = "the probe's head fitted first, then " if settings.recipe == "lp-ft" else ""
    return {
        "name": settings.recipe,
        "method": f"{first}the whole ImageNet network trained end to end with a new linear head on the globally "
                  "pooled last tap; AdamW, linear warm-up then cosine decay, random-resized-crop and mirror "
                  "augmentation, batch-norm statistics kept from ImageNet, early stopping on a seeded held-out "
                  "share of the training photos; the earlier taps' probes refitted on the tuned features",
        "epochs": settings.finetune_epochs,
        "lr_head": settings.finetune_lr,
        "lr_backbone": settings.finetune_backbone_lr,
        "batch": settings.finetune_batch,
        "holdout": settings.finetune_holdout,
        "patience": settings.finetune_patience,
        "adamw_weight_decay": 0.01,
        "warmup_share": 0.1,
        "crop_scale": [0.35, 1.0],
        "weight_decay": settings.weight_decay,
        "hflip": settings.hflip,
        "seed": settings.seed,
        "resize": f"whole photo resized to {settings.input_size}x{settings.input_size}, bicubic",
    }


def save_checkpoint(path: Path, heads: list[LinearHead], meta: dict[str, Any],
                    tuned: dict[str, torch.Tensor] | None = None) -> None:
    """Written whole or not at all (temporary file, fsync, rename). `tuned`: a fine-tuned network's state dict."""
    blob = {
        "format": CHECKPOINT_FORMAT,
        "meta_json": json.dumps(meta, sort_keys=True),
        "heads": [{"weight": h.weight.detach().cpu().contiguous(), "bias": h.bias.detach().cpu().contiguous()}
                  for h in heads],
    }
    if tuned is not None:
        blob["tuned_state"] = {k: v.detach().cpu().contiguous() for k, v in tuned.items()}
    buf = io.BytesIO()
    torch.save(blob, buf)
    write_bytes(path, buf.getvalue(), durable=True)


def read_checkpoint(path: Path) -> tuple[list[LinearHead], dict[str, Any]]:
    """Load with weights_only=True (no code in a checkpoint ever runs). Raises WeightsError naming the file
    for anything that is not a complete checkpoint written by this generator."""
    what = f"not a checkpoint written by this generator (format {CHECKPOINT_FORMAT})"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: damaged, truncated or {what} ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT or "meta_json" not in blob:
        raise WeightsError(f"{path}: {what}")
    try:
        meta = json.loads(blob["meta_json"])
        heads = [LinearHead(weight=h["weight"].float(), bias=h["bias"].float()) for h in blob["heads"]]
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise WeightsError(f"{path}: checkpoint is incomplete ({type(exc).__name__}: {exc})") from exc
    if not isinstance(meta, dict):
        raise WeightsError(f"{path}: checkpoint metadata is not a table of settings")
    missing = [k for k in IDENTITY if k not in meta]
    if missing:
        raise WeightsError(f"{path}: checkpoint metadata lacks {', '.join(missing)}")
    if not heads and not (meta.get("recipe") or {}).get("no_cam"):
        raise WeightsError(f"{path}: checkpoint holds no heads")
    return heads, meta


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """Identity of a network's weights: every tensor's name, dtype, shape and bytes, in order."""
    h = hashlib.sha256()
    for k, v in state.items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_tuned(path: Path, backbone: Backbone, meta: dict[str, Any]) -> None:
    """Put a fine-tuned checkpoint's network weights into backbone.model (a no-op for a probe checkpoint). Raises
    WeightsError naming the file when they are missing, do not fit, or differ from the hash the metadata records."""
    if not meta.get(TUNED):
        return
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        state = blob["tuned_state"]
        if state_sha256(state) != meta[TUNED]:
            raise WeightsError(f"{path}: the tuned network's weights do not match the hash the checkpoint records; "
                               "delete it and build again.")
        backbone.model.load_state_dict(state, strict=True)
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"{path}: the tuned network's weights are missing or do not fit {backbone.name} "
                           f"({type(exc).__name__}); delete it and build again.") from None


def check_heads(path: Path, heads: list[LinearHead], backbone: Backbone, classes: tuple[str, ...],
                meta: dict[str, Any] | None = None) -> None:
    """The heads fit this backbone and these classes (shapes, finite values), and, given the metadata,
    it names the same backbone and classes. Raises WeightsError naming the file otherwise."""
    if meta is not None:
        if meta.get("backbone") != backbone.name:
            raise WeightsError(f"{path}: made for backbone {meta.get('backbone')!r}, not {backbone.name!r}")
        made = list(meta.get("classes", []))
        if made != list(classes):
            raise WeightsError(f"{path}: made for {len(made)} classes ({_listed(made)}), not for the "
                               f"{len(classes)} of this training set ({_listed(classes)})")
    channels = backbone.channels
    if not backbone.imagenet and backbone.head is None:  # a user's model without a linear head: the probes only
        channels = channels[:-1]
    if len(heads) != len(channels):
        raise WeightsError(f"{path}: has {len(heads)} heads, {backbone.name} has {len(channels)} taps")
    for t, (h, c) in enumerate(zip(heads, channels)):
        if tuple(h.weight.shape) != (len(classes), c) or tuple(h.bias.shape) != (len(classes),):
            raise WeightsError(
                f"{path}: head {t} has shape {tuple(h.weight.shape)}, expected {(len(classes), c)}"
            )
        if not (torch.isfinite(h.weight).all() and torch.isfinite(h.bias).all()):
            raise WeightsError(f"{path}: head {t} holds NaN or infinite weights")


def _listed(names, most: int = 5) -> str:
    """'a, b, c' or 'a, b, c, d, e and 32 more'."""
    names = [str(n) for n in names]
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def mismatch(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Names of the identity fields that differ between a checkpoint and what this run needs."""
    return [k for k in IDENTITY if stored.get(k) != wanted[k]]


def load_matching(path: Path, backbone: Backbone, wanted: dict[str, Any],
                  log=print) -> tuple[list[LinearHead], dict[str, Any]] | None:
    """The checkpoint at `path` if it exists, is sound and was made for exactly `wanted`; else None (and a log
    line saying why it will be replaced)."""
    if not path.exists():
        return None
    try:
        heads, meta = read_checkpoint(path)
        check_heads(path, heads, backbone, tuple(wanted["classes"]), meta)
    except WeightsError as exc:
        if not _written_here(path):  # a build never overwrites a file it did not write
            raise WeightsError(f"{exc}; a build never overwrites a file it did not write, so move that file away "
                               "or choose another --weights-dir.") from None
        log(f"{exc}; retraining and replacing it.")
        return None
    diff = mismatch(meta, wanted)
    if diff:
        log(f"{path}: made for other {', '.join(diff)}; retraining and replacing it.")
        return None
    return heads, meta


def _written_here(path: Path) -> bool:
    """Whether the file is a checkpoint this generator wrote (of any format, whole or not as expected): a dict with
    its two keys. Anything else at the checkpoint's path (damaged, or someone else's file) is not replaced."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(blob, dict) and "format" in blob and "meta_json" in blob


def antisymmetry(heads: list[LinearHead | None]) -> list[float]:
    """Per head, the largest |w_0 + w_1| and |b_0 + b_1| relative to the largest |w|: 0 means the two class maps
    are exact mirror images (CAM_1 = -CAM_0). A two-class L2 logistic regression fitted from zero has this.
    inf for more classes, and where there is no linear head."""
    out = []
    for h in heads:
        if h is None or h.weight.shape[0] != 2:
            out.append(float("inf"))
            continue
        scale = float(h.weight.abs().max()) or 1.0
        dev = max(float((h.weight[0] + h.weight[1]).abs().max()), float((h.bias[0] + h.bias[1]).abs()))
        out.append(dev / scale)
    return out
