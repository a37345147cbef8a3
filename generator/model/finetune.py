"""Fine-tune the whole network end to end (setting recipe finetune or lp-ft), as the original post did.

The recipe (its numbers are recorded in the checkpoint, generator/model/checkpoint.py `tuned_recipe`):
- the pretrained network up to its last tap, globally average-pooled, and a new linear head (with lp-ft, the head
  starts as the probe's logistic regression; Kumar et al., ICLR 2022: fitting the head first keeps the early
  steps from distorting the pretrained features);
- AdamW, a lower peak rate for the network than for the head, linear warm-up then cosine decay, step by step;
- augmentation by torchvision.transforms.v2 (random-resized-crop, mirror) on the decoded network inputs;
- batch-norm statistics and dropout stay as the pretrained network has them (the network runs in eval mode while
  its weights train): batches of a few dozen photos give noisy statistics, and eval mode makes a run repeatable;
- early stopping on a seeded held-out share of the training photos (never the test photos); the weights of the
  epoch with the lowest held-out loss are kept;
- bf16 autocast where the runtime has it on; on CPU deterministic for a seed: data order and augmentation are drawn
  from (seed, epoch), so a run resumed after its last finished epoch ends with the weights of an unbroken run.

After every epoch the whole training state is written atomically to <cache>/finetune/, so a run stopped by
Ctrl-C or a kill resumes from its last finished epoch; the file is deleted once the checkpoint is saved.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from generator.files import write_bytes
from generator.model.heads import LinearHead
from generator.model.runtime import Runtime
from generator.pause import pause_at

STATE_FORMAT = 1


@dataclass(frozen=True)
class Plan:
    """The numbers of one fine-tuning run (from the checkpoint's recipe)."""

    epochs: int
    lr_head: float
    lr_backbone: float
    batch: int
    holdout: float
    patience: int
    seed: int
    adamw_weight_decay: float = 0.01
    warmup_share: float = 0.1
    crop_scale: tuple[float, float] = (0.35, 1.0)

    @classmethod
    def of(cls, recipe: dict[str, Any]) -> Plan:
        return cls(epochs=int(recipe["epochs"]), lr_head=float(recipe["lr_head"]),
                   lr_backbone=float(recipe["lr_backbone"]), batch=int(recipe["batch"]),
                   holdout=float(recipe["holdout"]), patience=int(recipe["patience"]), seed=int(recipe["seed"]),
                   adamw_weight_decay=float(recipe["adamw_weight_decay"]),
                   warmup_share=float(recipe["warmup_share"]), crop_scale=tuple(recipe["crop_scale"]))


@dataclass
class TuneResult:
    head: LinearHead  # the tuned head over the last tap's pooled channels
    state: dict[str, torch.Tensor]  # the tuned network's state dict (the weights the checkpoint keeps)
    curve: list[dict[str, float]]  # per epoch: train_loss, train_accuracy, heldout_loss, heldout_accuracy, seconds
    best_epoch: int  # 1-based
    n_train: int
    n_heldout: int
    resumed_from: int = 0  # epochs found finished in the cache
    seconds: float = 0.0  # training time of this process
    images_per_s: float = 0.0  # training images per second (augmented forward + backward + step) in this process
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class PooledHead(nn.Module):
    """The network read at its last tap, globally average-pooled, then a linear head: what CAM reads as a class
    map. The network's own classifier also runs (its output is unused; it costs one small matrix product)."""

    def __init__(self, net: nn.Module, last_tap: str, channels: int, n_classes: int,
                 head_init: LinearHead | None = None) -> None:
        super().__init__()
        self.net = net
        self.head = nn.Linear(channels, n_classes)
        self._tap = (dict(net.named_modules())[last_tap],)  # a tuple: not registered as a second child
        # From zero (or from the probe, itself fitted from zero): with two classes the gradients of the two rows
        # are opposite, so the head stays antisymmetric (w_dog = -w_cat) as the probe's is, and the map of one
        # class stays the mirror image of the other's, as the pages say.
        with torch.no_grad():
            self.head.weight.copy_(head_init.weight if head_init is not None else torch.zeros(n_classes, channels))
            self.head.bias.copy_(head_init.bias if head_init is not None else torch.zeros(n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        store: dict[str, torch.Tensor] = {}
        handle = self._tap[0].register_forward_hook(lambda _m, _i, out: store.__setitem__("f", out))
        try:
            self.net(x)
        finally:
            handle.remove()
        return self.head(store["f"].float().mean(dim=(2, 3)))


def holdout_split(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Mask of the held-out photos: `share` of each class, at least one of a class with two or more photos and
    never all of them, drawn with the seed."""
    rng = np.random.default_rng([seed, 22])
    held = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        n = min(max(int(round(share * len(idx))), 1), len(idx) - 1) if len(idx) >= 2 else 0
        held[rng.permutation(idx)[:n]] = True
    return held


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps to 1, then cosine decay to 0 at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def _seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch]).integers(0, 2**31 - 1))


def augmenter(size: int, scale: tuple[float, float]):
    """torchvision.transforms.v2: random-resized-crop back to the input size and a random mirror, on uint8 CHW."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip()])


def normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], runtime: Runtime) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> float32 normalised for the network, on the runtime's device and memory format."""
    x = x.to(runtime.device).float().div_(255)
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    x = (x - m) / s
    return x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x.contiguous()


@contextmanager
def deterministic(on: bool):
    """torch.use_deterministic_algorithms for the block (warn only where an operation has no deterministic form)."""
    before, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if on:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn)


def state_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _load_state(path: Path, key: str) -> dict[str, Any] | None:
    """The epoch state of this run (same key), or None if there is none or it is damaged (started afresh)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not (isinstance(blob, dict) and blob.get("format") == STATE_FORMAT and blob.get("key") == key):
        return None
    return blob


def _save_state(path: Path, blob: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(blob, buf)
    write_bytes(path, buf.getvalue(), durable=True)  # whole or not at all: a kill keeps the previous epoch


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int, mean, std,
             runtime: Runtime) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on un-augmented photos ((nan, nan) for none)."""
    if len(labels) == 0:
        return float("nan"), float("nan")
    loss = correct = 0.0
    with torch.autocast(runtime.device, dtype=torch.bfloat16, enabled=runtime.autocast):
        for i in range(0, len(labels), batch):
            logits = model(normalise(images[i:i + batch], mean, std, runtime)).float()
            y = labels[i:i + batch].to(logits.device)
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += float((logits.argmax(1) == y).sum())
    return loss / len(labels), correct / len(labels)


def finetune(net: nn.Module, last_tap: str, channels: int, images: np.ndarray, labels: np.ndarray, plan: Plan,
             runtime: Runtime, mean, std, state_path: Path, key: str, head_init: LinearHead | None = None,
             n_classes: int = 2, log: Callable[[str], None] = print, progress: bool = True) -> TuneResult:
    """Train `net` (in place; it ends with the best epoch's weights) and a linear head on its pooled last tap.

    images: (N, H, W, 3) uint8 network inputs; labels: (N,) class indices. The epoch state goes to state_path
    under `key` (the identity of this run: a different key starts afresh)."""
    from tqdm import tqdm

    runtime.prepare(net)
    model = PooledHead(net, last_tap, channels, n_classes, head_init).to(runtime.device)
    model.eval()  # batch-norm statistics and dropout as pretrained (see the module's docstring)
    held = holdout_split(labels, plan.holdout, plan.seed)
    all_x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # uint8 CHW views, no copy
    all_y = torch.as_tensor(labels, dtype=torch.long)
    x_tr, y_tr, x_ho, y_ho = all_x[~held], all_y[~held], all_x[held], all_y[held]
    n = len(y_tr)
    steps_per_epoch = max(1, math.ceil(n / plan.batch))
    total = steps_per_epoch * plan.epochs
    warmup = max(1, round(plan.warmup_share * total))
    head_params = list(model.head.parameters())
    net_params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": net_params, "lr": plan.lr_backbone},
                             {"params": head_params, "lr": plan.lr_head}], weight_decay=plan.adamw_weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup))
    aug = augmenter(int(images.shape[1]), plan.crop_scale)

    curve: list[dict[str, float]] = []
    best_loss, best_epoch, bad, best_state, done = math.inf, 0, 0, None, False
    start, previous = 0, None
    saved = _load_state(state_path, key)
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        curve, best_loss, best_epoch, bad = list(saved["curve"]), float(saved["best_loss"]), \
            int(saved["best_epoch"]), int(saved["bad"])
        best_state, done, start = saved["best"], bool(saved["done"]), int(saved["epoch"])
        previous = saved["model"]
        log(f"fine-tuning resumes after epoch {start} of {plan.epochs} (from {state_path})")

    trained_images, train_seconds = 0, 0.0
    with deterministic(runtime.device == "cpu"):
        for epoch in range(start, plan.epochs):
            if done:
                break
            began = time.perf_counter()
            torch.manual_seed(_seed(plan.seed, epoch))  # the augmentation's draws
            order = np.random.default_rng([plan.seed, epoch, 1]).permutation(n)
            seen = correct = 0
            loss_sum = 0.0
            bar = tqdm(total=n, desc=f"fine-tune epoch {epoch + 1}/{plan.epochs}", unit="photo",
                       disable=not progress, mininterval=2)
            with torch.autocast(runtime.device, dtype=torch.bfloat16, enabled=runtime.autocast):
                for b in range(steps_per_epoch):
                    idx = torch.from_numpy(order[b * plan.batch:(b + 1) * plan.batch])
                    x = torch.stack([aug(x_tr[i]) for i in idx.tolist()])
                    y = y_tr[idx].to(runtime.device)
                    logits = model(normalise(x, mean, std, runtime)).float()
                    loss = nn.functional.cross_entropy(logits, y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    seen += len(y)
                    loss_sum += float(loss.detach()) * len(y)
                    correct += int((logits.detach().argmax(1) == y).sum())
                    bar.update(len(y))
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", accuracy=f"{correct / seen:.3f}", refresh=False)
                    if epoch > 0 and b == 0:
                        pause_at("finetuning")  # test hook: an epoch is kept on disk, the next one is under way
            bar.close()
            spent = time.perf_counter() - began
            trained_images += seen
            train_seconds += spent
            ho_loss, ho_acc = evaluate(model, x_ho, y_ho, max(plan.batch, 32), mean, std, runtime)
            curve.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                          "heldout_loss": ho_loss, "heldout_accuracy": ho_acc,
                          "seconds": time.perf_counter() - began})
            # without held-out photos the last epoch counts as the best
            if not math.isfinite(ho_loss) or ho_loss < best_loss - 1e-6:
                best_loss = ho_loss if math.isfinite(ho_loss) else best_loss
                best_epoch, bad, best_state = epoch + 1, 0, None  # None: the current weights are the best
            else:
                bad += 1
                if best_state is None:  # the previous epoch was the best: keep its weights
                    best_state = previous
            done = bad >= plan.patience or epoch + 1 == plan.epochs
            left = (plan.epochs - epoch - 1) * (time.perf_counter() - began) if not done else 0.0
            log(f"epoch {epoch + 1}/{plan.epochs}: training loss {loss_sum / seen:.4f}, accuracy "
                f"{correct / seen:.1%} ({seen} augmented photos); held-out loss {ho_loss:.4f}, accuracy "
                f"{ho_acc:.1%} ({len(y_ho)} photos); {spent:.0f} s"
                + (f", about {left:.0f} s left" if left else "")
                + ("; stopping early: the held-out loss did not improve" if done and epoch + 1 < plan.epochs
                   else ""))
            previous = copy.deepcopy(model.state_dict())
            _save_state(state_path, {"format": STATE_FORMAT, "key": key, "epoch": epoch + 1,
                                     "model": previous, "optimizer": opt.state_dict(),
                                     "scheduler": sched.state_dict(), "curve": curve, "best_loss": best_loss,
                                     "best_epoch": best_epoch, "bad": bad, "best": best_state, "done": done})
    if best_state is not None:
        model.load_state_dict(best_state)
    stopped = bool(curve) and len(curve) < plan.epochs
    head = LinearHead(weight=model.head.weight.detach().float().cpu().clone(),
                      bias=model.head.bias.detach().float().cpu().clone())
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return TuneResult(head=head, state=state, curve=curve, best_epoch=best_epoch, n_train=n, n_heldout=len(y_ho),
                      resumed_from=start, seconds=train_seconds,
                      images_per_s=trained_images / train_seconds if train_seconds else 0.0, stopped_early=stopped)


def decode_all(paths: list[str], input_size: int, max_pixels: int, pool) -> tuple[np.ndarray, list[str]]:
    """Every training photo decoded once to its network input: (N_ok, S, S, 3) uint8, and each photo's status."""
    from generator.data.workers import decode_for_model, decoded_in_chunks

    arrays, statuses = [], []
    for arr, status in decoded_in_chunks(pool, decode_for_model, ((p, input_size, max_pixels) for p in paths)):
        statuses.append(status)
        if arr is not None:
            arrays.append(arr)
    empty = np.zeros((0, input_size, input_size, 3), np.uint8)
    return (np.stack(arrays) if arrays else empty), statuses


def state_path(cache_dir: Path, backbone: str, key: str) -> Path:
    return Path(cache_dir) / "finetune" / f"{backbone}-{key}.pt"
