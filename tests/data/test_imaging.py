"""decode_bytes on every kind of awkward file: each either decodes to a sane RGB picture or is a SkipImage
with a one-line reason. All files are generated here (tiny), so these tests are fast."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from generator.data.imaging import SkipImage, decode_bytes

MAX = 60_000_000


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gradient(w: int = 16, h: int = 12) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 128)], -1).astype(np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size (IHDR only, one empty IDAT): opening it must not allocate the pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def good(data: bytes, size: int = 32, display: int = 64, max_pixels: int = MAX):
    d = decode_bytes(data, size, display, max_pixels)
    assert d.model_input.shape == (size, size, 3) and d.model_input.dtype == np.uint8
    assert d.display.ndim == 3 and d.display.shape[2] == 3 and d.display.dtype == np.uint8
    assert max(d.display.shape[:2]) <= display
    return d


def skip_reason(data: bytes, **kw) -> str:
    with pytest.raises(SkipImage) as info:
        decode_bytes(data, 32, 64, kw.get("max_pixels", MAX))
    reason = str(info.value)
    assert reason and "\n" not in reason
    return reason


# --- files that must decode -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,ext_kw", [("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"lossless": True}),
                                        ("TIFF", {}), ("BMP", {}), ("GIF", {})])
def test_common_formats(fmt, ext_kw):
    d = good(encode(Image.fromarray(gradient()), fmt, **ext_kw))
    assert (d.width, d.height) == (16, 12)


def test_png_alpha_composited_on_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 4:, 3] = 255  # left half transparent red, right half opaque red
    d = good(encode(Image.fromarray(rgba, "RGBA"), "PNG"), size=8, display=8)
    assert (d.display[:, :4] == 255).all()  # white where transparent
    assert (d.display[:, 5:] == [255, 0, 0]).all()


def test_palette_png_with_and_without_transparency():
    p = Image.fromarray(gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    good(encode(p, "PNG"))
    p.info["transparency"] = 0
    good(encode(p, "PNG", transparency=0))


def test_la_and_1bit_and_grayscale():
    g = Image.fromarray(gradient()[..., 0], "L")
    d = good(encode(g, "PNG"), size=16, display=16)
    assert (d.display[..., 0] == d.display[..., 1]).all()
    good(encode(g.convert("LA"), "PNG"))
    good(encode(g.convert("1"), "PNG"))
    good(encode(g, "JPEG"))


def test_16bit_png_scaled_not_clipped():
    arr = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    d = good(encode(Image.fromarray(arr), "PNG"), size=8, display=8)
    # the full 16-bit range maps to the full 8-bit range, not to "everything above 255 is white"
    assert d.display.min() <= 5 and d.display.max() >= 250
    assert 100 < d.display.mean() < 160


def test_16bit_rgb_png():
    # Pillow cannot build 16-bit RGB from arrays; write it by hand.
    h, w = 4, 5
    raw = b"".join(b"\x00" + np.full((w, 3), 30000, ">u2").tobytes() for _ in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    d = good(data, size=4, display=8)
    assert abs(int(d.display.mean()) - round(30000 / 65535 * 255)) <= 2


def test_float_tiff():
    arr = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    d = good(encode(Image.fromarray(arr, "F"), "TIFF"), size=8, display=8)
    assert d.display.max() >= 250  # a [0, 1] float image is not shown black


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (10, 6), (0, 255, 255, 0))  # red in CMYK
    d = good(encode(cmyk, "JPEG", quality=95), size=8, display=16)
    r, g, b = d.display.reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    d = good(data, size=8, display=8)
    r, g, b = d.display.reshape(-1, 3).mean(0)
    assert r > 200 and g < 40 and b < 40


def test_animated_webp_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((0, 0, 255), (255, 0, 0))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50, lossless=True)
    d = good(data, size=8, display=8)
    assert d.display[..., 2].mean() > 200 and d.display[..., 0].mean() < 40


def test_multipage_tiff_first_page():
    pages = [Image.new("RGB", (8, 8), c) for c in ((0, 255, 0), (255, 0, 0))]
    d = good(encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]), size=8, display=8)
    assert d.display[..., 1].mean() > 200 and d.display[..., 0].mean() < 40


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_decodes_upright(orientation):
    """An upright picture, stored transformed with the EXIF tag that undoes it, decodes to the upright one."""
    upright = Image.fromarray(np.kron(gradient(6, 4), np.ones((8, 8, 1), np.uint8)))  # 48x32, blocky
    # The transform a camera applies when storing; exif_transpose applies its inverse.
    stored_as = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                 4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    stored = upright.transpose(stored_as[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    for fmt in ("JPEG", "PNG"):
        data = encode(stored, fmt, exif=exif, **({"quality": 98} if fmt == "JPEG" else {}))
        d = good(data, size=16, display=64)
        assert (d.width, d.height) == (48, 32)
        assert d.display.shape[:2] == (32, 48)
        err = np.abs(d.display.astype(int) - np.asarray(upright, dtype=int)).mean()
        assert err < 6, (fmt, orientation, err)


def test_broken_exif_block_still_decodes():
    data = encode(Image.fromarray(gradient()), "JPEG")
    # an APP1 Exif segment with garbage after the header
    app1 = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\xff\xff" + b"\x00" * 7
    data = data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]
    good(data)


@pytest.mark.parametrize("w,h", [(1, 1), (4000, 3), (3, 4000), (1, 2000)])
def test_tiny_and_extreme_aspect(w, h):
    arr = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG"):
        d = good(encode(Image.fromarray(arr), fmt), size=16, display=64)
        assert (d.width, d.height) == (w, h)
        assert min(d.display.shape[:2]) >= 1


def test_large_jpeg_decoded_reduced_but_reports_full_size():
    arr = np.random.default_rng(1).integers(0, 255, (900, 1200, 3), dtype=np.uint8)
    d = good(encode(Image.fromarray(arr), "JPEG"), size=32, display=100)
    assert (d.width, d.height) == (1200, 900)
    assert d.display.shape[:2] == (75, 100)


# --- files that must be skipped, with a reason ------------------------------------------------------------


def test_empty_file():
    assert "empty" in skip_reason(b"")


def test_truncated_jpeg():
    data = encode(Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
    assert "truncated" in skip_reason(data[: len(data) // 2])
    assert skip_reason(data[:20])  # header cut inside the markers


def test_truncated_png_and_gif():
    arr = np.random.default_rng(3).integers(0, 255, (64, 64, 3), np.uint8)
    for fmt in ("PNG", "WEBP", "GIF"):
        data = encode(Image.fromarray(arr), fmt)
        skip_reason(data[: len(data) // 2])


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", b"<html><script>x</script></html>",
                                     b"\x00" * 100, bytes(range(256)) * 4, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"])
def test_not_an_image(content):
    assert "not a readable image" in skip_reason(content)


def test_formats_outside_the_allowed_list_are_refused():
    """A .jpg that is really an EPS, ICO or PSD is not handed to those decoders (EPS would run Ghostscript)."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert "not a readable image" in skip_reason(eps)
    assert "not a readable image" in skip_reason(encode(Image.new("RGB", (16, 16)), "ICO"))
    assert "not a readable image" in skip_reason(encode(Image.new("RGB", (16, 16)), "PPM"))


