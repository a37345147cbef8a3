"""maps.js in a real browser (headless Debian Chromium through Playwright) against the Python reference overlay.

A harness page in tmp_path, opened from file://, loads templates/static/maps.js, a colormaps.js written by
overlay.colormaps_js() and payloads written by overlay.encode_maps; the browser decodes, paints and boxes the maps,
and each result is compared with generator/explain/overlay.py on the same decoded maps.
"""

from __future__ import annotations

import base64
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import chromium
import numpy as np
import pytest
from conftest import CATS_DOGS

from generator.explain import overlay

chromium.require()
from playwright.sync_api import Browser, Page  # noqa: E402

pytestmark = pytest.mark.browser

MAPS_JS = Path(__file__).resolve().parent.parent / "templates" / "static" / "maps.js"
# Canvas sizes of real display copies (landscape, portrait, odd ratios) and of thumbnails.
SIZES = [(500, 375), (375, 500), (512, 341), (192, 192), (224, 224), (333, 500)]
SHAPES = [(7, 7)] * 3 + [(14, 14)] * 2 + [(28, 28)] * 2 + [(56, 56)] * 2
THRESHOLDS = [0.1, 0.2, 0.35, 0.5]
N_THUMBS = 200


def smooth_map(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A CAM-like signed map: two Gaussian bumps of random sign plus noise, float32 as the explainer gives."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    m = np.zeros((h, w))
    for _ in range(2):
        cy, cx, s, a = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.08, 0.3), rng.uniform(-3, 6)
        m += a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return (m + 0.2 * rng.normal(size=(h, w))).astype(np.float32)


def photo_map() -> np.ndarray:
    """A 28x28 map with a real photo's structure (its centred luminance); a fixed pattern without the datasets."""
    from PIL import Image

    photos = sorted((CATS_DOGS / "validation" / "cats").glob("*.jpg")) if CATS_DOGS.is_dir() else []
    if not photos:
        yy, xx = np.mgrid[0:28, 0:28] / 28
        return np.sin(9 * xx) * np.cos(5 * yy * yy) - 0.2
    with Image.open(photos[0]) as im:
        small = im.convert("L").resize((28, 28), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255 - 0.5


def entries() -> list[tuple[str, np.ndarray | int]]:
    rng = np.random.default_rng(2016)
    out: list[tuple[str, np.ndarray | int]] = [(f"map{i}-{h}x{w}", smooth_map(rng, h, w))
                                                for i, (h, w) in enumerate(SHAPES)]
    out.append(("photo", photo_map()))
    out.append(("minus map0 </script><!-- & -->", 0))  # a "neg" entry, and a key that must be escaped
    return out


# ---- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium.launch()


@pytest.fixture(scope="module")
def payloads() -> dict[str, dict]:
    """The same maps as a "u8z" payload (what encode_maps picks for them) and the equivalent "u8" one."""
    z = overlay.encode_maps(entries())
    assert z["enc"] == "u8z"
    raw = zlib.decompress(base64.b64decode(z["data"]))
    return {"u8z": z, "u8": {**z, "enc": "u8", "data": base64.b64encode(raw).decode("ascii")}}


@pytest.fixture(scope="module")
def decoded(payloads) -> list[tuple[str, np.ndarray]]:
    return overlay.decode_maps(payloads["u8z"])


@pytest.fixture(scope="module")
def page(browser, payloads, tmp_path_factory) -> Iterator[Page]:
    """The harness page, from file://, with no errors allowed."""
    root = tmp_path_factory.mktemp("maps_js")
    shutil.copy(MAPS_JS, root / "maps.js")
    (root / "colormaps.js").write_text(overlay.colormaps_js(), encoding="utf-8")
    rng = np.random.default_rng(7)
    thumbs = overlay.encode_maps([(f"t{i}", smooth_map(rng, 7, 7)) for i in range(N_THUMBS)])
    blocks = "".join(f'<script type="application/json" id="{name}">{overlay.payload_json(p)}</script>\n'
                     for name, p in (("payload-u8z", payloads["u8z"]), ("payload-u8", payloads["u8"]),
                                     ("thumbs", thumbs)))
    (root / "index.html").write_text(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>maps.js harness</title></head>\n'
        f'<body>\n{blocks}<script src="colormaps.js"></script>\n<script src="maps.js"></script>\n</body></html>\n',
        encoding="utf-8")
    ctx = browser.new_context()
    pg = ctx.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"exception: {e}"))
    pg.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    pg.goto((root / "index.html").as_uri(), wait_until="load")
    yield pg
    ctx.close()
    assert not problems, problems


# Browser-side helpers, prepended to every evaluated function.
JS_HELPERS = """
const payloadOf = (id) => JSON.parse(document.getElementById(id).textContent);
const toBase64 = (bytes) => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
"""


def evaluate(page: Page, body: str, arg=None):
    return page.evaluate(f"async (arg) => {{ {JS_HELPERS} {body} }}", arg)


