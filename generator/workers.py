"""Work done in the decode/encode processes: read a file once, decode it once, write its pictures.

Functions here take and return plain values (paths, numpy arrays, dicts) so they cross process boundaries.
No torch import: the workers stay small and start fast.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np

from .imaging import (
    Decoded,
    SkipImage,
    decode_bytes,
    heatmap_rgb,
    normalize_map,
    overlay,
    read_image_file,
    resized,
    save_image,
)


def decode_for_model(job: tuple[str, int, int]) -> tuple[np.ndarray | None, str]:
    """(path, input_size, max_pixels) -> (input uint8 HxWx3 or None, status)."""
    path, input_size, max_pixels = job
    try:
        decoded = decode_bytes(read_image_file(path, max_pixels), input_size, input_size, max_pixels)
    except SkipImage as exc:
        return None, f"skipped: {exc}"
    return decoded.model_input, "ok"


def decode_for_report(job: dict) -> dict:
    """Decode one photo, write its display copy into job['asset_dir'], return the network input and the
    small copies the overlays are drawn on. Keys out: status, input, thumb, strip, width, height."""
    try:
        data = read_image_file(job["path"], job["max_pixels"])
        decoded: Decoded = decode_bytes(data, job["input_size"], job["display_size"], job["max_pixels"])
    except SkipImage as exc:
        return {"status": f"skipped: {exc}"}
    asset_dir = Path(job["asset_dir"])
    asset_dir.mkdir(parents=True, exist_ok=True)
    save_image(decoded.display, asset_dir / "photo.webp", quality=82)
    return {
        "status": "ok",
        "input": decoded.model_input,
        "thumb": resized(decoded.display, job["thumb_size"]),
        "strip": resized(decoded.display, job["strip_size"]),
        "display_size": (decoded.display.shape[1], decoded.display.shape[0]),
        "width": decoded.width,
        "height": decoded.height,
    }


def render_assets(job: dict) -> str:
    """Write the overlays of one photo: thumb (predicted-class CAM baked in), one heat layer per class for
    the image page, and one tile per method and tap for the layer strip. Returns the asset folder."""
    asset_dir = Path(job["asset_dir"])
    asset_dir.mkdir(parents=True, exist_ok=True)
    pred = job["pred"]
    cams = job["cams"]  # tap -> (K, H, W) float
    last = cams[-1]
    save_image(overlay(job["thumb"], normalize_map(last[pred])), asset_dir / "thumb.webp", quality=75)
    w, h = job["display_size"]
    heat_size = (max(1, w // 2), max(1, h // 2))
    for k, name in enumerate(job["classes"]):
        save_image(heatmap_rgb(normalize_map(last[k]), heat_size), asset_dir / f"heat-{name}.webp", quality=70)
    for t, tap_cams in enumerate(cams):
        save_image(overlay(job["strip"], normalize_map(tap_cams[pred])), asset_dir / f"strip-cam-{t}.webp", 72)
    for t, g in enumerate(job.get("gradcams") or []):
        save_image(overlay(job["strip"], normalize_map(g)), asset_dir / f"strip-gradcam-{t}.webp", 72)
    (asset_dir / "complete").write_text("ok\n")
    return str(asset_dir)


def make_pool(n: int):
    """A process pool started with 'spawn' (forking a process that runs torch threads can deadlock)."""
    return multiprocessing.get_context("spawn").Pool(n)


def bounded_imap(pool, fn, jobs, ahead: int = 32):
    """Like pool.imap (results in order) but with at most `ahead` jobs in flight, so decoded photos never
    pile up in memory when the consumer (the network) is slower than the decoders."""
    from collections import deque

    window: deque = deque()
    for job in jobs:
        window.append(pool.apply_async(fn, (job,)))
        if len(window) >= ahead:
            yield window.popleft().get()
    while window:
        yield window.popleft().get()


class HeapTrimmer:
    """Hands freed heap memory back to the OS every `every` calls (glibc's malloc_trim; a no-op elsewhere).

    With bf16 autocast, glibc kept the freed activations of the forward passes: the process grew by about
    0.5 GB per 1,000 photos. Trimming every 16 batches keeps it flat at no measurable cost (measured:
    1,000 photos, 1,430 -> 1,009 MB peak, 78 -> 80 photos/s)."""

    def __init__(self, every: int = 16) -> None:
        self.every = every
        self.calls = 0
        try:
            import ctypes

            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            self._trim = None

    def __call__(self) -> None:
        self.calls += 1
        if self._trim is not None and self.calls % self.every == 0:
            self._trim(0)