def test_too_many_pixels_is_a_skip_not_a_crash():
    data = encode(Image.new("RGB", (300, 200)), "PNG")
    reason = skip_reason(data, max_pixels=50_000)
    assert "too large" in reason and "300x200" in reason and "max_pixels" in reason


def test_decompression_bomb_header_skipped_without_allocating():
    for w, h in ((100_000, 100_000), (2**31 - 1, 2**31 - 1)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            reason = skip_reason(png_header_only(w, h))
        assert "too large" in reason
    # above max_pixels but under Pillow's own limit: our limit still applies
    assert "too large" in skip_reason(png_header_only(10_000, 10_000), max_pixels=60_000_000)


def test_zero_size_header():
    skip_reason(png_header_only(0, 0))


def test_a_thumbnail_is_the_fair_lanczos_shrink_within_a_few_levels():
    """resized() takes a faster route (box reduction, then Lanczos): it must keep the size rule and stay close to
    the fair resampling of the same photo."""
    from PIL import Image

    from generator.data.imaging import fit_size, resized

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:313, 0:450]
    photo = np.stack([(xx * 255 / 449), (yy * 255 / 312), ((xx + yy) % 64) * 4.0], -1)
    photo = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    small = resized(photo, 192)
    assert small.shape == (*fit_size(450, 313, 192)[::-1], 3) and small.dtype == np.uint8
    fair = np.asarray(Image.fromarray(photo).resize(fit_size(450, 313, 192), Image.LANCZOS, reducing_gap=None))
    assert np.abs(small.astype(float) - fair).mean() < 3.0
    assert resized(photo, 450) is photo  # already that small: the same array
