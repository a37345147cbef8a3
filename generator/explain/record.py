"""The per-photo record: everything the explainer computes for one photo, self-contained, to and from .npz.

Shapes: K classes, T taps, tap t of H_t x W_t positions. Maps are raw (not scaled) and stored as float16 times a
power of two of their own (`to_half`): Grad-CAM++ can exceed float16's 65,504 and a Grad-CAM at an early stage can
sit near its 6e-5 floor, where plain float16 overflows or keeps no precision.
Names of maps inside the file and in the site's data are made here and only here (`map_key`).
This module imports no torch: pages and the "template changed" rerun read records without it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RECORD_VERSION = 6  # bump when what a record holds changes
# The map shown in CAM's place at the last tap of a user's model whose head is not pooling + linear (no CAM there)
NO_CAM_METHOD = "gradcam"


def to_half(m: np.ndarray) -> tuple[np.ndarray, int]:
    """A map as (float16 array, e) with m ~ array * 2**e and max |array| <= 1: full float16 precision (11 bits)
    for every value above max |m| / 8192, whatever the map's magnitude. Idempotent on `as_stored` output."""
    m = np.asarray(m, np.float32)
    peak = float(np.max(np.abs(m))) if m.size else 0.0
    if not np.isfinite(peak):
        return m.astype(np.float16), 0  # NaN or infinite stays so: the pages refuse such a map by name
    if peak == 0.0:
        return m.astype(np.float16), 0
    f, e = math.frexp(peak)  # peak = f * 2**e, 0.5 <= f < 1
    if f == 0.5:
        e -= 1  # an exact power of two maps to 1.0, so a stored map gets the same e again
    return np.ldexp(m, -e).astype(np.float16), e


def as_stored(m: np.ndarray) -> np.ndarray:
    """The map exactly as the record file keeps it, as float32: a map computed now equals one read back."""
    half, e = to_half(m)
    return np.ldexp(half.astype(np.float32), e)


def record_path(cache_dir: Path | str, model_fp: str, sha: str) -> Path:
    """Where the record of the photo with this SHA-256 lies: cache_dir/records/v<version>-<model>/ab/<sha>.npz."""
    return Path(cache_dir) / "records" / f"v{RECORD_VERSION}-{model_fp}" / sha[:2] / f"{sha}.npz"


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

    @property
    def runner_up(self) -> int:
        """The class with the second-highest logit (the predicted one when there is a single class)."""
        return int(np.argsort(self.logits)[-2]) if len(self.logits) > 1 else self.pred

    def cam(self, tap: int = -1) -> np.ndarray:
        """The CAM of every class at a tap, (K, H, W) float32."""
        return np.asarray(self.maps["cam"][tap], dtype=np.float32)

    def has_cam(self, tap: int = -1) -> bool:
        """Whether the record has CAM at the tap: always, except at the last tap of a model without a linear head."""
        per_tap = self.maps.get("cam")
        return per_tap is not None and per_tap[tap] is not None

    def lead_method(self, tap: int = -1) -> str:
        """The method of the map the pages draw at a tap: CAM, or NO_CAM_METHOD where the model has no CAM."""
        return "cam" if self.has_cam(tap) else NO_CAM_METHOD

    def lead_map(self, tap: int = -1) -> np.ndarray:
        """The map of the predicted class at a tap, (H, W) float32: its CAM, or NO_CAM_METHOD's map (made for the
        predicted class) where the model has no CAM."""
        if self.has_cam(tap):
            return self.cam(tap)[self.pred]
        return np.asarray(self.maps[NO_CAM_METHOD][tap], dtype=np.float32)

    def to_npz(self) -> dict[str, np.ndarray]:
        """Three arrays (loading an .npz costs about as much per array as for its data): the scalars, every map
        flattened into one float16 vector, and a JSON layout naming each map with its shape and power of two."""
        n_taps = len(self.probe_logits)
        k = len(self.logits)
        scalars = np.concatenate([
            [RECORD_VERSION, self.width, self.height, k, n_taps, self.pet_p, self.energy],
            np.asarray(self.logits, np.float64).ravel(), np.asarray(self.probe_logits, np.float64).ravel(),
            np.asarray(self.imagenet_top, np.float64), np.asarray(self.imagenet_top_p, np.float64)])
        layout, blobs = [], []
        for method, per_tap in self.maps.items():
            for t, m in enumerate(per_tap):
                if m is not None:
                    half, e = to_half(m)
                    layout.append([map_key(method, t), list(half.shape), e])
                    blobs.append(half.ravel())
        return {"scalars": scalars, "maps": np.concatenate(blobs) if blobs else np.zeros(0, np.float16),
                "layout": np.frombuffer(json.dumps(layout).encode(), dtype=np.uint8)}

    @classmethod
    def from_npz(cls, z: dict[str, np.ndarray], n_taps: int) -> PhotoRecord | None:
        """The record, or None when the arrays are of another version or incomplete (recomputed, never trusted)."""
        try:
            s = z["scalars"]
            if int(s[0]) != RECORD_VERSION or int(s[4]) != n_taps:
                return None
            w, h, k = int(s[1]), int(s[2]), int(s[3])
            pet_p, energy = float(s[5]), float(s[6])
            at = 7
            logits = s[at:at + k].astype(np.float32)
            probe_logits = s[at + k:at + k + n_taps * k].reshape(n_taps, k).astype(np.float32)
            rest = s[at + k + n_taps * k:]
            top, top_p = rest[:len(rest) // 2].astype(np.int64), rest[len(rest) // 2:].astype(np.float32)
            maps: dict[str, list[np.ndarray | None]] = {}
            flat, offset = z["maps"], 0
            for key, shape, e in json.loads(z["layout"].tobytes()):
                size = int(np.prod(shape))
                method, t = key.rsplit("/", 1)
                half = flat[offset:offset + size].reshape(shape)
                maps.setdefault(method, [None] * n_taps)[int(t)] = np.ldexp(half.astype(np.float32), int(e))
                offset += size
            if offset != flat.size:
                return None
        except (KeyError, ValueError, TypeError, IndexError):
            return None
        # CAM at every tap, except at the last one of a model without a linear head, which has NO_CAM_METHOD's map
        cam = maps.get("cam", [None] * n_taps)
        if any(m is None for m in cam[:-1]) or (cam[-1] is None and maps.get(NO_CAM_METHOD, [None])[-1] is None):
            return None
        return cls(w, h, logits, probe_logits, top, top_p, pet_p, energy, maps)

    def methods(self) -> tuple[str, ...]:
        return tuple(self.maps)
