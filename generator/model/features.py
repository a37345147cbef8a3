"""Pooled features of the training photos at every tap, from the frozen (or fine-tuned) backbone, cached by content."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from generator.config import Settings
from generator.files import write_bytes
from generator.model.backbones import Backbone
from generator.model.ood import energy, pet_probability
from generator.model.runtime import Runtime
from generator.model.taps import recording


@dataclass
class TrainingFeatures:
    """T arrays (N_ok, C_t) for the readable photos, the decode status of every photo, T arrays for the mirror
    images (None unless fitted with mirrored copies), and each readable photo's summed cat+dog probability and
    energy score under the backbone's ImageNet head (N_ok,), for the "neither" thresholds. logits: a user's own
    classifier's output (N_ok, K), its own predictions (None for an ImageNet backbone)."""

    feats: list[np.ndarray]
    statuses: list[str]
    mirror: list[np.ndarray] | None
    pet_p: np.ndarray
    energy: np.ndarray
    logits: np.ndarray | None = None

    @property
    def ok(self) -> np.ndarray:
        return np.array([s == "ok" for s in self.statuses], dtype=bool)


@torch.inference_mode()
def pooled_features(backbone: Backbone, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Global-average-pooled features at every tap, T x (B, C_t) float32, and the (B, 1000) ImageNet logits
    (autocast as the caller set it)."""
    with recording(backbone.model, backbone.taps) as store:
        imagenet_logits = backbone.model(x)
        return [store[t].float().mean(dim=(2, 3)) for t in backbone.taps], imagenet_logits.float()


def extract(backbone: Backbone, paths: list[str], settings: Settings, pool, runtime: Runtime,
            progress: bool = True) -> TrainingFeatures:
    """One decode and one forward pass per photo (and its mirror image when hflip), in batches.

    Photos that fail to decode get a skip status and no feature row.
    """
    from tqdm import tqdm

    from generator.data.workers import HeapTrimmer, decode_for_model, decoded_in_chunks

    runtime.prepare(backbone.model)
    statuses: list[str] = []
    feats: list[list[np.ndarray]] = [[] for _ in backbone.taps]
    flipped: list[list[np.ndarray]] = [[] for _ in backbone.taps]
    pet_p: list[np.ndarray] = []
    energies: list[np.ndarray] = []
    own_logits: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    trim = HeapTrimmer()

    def flush() -> None:
        trim()
        x = backbone.to_input(np.stack(batch), runtime.channels_last, runtime.device)
        if settings.hflip:
            x = torch.cat([x, x.flip(3)])
        n = len(batch)
        taps, imagenet_logits = pooled_features(backbone, x)
        if backbone.imagenet:
            pet_p.append(pet_probability(imagenet_logits[:n]).cpu().numpy())
        else:  # a user's own classifier: no ImageNet head, so no cat+dog probability; the energy of its own logits
            pet_p.append(np.full(n, np.nan, np.float32))
            own_logits.append(imagenet_logits[:n].cpu().numpy())
        energies.append(energy(imagenet_logits[:n]).cpu().numpy())
        for t, f in enumerate(taps):
            f = f.cpu().numpy()
            feats[t].append(f[:n])
            if settings.hflip:
                flipped[t].append(f[n:])
        batch.clear()

    jobs = ((p, settings.input_size, settings.max_pixels) for p in paths)
    stream = decoded_in_chunks(pool, decode_for_model, jobs)
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
    empty = np.zeros(0, np.float32)
    logits = None
    if not backbone.imagenet:
        logits = np.concatenate(own_logits) if own_logits else np.zeros((0, 0), np.float32)
    return TrainingFeatures(stack, statuses, mirror, np.concatenate(pet_p) if pet_p else empty,
                            np.concatenate(energies) if energies else empty, logits)


class FeatureCache:
    """Training features on disk, keyed by what they depend on: the backbone and its weights, the input size and
    normalization, the training files (names and contents) and whether mirror images were added. The head's
    recipe (weight decay, seed) is not part of the key: refitting reuses the features."""

    def __init__(self, cache_dir: Path, backbone: Backbone, settings: Settings, data_key: str,
                 tuned_sha256: str | None = None) -> None:
        """tuned_sha256: the fine-tuned network's weights, when the features are a tuned network's."""
        key = {"backbone": backbone.name, "weights": backbone.weights_sha256, "input_size": settings.input_size,
               "mean": list(backbone.mean), "std": list(backbone.std), "data_key": data_key,
               "hflip": settings.hflip}
        if tuned_sha256:
            key["tuned"] = tuned_sha256
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        self.path = Path(cache_dir) / "features" / f"{backbone.name}-{digest}.pt"
        self.own = not backbone.imagenet  # a user's classifier: its own logits are kept too

    def load(self, n_photos: int) -> TrainingFeatures | None:
        """The cached features for these n_photos photos, or None if missing or damaged."""
        try:
            blob = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # missing or damaged: recomputed
            return None
        if not (isinstance(blob, dict) and {"feats", "statuses", "mirror", "pet_p", "energy"} <= set(blob)
                and len(blob["statuses"]) == n_photos) or (self.own and "logits" not in blob):
            return None
        return TrainingFeatures([f.numpy() for f in blob["feats"]], list(blob["statuses"]),
                                [f.numpy() for f in blob["mirror"]] or None, blob["pet_p"].numpy(),
                                blob["energy"].numpy(), blob["logits"].numpy() if "logits" in blob else None)

    def save(self, tf: TrainingFeatures) -> None:
        blob = {"feats": [torch.from_numpy(f) for f in tf.feats], "statuses": tf.statuses,
                "mirror": [torch.from_numpy(f) for f in tf.mirror] if tf.mirror is not None else [],
                "pet_p": torch.from_numpy(tf.pet_p), "energy": torch.from_numpy(tf.energy)}
        if tf.logits is not None:
            blob["logits"] = torch.from_numpy(tf.logits)
        buf = io.BytesIO()
        torch.save(blob, buf)
        write_bytes(self.path, buf.getvalue())
