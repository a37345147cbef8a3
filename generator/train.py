"""Fit the cat/dog head and the per-tap probes on pooled features of the frozen backbone; checkpoint I/O.

Recipe: the ImageNet backbone stays frozen; each tap's feature map is globally average-pooled and a
multinomial logistic regression (L2-penalised, full-batch L-BFGS, float64, deterministic) is fitted on it.
The last tap's regression is the classifier head; the others are the probes that give earlier stages a CAM.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbones import Backbone, WeightsError
from .cam import LinearHead, recording
from .datasets import CLASSES

CHECKPOINT_FORMAT = 1


@dataclass
class TrainedModel:
    backbone: Backbone
    heads: list[LinearHead]  # one per tap; the last is the classifier head
    meta: dict[str, Any]
    path: Path

    @property
    def fingerprint(self) -> str:
        """Identity of everything that changes a map or a probability."""
        return hashlib.sha256(json.dumps(fingerprint_fields(self.meta), sort_keys=True).encode()).hexdigest()[:16]


def fingerprint_fields(meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("backbone", "backbone_weights_sha256", "classes", "input_size", "mean", "std", "data_key", "recipe")
    return {k: meta[k] for k in keys}


def to_input(batch: np.ndarray, backbone: Backbone, channels_last: bool, device: str = "cpu") -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float normalized for the backbone."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(backbone.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std, device=device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


@torch.inference_mode()
def pooled_features(backbone: Backbone, x: torch.Tensor, autocast: bool) -> list[torch.Tensor]:
    """Global-average-pooled features at every tap, T x (B, C_t), float32."""
    with recording(backbone.model, backbone.taps) as store:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            backbone.model(x)
        return [store[t].float().mean(dim=(2, 3)) for t in backbone.taps]


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float) -> LinearHead:
    """Multinomial logistic regression, full batch L-BFGS in float64: deterministic for given data.

    Minimises mean cross-entropy + weight_decay/2 * ||W||^2 (the bias is not penalised).
    """
    X = torch.as_tensor(x, dtype=torch.float64)
    Y = torch.as_tensor(y, dtype=torch.long)
    W = torch.zeros(n_classes, X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(X @ W.T + b, Y) + 0.5 * weight_decay * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LinearHead(weight=W.detach().float(), bias=b.detach().float())


def predict(head: LinearHead, x: np.ndarray) -> np.ndarray:
    return (torch.as_tensor(x, dtype=torch.float32) @ head.weight.T + head.bias).argmax(1).numpy()


def cross_validated_accuracy(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float,
                             folds: int, seed: int, groups: np.ndarray | None = None) -> float:
    """k-fold accuracy; `groups` keeps the mirrored copy of a photo in the same fold as the photo."""
    groups = np.arange(len(y)) if groups is None else groups
    unique = np.unique(groups)
    order = np.random.default_rng(seed).permutation(unique)
    fold_of = {g: i % folds for i, g in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    correct = 0
    total = 0
    for k in range(folds):
        tr, te = fold != k, fold == k
        head = fit_logistic(x[tr], y[tr], n_classes, weight_decay)
        correct += int((predict(head, x[te]) == y[te]).sum())
        total += int(te.sum())
    return correct / max(total, 1)


def checkpoint_path(weights_dir: Path, backbone: str) -> Path:
    return Path(weights_dir) / f"catdog-{backbone}.pt"


def save_checkpoint(path: Path, heads: list[LinearHead], meta: dict[str, Any]) -> None:
    """Written to a temporary file, flushed to disk and renamed: a killed run never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": CHECKPOINT_FORMAT,
        "meta_json": json.dumps(meta, sort_keys=True),
        "heads": [{"weight": h.weight.detach().cpu().contiguous(), "bias": h.bias.detach().cpu().contiguous()}
                  for h in heads],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(blob, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
    missing = [k for k in ("backbone", "backbone_weights_sha256", "classes", "input_size", "mean", "std",
                           "data_key", "recipe") if k not in meta]
    if missing:
        raise WeightsError(f"{path}: checkpoint metadata lacks {', '.join(missing)}")
    if not heads:
        raise WeightsError(f"{path}: checkpoint holds no heads")
    return heads, meta


def check_heads(path: Path, heads: list[LinearHead], backbone: Backbone, classes: tuple[str, ...],
                meta: dict[str, Any] | None = None) -> None:
    """The heads fit this backbone and these classes (shapes, finite values), and, given the metadata,
    it names the same backbone and classes. Raises WeightsError naming the file otherwise."""
    if meta is not None:
        if meta.get("backbone") != backbone.name:
            raise WeightsError(f"{path}: made for backbone {meta.get('backbone')!r}, not {backbone.name!r}")
        if list(meta.get("classes", [])) != list(classes):
            raise WeightsError(f"{path}: made for classes {meta.get('classes')!r}, not {list(classes)!r}")
    channels = backbone.channels
    if len(heads) != len(channels):
        raise WeightsError(f"{path}: has {len(heads)} heads, {backbone.name} has {len(channels)} taps")
    for t, (h, c) in enumerate(zip(heads, channels)):
        if tuple(h.weight.shape) != (len(classes), c) or tuple(h.bias.shape) != (len(classes),):
            raise WeightsError(
                f"{path}: head {t} has shape {tuple(h.weight.shape)}, expected {(len(classes), c)}"
            )
        if not (torch.isfinite(h.weight).all() and torch.isfinite(h.bias).all()):
            raise WeightsError(f"{path}: head {t} holds NaN or infinite weights")


def expected_meta(backbone: Backbone, settings, data_key: str) -> dict[str, Any]:
    return {
        "backbone": backbone.name,
        "backbone_weights_file": backbone.weights_file,
        "backbone_weights_sha256": backbone.weights_sha256,
        "classes": list(CLASSES),
        "input_size": settings.input_size,
        "mean": list(backbone.mean),
        "std": list(backbone.std),
        "taps": list(backbone.taps),
        "data_key": data_key,
        "recipe": {
            "method": "frozen ImageNet backbone; L2 logistic regression (L-BFGS) on globally pooled features, "
                      "one per tap",
            "weight_decay": settings.weight_decay,
            "hflip": settings.hflip,
            "seed": settings.seed,
            "resize": f"whole photo resized to {settings.input_size}x{settings.input_size}, bicubic",
        },
    }


def mismatch(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Names of the fields that differ between a checkpoint and what this run needs."""
    a, b = fingerprint_fields(stored), fingerprint_fields(wanted)
    return [k for k in a if a[k] != b[k]]


def extract_features(backbone: Backbone, paths: list[str], settings, pool, runtime,
                     progress: bool = True) -> tuple[list[np.ndarray], list[str], np.ndarray | None]:
    """Pooled features of every photo (and its mirror image when hflip), one forward pass per batch.

    Returns (T arrays of (N, C_t) for the photos, statuses per photo, T arrays for the mirrors or None).
    Photos that fail to decode get a skip status and no feature row.
    """
    from tqdm import tqdm

    from .workers import HeapTrimmer, bounded_imap, decode_for_model

    net = backbone.model.to(runtime.device)
    if runtime.channels_last:
        net = net.to(memory_format=torch.channels_last)
    statuses: list[str] = []
    feats: list[list[np.ndarray]] = [[] for _ in backbone.taps]
    flipped: list[list[np.ndarray]] = [[] for _ in backbone.taps]
    batch: list[np.ndarray] = []
    trim = HeapTrimmer()

    def flush() -> None:
        trim()
        x = to_input(np.stack(batch), backbone, runtime.channels_last, runtime.device)
        if settings.hflip:
            x = torch.cat([x, x.flip(3)])
        out = pooled_features(backbone, x, runtime.autocast)
        n = len(batch)
        for t, f in enumerate(out):
            f = f.cpu().numpy()
            feats[t].append(f[:n])
            if settings.hflip:
                flipped[t].append(f[n:])
        batch.clear()

    jobs = ((p, settings.input_size, settings.max_pixels) for p in paths)
    stream = bounded_imap(pool, decode_for_model, jobs, 4 * settings.batch_size)
    # One autocast region around all batches: bf16 copies of the weights are made once and reused. Per-batch
    # regions make new copies each time, and memory grew by ~0.5 GB per 1,000 photos that way (measured).
    with torch.autocast(runtime.device, dtype=torch.bfloat16, enabled=runtime.autocast):
        for arr, status in tqdm(stream, total=len(paths), desc="features", unit="photo", disable=not progress,
                                mininterval=2):
            statuses.append(status)
            if arr is not None:
                batch.append(arr)
                if len(batch) >= settings.batch_size:
                    flush()
        if batch:
            flush()
    stack = [np.concatenate(f) if f else np.zeros((0, 1), np.float32) for f in feats]
    mirror = [np.concatenate(f) for f in flipped] if settings.hflip and flipped[0] else None
    return stack, statuses, mirror


def train_or_load(backbone: Backbone, train_rows, settings, pool, runtime, log=print,
                  progress: bool = True) -> tuple[TrainedModel, dict[str, str], dict[str, np.ndarray]]:
    """Reuse weights/catdog-<backbone>.pt when it matches this data and recipe; otherwise fit and save it.

    `train_rows`: DataFrame of labeled, readable training files (columns set, file, path, label).
    Returns the model, a status per training path (skips found while decoding), and the training
    predictions (path -> class probabilities) for the results table.
    """
    from .datasets import file_sha256

    paths = list(train_rows["path"])
    labels = np.array([CLASSES.index(v) for v in train_rows["label"]])
    shas = [file_sha256(p) for p in paths]
    h = hashlib.sha256()
    for name, sha in zip(train_rows["file"], shas):
        h.update(f"{name}\0{sha}\n".encode("utf-8", "surrogateescape"))
    data_key = h.hexdigest()
    wanted = expected_meta(backbone, settings, data_key)
    path = checkpoint_path(settings.weights_dir, backbone.name)
    heads = None
    if path.exists():
        try:
            heads, meta = read_checkpoint(path)
            check_heads(path, heads, backbone, CLASSES, meta)
            diff = mismatch(meta, wanted)
            if diff:
                log(f"{path}: made for other {', '.join(diff)}; retraining and replacing it.")
                heads = None
        except (WeightsError, KeyError, TypeError) as exc:
            log(f"{exc}; retraining and replacing it.")
            heads = None

    fkey = hashlib.sha256(json.dumps(fingerprint_fields(wanted), sort_keys=True).encode()).hexdigest()[:20]
    fcache = Path(settings.cache_dir) / "features" / f"{backbone.name}-{fkey}.pt"
    cached = None
    if fcache.exists():
        try:
            cached = torch.load(fcache, map_location="cpu", weights_only=True)
        except Exception:  # damaged cache: recompute
            cached = None
        if not (isinstance(cached, dict) and {"feats", "statuses", "mirror"} <= set(cached)
                and len(cached["statuses"]) == len(paths)):
            cached = None
    if cached is None:
        mirrors = ", and their mirror images" if settings.hflip else ""
        log(f"extracting training features ({len(paths)} photos{mirrors})")
        feats, statuses, mirror = extract_features(backbone, paths, settings, pool, runtime, progress)
        cached = {"feats": [torch.from_numpy(f) for f in feats], "statuses": statuses,
                  "mirror": [torch.from_numpy(f) for f in mirror] if mirror is not None else []}
        fcache.parent.mkdir(parents=True, exist_ok=True)
        tmp = fcache.with_name(f".{fcache.name}.{os.getpid()}.tmp")
        torch.save(cached, tmp)
        os.replace(tmp, fcache)
    statuses = list(cached["statuses"])
    ok = np.array([s == "ok" for s in statuses])
    feats = [f.numpy() for f in cached["feats"]]
    mirror = [f.numpy() for f in cached["mirror"]] or None
    y = labels[ok]
    if len(set(y.tolist())) < len(CLASSES):
        raise ValueError("the training set needs readable photos of both classes (data/train/cats and dogs)")

    if heads is None:
        log(f"fitting the head and {len(backbone.taps) - 1} probes on {int(ok.sum())} photos")
        x_all = [np.concatenate([f, m]) for f, m in zip(feats, mirror)] if mirror else feats
        y_all = np.concatenate([y, y]) if mirror else y
        groups = np.concatenate([np.arange(len(y))] * (2 if mirror else 1))
        heads, scores = [], {}
        last = len(x_all) - 1
        for t, x in enumerate(x_all):
            heads.append(fit_logistic(x, y_all, len(CLASSES), settings.weight_decay))
            scores[f"tap{t}_train_accuracy"] = float((predict(heads[-1], feats[t]) == y).mean())
        # Cross-validate the head only: the probes' accuracy is measured on every labeled set instead.
        scores[f"tap{last}_cv5_accuracy"] = cross_validated_accuracy(
            x_all[last], y_all, len(CLASSES), settings.weight_decay, 5, settings.seed, groups)
        meta = dict(wanted, scores=scores, n_train=int(ok.sum()))
        save_checkpoint(path, heads, meta)
        log(f"saved {path} (5-fold accuracy of the head: {scores[f'tap{len(heads) - 1}_cv5_accuracy']:.4f})")
    model = TrainedModel(backbone=backbone, heads=heads, meta=meta, path=path)
    probs = torch.softmax(torch.as_tensor(feats[-1]) @ heads[-1].weight.T + heads[-1].bias, 1).numpy()
    ok_paths = [p for p, good in zip(paths, ok) if good]
    return model, dict(zip(paths, statuses)), dict(zip(ok_paths, probs))
