"""Pixels in and out: safe decoding, resizing, and the two pictures each photo gets on the site.

This module imports no torch, so that worker processes that decode and encode start fast and small.
The maps are not pictures: the browser draws them from data (see overlay.py and templates/static/maps.js).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class SkipImage(Exception):
    """The file cannot be used; the message is the one-line reason shown on the site."""


@dataclass(frozen=True)
class Decoded:
    """One photo, decoded once: the network input and the display-size picture (both RGB uint8, HxWx3)."""

    model_input: np.ndarray
    display: np.ndarray
    width: int  # upright size of the original, pixels
    height: int
    web_ready: bool = False  # the file itself can be shown as it is (see `is_web_ready`)


# A JPEG is shown as it is (its bytes copied, not re-encoded) when it is upright, RGB, free of EXIF metadata
# (which may hold a camera's GPS position), within the display size, and at most this many bytes per pixel.
# Our WebP encode at the default quality gives about 0.07-0.09 bytes per pixel on these photos (measured), so a
# JPEG at or below 0.12 is already about as small: copying it saves the encode and keeps the original pixels.
WEB_READY_MAX_BYTES_PER_PIXEL = 0.12


def is_web_ready(img: Image.Image, n_bytes: int, display_size: int) -> bool:
    """Can the browser be handed this file's bytes as the display copy?"""
    w, h = img.size
    return (img.format == "JPEG" and img.mode == "RGB" and "exif" not in img.info
            and max(w, h) <= display_size and n_bytes <= WEB_READY_MAX_BYTES_PER_PIXEL * w * h)


# What Image.open may hand the file to. Pillow otherwise sniffs every format it knows, EPS included (which
# runs Ghostscript); a photo's content is checked against this list whatever its extension says.
DECODERS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scale_to_uint8(arr: np.ndarray, top: float) -> np.ndarray:
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=top, neginf=0.0)
    return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: alpha composited on white, 16-bit and float scaled, CMYK converted."""
    if img.mode.startswith("I;16"):
        return Image.fromarray(_scale_to_uint8(np.asarray(img), 65535.0), "L").convert("RGB")
    if img.mode == "I":
        arr = np.asarray(img)
        top = 65535.0 if arr.size and arr.max() > 255 else 255.0
        return Image.fromarray(_scale_to_uint8(arr, top), "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        peak = float(finite.max()) if finite.size else 0.0
        top = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else peak  # [0, 1], [0, 255] or whatever range
        return Image.fromarray(_scale_to_uint8(arr, top), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def decode_bytes(data: bytes, input_size: int, display_size: int, max_pixels: int) -> Decoded:
    """Decode an image file's bytes, upright (EXIF orientation), to the network input and a display copy.

    Raises SkipImage with a one-line reason for anything that is not a usable photo: nothing else escapes,
    so one odd file can never stop a run.
    """
    if not data:
        raise SkipImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" and the like: pixels are fine
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=DECODERS)
            w, h = img.size
            if w < 1 or h < 1:
                raise SkipImage(f"image has no pixels ({w}x{h})")
            if w * h > max_pixels:
                raise SkipImage(f"too large: {w}x{h} pixels is over the limit of {max_pixels:,} (max_pixels)")
            orig_w, orig_h = _upright_size(img)
            web_ready = is_web_ready(img, len(data), display_size)
            if getattr(img, "is_animated", False):
                img.seek(0)  # animated GIF/WebP, multi-page TIFF: the first frame is the photo
            if img.format in ("JPEG", "MPO"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the photo is at least twice what we need: much
                # faster, and still at least the display size and the network input on each side.
                dw, dh = fit_size(w, h, display_size)
                img.draft("RGB", (max(dw, min(w, input_size)), max(dh, min(h, input_size))))
            img.load()
            img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
            width, height = img.size
            model_input = np.asarray(img.resize((input_size, input_size), Image.BICUBIC, reducing_gap=3.0))
            scale = min(1.0, display_size / max(width, height))
            display_img = img
            if scale < 1.0:
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                display_img = img.resize(size, Image.LANCZOS, reducing_gap=3.0)
            display = np.asarray(display_img)
    except SkipImage:
        raise
    except UnidentifiedImageError:
        raise SkipImage("not a readable image (its content is none of " + ", ".join(DECODERS) + ")") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SkipImage(f"too large to decode safely ({_one_line(exc)})") from None
    except MemoryError:
        raise SkipImage("too large to decode in the memory available") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise SkipImage(f"damaged or truncated image ({type(exc).__name__}: {_one_line(exc)})") from None
    except Exception as exc:  # a decoder bug on a hostile file: still one file skipped, not a crashed run
        raise SkipImage(f"damaged image, the decoder failed ({type(exc).__name__}: {_one_line(exc)})") from None
    return Decoded(model_input=model_input, display=display, width=orig_w, height=orig_h, web_ready=web_ready)


def _upright_size(img: Image.Image) -> tuple[int, int]:
    """Size of the original as it is shown upright (before JPEG draft scaling)."""
    w, h = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block does not change the pixels
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def fit_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """Size with the same aspect ratio whose longest side is at most `longest` (never upscaled)."""
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def resized(photo: np.ndarray, longest: int) -> np.ndarray:
    """A smaller copy (the gallery's thumbnail of the display copy), longest side `longest`. Lanczos after a box
    reduction by the whole factor (reducing_gap 1): measured on 58 display copies shrunk to 192 pixels, 0.83 ms
    against 1.91 ms for a fair Lanczos (reducing_gap 3), 0.96 levels of 255 apart on average: below what WebP at
    quality 60 changes."""
    h, w = photo.shape[:2]
    size = fit_size(w, h, longest)
    if size == (w, h):
        return photo
    return np.asarray(Image.fromarray(photo).resize(size, Image.LANCZOS, reducing_gap=1.0))


def max_file_bytes(max_pixels: int) -> int:
    """Largest file worth reading for an image of at most max_pixels: 16-bit RGB uncompressed, plus slack."""
    return 6 * max_pixels + (16 << 20)


def read_image_file(path: str | Path, max_pixels: int) -> bytes:
    """The bytes of a photo file; SkipImage (with the reason) when it cannot or should not be read."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_file_bytes(max_pixels):
                raise SkipImage(f"file too large: {size:,} bytes for an image of at most {max_pixels:,} pixels "
                                "(max_pixels)")
            return fh.read(max_file_bytes(max_pixels) + 1)
    except OSError as exc:
        raise SkipImage(f"cannot be read ({exc.strerror or _one_line(exc)})") from None


def encode_webp(array: np.ndarray, quality: int) -> bytes:
    """RGB uint8 (H, W, 3) to WebP bytes. Method 2 of libwebp's 0-6 speed/size trade-off: measured here on
    512-pixel photos at quality 70, 21.8 KB in 8.8 ms against 21.0 KB in 17.1 ms for method 4 (the default)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="WEBP", quality=quality, method=2)
    return buf.getvalue()
