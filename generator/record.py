"""The per-photo record: everything the explainer computes for one photo, self-contained, to and from .npz.

Shapes: K classes, T taps, tap t of H_t x W_t positions. Maps are raw (not scaled) and stored as float16.
Names of maps inside the file and in the site's data are made here and only here (`map_key`).
This module imports no torch: pages and the "template changed" rerun read records without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RECORD_VERSION = 3  # bump when what a record holds changes


def map_key(method: str, tap: int, cls: int | None = None) -> str:
    """'cam/3/0' (per-class methods) or 'gradcam/3': the name of one map in a record and in page data."""
    return f"{method}/{tap}" if cls is None else f"{method}/{tap}/{cls}"


@dataclass
class PhotoRecord:
    width: int  # upright size of the original photo, pixels
    height: int
    logits: np.ndarray  # (K,) float32, the classifier head
    probe_logits: np.ndarray  # (T, K) float32, each tap's probe (the last row equals logits)
    imagenet_top: np.ndarray  # (3,) int64, the backbone's own ImageNet classes, most probable first
    imagenet_top_p: np.ndarray  # (3,) float32, their probabilities
    pet_p: float  # summed ImageNet probability of the 123 cat and dog classes
    energy: float  # -logsumexp of the ImageNet logits
    # method -> T entries, each (H_t, W_t) or (K, H_t, W_t) for per-class methods, or None (no map at that tap)
    maps: dict[str, list[np.ndarray | None]] = field(default_factory=dict)

    @property
    def probs(self) -> np.ndarray:
        z = self.logits.astype(np.float64) - float(self.logits.max())
        e = np.exp(z)
        return (e / e.sum()).astype(np.float32)

    @property
    def pred(self) -> int:
        return int(np.argmax(self.logits))

    def cam(self, tap: int = -1) -> np.ndarray:
        """The CAM of every class at a tap, (K, H, W) float32."""
        return np.asarray(self.maps["cam"][tap], dtype=np.float32)

    def to_npz(self) -> dict[str, np.ndarray]:
        out = {
            "version": np.array(RECORD_VERSION),
            "size": np.array([self.width, self.height], dtype=np.int64),
            "logits": np.asarray(self.logits, np.float32),
            "probe_logits": np.asarray(self.probe_logits, np.float32),
            "imagenet_top": np.asarray(self.imagenet_top, np.int64),
            "imagenet_top_p": np.asarray(self.imagenet_top_p, np.float32),
            "ood": np.array([self.pet_p, self.energy], dtype=np.float64),
        }
        for method, per_tap in self.maps.items():
            for t, m in enumerate(per_tap):
                if m is not None:
                    out["map/" + map_key(method, t)] = np.asarray(m, np.float16)
        return out

    @classmethod
    def from_npz(cls, z: dict[str, np.ndarray], n_taps: int) -> PhotoRecord | None:
        """The record, or None when the arrays are of another version or incomplete (recomputed, never trusted)."""
        need = ("version", "size", "logits", "probe_logits", "imagenet_top", "imagenet_top_p", "ood")
        if any(k not in z for k in need) or int(z["version"]) != RECORD_VERSION:
            return None
        maps: dict[str, list[np.ndarray | None]] = {}
        for key, arr in z.items():
            if key.startswith("map/"):
                method, tap = key[4:].split("/")
                maps.setdefault(method, [None] * n_taps)[int(tap)] = arr
        if "cam" not in maps or any(m is None for m in maps["cam"]):
            return None
        w, h = (int(v) for v in z["size"])
        pet_p, energy = (float(v) for v in z["ood"])
        return cls(w, h, z["logits"], z["probe_logits"], z["imagenet_top"], z["imagenet_top_p"], pet_p, energy, maps)

    def methods(self) -> tuple[str, ...]:
        return tuple(self.maps)
