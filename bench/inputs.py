"""The fixed photo sample and the model, set up exactly as `make site` runs them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from generator.config import Settings
from generator.model.backbones import Backbone, resolve_name
from generator.model.checkpoint import checkpoint_path
from generator.model.heads import LinearHead
from generator.model.runtime import Runtime

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def sample_photos(set_dir: Path, n: int, seed: int = 0) -> list[Path]:
    """n image files drawn with `seed` from the sorted image files under set_dir (all of them if fewer)."""
    files = sorted(p for p in Path(set_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SystemExit(f"no photos under {set_dir}: run `make data` first, or pass --data-dir.")
    if n >= len(files):
        return files
    return sorted(random.Random(seed).sample(files, n))


def decode_readable(paths: list[Path], input_size: int) -> tuple[np.ndarray, list[Path]]:
    """(N, S, S, 3) uint8 photos decoded as the site decodes them (upright, the whole photo resized), and the N
    paths they came from: unreadable files are left out."""
    from generator.data.imaging import SkipImage, decode_bytes

    out, kept = [], []
    for p in paths:
        try:
            out.append(decode_bytes(p.read_bytes(), input_size, input_size, 60_000_000).model_input)
        except (SkipImage, OSError):
            continue
        kept.append(p)
    if not out:
        raise SystemExit(f"none of the {len(paths)} sampled photos could be decoded")
    return np.stack(out), kept


def decode_photos(paths: list[Path], input_size: int) -> np.ndarray:
    """The readable photos of `paths`, (N, S, S, 3) uint8 (see decode_readable)."""
    return decode_readable(paths, input_size)[0]


@dataclass
class Setup:
    """The site's model on the site's runtime, and the photos cut into the site's batches."""

    backbone: Backbone  # its model already in the runtime's memory format
    heads: list[LinearHead]  # one per tap, the last one the classifier head
    classes: list[str]
    input_size: int
    runtime: Runtime
    batch_size: int
    checkpoint: Path
    batches: list[torch.Tensor] = field(default_factory=list)  # (B, 3, S, S) normalized inputs

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, None for float32."""
        return self.runtime.dtype

    @property
    def taps(self) -> tuple[str, ...]:
        return self.backbone.taps

    @property
    def n_images(self) -> int:
        return sum(len(b) for b in self.batches)

    def float32(self) -> Setup:
        """The same model and batches without autocast (for the agreement check)."""
        return replace(self, runtime=replace(self.runtime, autocast=False))

    def with_photos(self, photos: np.ndarray, batch_size: int | None = None) -> Setup:
        """The same model with `photos` ((N, S, S, 3) uint8) cut into batches of batch_size (default: the site's)."""
        bs = batch_size or self.batch_size
        batches = [self.backbone.to_input(photos[i:i + bs], self.runtime.channels_last)
                   for i in range(0, len(photos), bs)]
        return replace(self, batch_size=bs, batches=batches)


def find_checkpoint(weights_dir: Path) -> Path:
    """The checkpoint `make site` uses with its default backbone (auto: resnet18 when its weights are there)."""
    path = checkpoint_path(weights_dir, resolve_name(Settings.backbone, Path(weights_dir)))
    if not path.is_file():
        raise SystemExit(f"no trained checkpoint {path.name} in {weights_dir}: run `make site` first, or pass "
                         "--weights-dir.")
    return path


def load_setup(weights_dir: Path, batch_size: int | None = None) -> Setup:
    """The checkpoint's backbone and heads, on the runtime `make site` would choose on this CPU."""
    from generator.config import make_settings
    from generator.model import backbones
    from generator.model.checkpoint import check_heads, read_checkpoint
    from generator.model.runtime import choose_runtime

    path = find_checkpoint(weights_dir)
    heads, meta = read_checkpoint(path)
    backbone = backbones.build(meta["backbone"], Path(weights_dir))
    check_heads(path, heads, backbone, tuple(meta["classes"]), meta)
    settings = make_settings({"weights_dir": Path(weights_dir), "backbone": meta["backbone"], "device": "cpu"})
    runtime = choose_runtime(settings)
    backbone.model = runtime.prepare(backbone.model.eval())
    return Setup(backbone, heads, list(meta["classes"]), int(meta["input_size"]), runtime,
                 batch_size or settings.batch_size, path)