def b64_array(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


# ---- tests ----------------------------------------------------------------------------------------------------


def test_maps_js_defines_only_cam_maps_and_never_uses_inner_html(browser):
    source = MAPS_JS.read_text(encoding="utf-8")
    assert "innerHTML" not in source and '"use strict"' in source
    pg = browser.new_page()
    try:
        before = set(pg.evaluate("Object.getOwnPropertyNames(window)"))
        pg.add_script_tag(content=source)
        assert set(pg.evaluate("Object.getOwnPropertyNames(window)")) - before == {"CamMaps"}
    finally:
        pg.close()


@pytest.mark.parametrize("enc", ["u8", "u8z"])
def test_decode_gives_pythons_values_bit_for_bit(page, payloads, decoded, enc):
    got = evaluate(page, """
        const maps = await CamMaps.decode(payloadOf(arg));
        return maps.map((m) => ({key: m.key, h: m.h, w: m.w, values: toBase64(new Uint8Array(m.values.buffer))}));
    """, f"payload-{enc}")
    assert [g["key"] for g in got] == [k for k, _ in decoded]
    for g, (_key, ref) in zip(got, decoded):
        assert (g["h"], g["w"]) == ref.shape
        assert np.array_equal(b64_array(g["values"], "<f8").reshape(ref.shape), ref)


def test_decode_sync_reads_u8_and_refuses_u8z(page):
    n = evaluate(page, "return CamMaps.decodeSync(payloadOf('payload-u8')).length;")
    assert n == len(entries())
    message = evaluate(page, "try { CamMaps.decodeSync(payloadOf('payload-u8z')); return ''; } "
                             "catch (e) { return e.message; }")
    assert "asynchronously" in message


@pytest.mark.parametrize(("cmap", "mode"), [("jet", "minmax"), ("viridis", "minmax"), ("RdBu_r", "signed")])
def test_paint_gives_heat_rgb_pixels(page, decoded, cmap, mode):
    scale = max(float(np.abs(m).max()) for _, m in decoded) / 2 if mode == "signed" else None  # some clipping too
    sizes = [SIZES[i % len(SIZES)] for i in range(len(decoded))]
    got = evaluate(page, """
        const maps = await CamMaps.decode(payloadOf("payload-u8z"));
        return maps.map((m, i) => {
          const c = document.createElement("canvas");
          [c.width, c.height] = arg.sizes[i];
          CamMaps.paint(c, m, {cmap: arg.cmap, mode: arg.mode, scale: arg.scale});
          return toBase64(new Uint8Array(c.getContext("2d").getImageData(0, 0, c.width, c.height).data.buffer));
        });
    """, {"sizes": sizes, "cmap": cmap, "mode": mode, "scale": scale})
    total = identical = 0
    worst = 0
    for text, (key, m), (width, height) in zip(got, decoded, sizes):
        rgba = b64_array(text, "u1").reshape(height, width, 4)
        assert (rgba[..., 3] == 255).all(), f"{key}: the canvas must be opaque"
        diff = np.abs(rgba[..., :3].astype(np.int16) - overlay.heat_rgb(m, width, height, cmap, mode, scale))
        per_pixel = diff.max(axis=2)
        assert (per_pixel <= 4).mean() >= 0.99, f"{key} at {width}x{height}: max difference {per_pixel.max()}"
        total += per_pixel.size
        identical += int((per_pixel == 0).sum())
        worst = max(worst, int(per_pixel.max()))
    print(f"\nmaps.js paint vs overlay.heat_rgb [{cmap}, {mode}]: {identical}/{total} pixels identical "
          f"({100 * identical / total:.4f}%), max channel difference {worst}/255")


def test_box_matches_cam_box(page, decoded):
    sizes = [SIZES[i % len(SIZES)] for i in range(len(decoded))]
    got = evaluate(page, """
        const maps = await CamMaps.decode(payloadOf("payload-u8z"));
        return maps.map((m) => arg.map((t) => CamMaps.box(m, t, 224)));
    """, THRESHOLDS)
    exact, mass_diff = 0, 0.0
    for boxes, (key, m), (width, height) in zip(got, decoded, sizes):
        for b, t in zip(boxes, THRESHOLDS):
            ref = overlay.cam_box(m, t, grid=224)
            for side, scale in (("x0", width), ("x1", width), ("y0", height), ("y1", height)):
                assert abs(b[side] * scale - getattr(ref, side) * scale) <= 1, f"{key} @ {t}: {side}"
            assert b["area"] == pytest.approx(ref.area, abs=1e-6) and b["mass"] == pytest.approx(ref.mass, abs=1e-6)
            exact += all(b[f] == getattr(ref, f) for f in ("x0", "y0", "x1", "y1", "area"))
            mass_diff = max(mass_diff, abs(b["mass"] - ref.mass))
    print(f"\nCamMaps.box vs overlay.cam_box: {exact}/{len(got) * len(THRESHOLDS)} boxes with identical corners "
          f"and area, max mass difference {mass_diff:.1e}")
    flat = evaluate(page, "return CamMaps.box({h: 2, w: 2, values: new Float64Array(4).fill(3)}, 0.2, 224);")
    assert flat == {"x0": 0, "y0": 0, "x1": 1, "y1": 1, "area": 1, "mass": 1}


def test_painting_200_thumbnails_is_fast(page):
    timing = evaluate(page, """
        const maps = await CamMaps.decode(payloadOf("thumbs"));
        const host = document.createElement("div");
        document.body.appendChild(host);
        const canvases = maps.map(() => {
          const c = document.createElement("canvas");
          c.width = c.height = 192;
          host.appendChild(c);
          return c;
        });
        const paintAll = () => {
          const t0 = performance.now();
          for (let i = 0; i < maps.length; i++) CamMaps.paint(canvases[i], maps[i], {cmap: "jet"});
          return performance.now() - t0;
        };
        const first = paintAll();
        return {n: maps.length, first: first, again: paintAll()};
    """)
    assert timing["n"] == N_THUMBS
    print(f"\npainting {N_THUMBS} 7x7 maps onto 192x192 canvases: {timing['first']:.1f} ms "
          f"(first run, cold), {timing['again']:.1f} ms (again)")
    assert timing["first"] < 300

