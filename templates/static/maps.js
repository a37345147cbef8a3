// CamMaps: decodes the site's quantised maps and draws them on canvases.
// The specification is written once, in the docstring of generator/explain/overlay.py (payload, normalising, bilinear
// upsampling, colour lookup, CAM box); this file implements it for the browser with the same float64 operations
// in the same order, so its pixels and boxes equal Python's (checked by tests/test_maps_js.py).
// Plain script, no modules, no network: works from file://. The colour tables come from colormaps.js
// (window.CAM_COLORMAPS, written by overlay.colormaps_js from matplotlib). Defines only window.CamMaps.
(function () {
  "use strict";

  // ---- 1. payload ----------------------------------------------------------------------------------------------

  function base64Bytes(text) {
    var bin = atob(text), n = bin.length, out = new Uint8Array(n), i;
    for (i = 0; i < n; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function inflate(bytes) {
    // "deflate" in the Compression Streams API is the zlib format (RFC 1950) that Python's zlib writes.
    if (typeof DecompressionStream !== "function") {
      return Promise.reject(new Error("this browser cannot decompress maps (no DecompressionStream)"));
    }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }

  function unpack(entries, raw) {
    var maps = [], offset = 0, i, k, e, n, src, values, step;
    for (i = 0; i < entries.length; i++) {
      e = entries[i];
      if (e.neg !== undefined) {
        if (!(e.neg >= 0 && e.neg < i)) throw new Error("map " + e.key + ": 'neg' must name an earlier entry");
        src = maps[e.neg];
        values = new Float64Array(src.values.length);
        for (k = 0; k < values.length; k++) values[k] = -src.values[k];
        maps.push({ key: e.key, h: src.h, w: src.w, lo: -src.hi, hi: -src.lo, values: values });
        continue;
      }
      n = e.h * e.w;
      if (offset + n > raw.length) throw new Error("map payload too short for " + e.key);
      values = new Float64Array(n);
      step = e.hi - e.lo;
      for (k = 0; k < n; k++) values[k] = e.lo + raw[offset + k] / 255 * step;  // as overlay.decode_maps
      offset += n;
      maps.push({ key: e.key, h: e.h, w: e.w, lo: e.lo, hi: e.hi, values: values });
    }
    if (offset !== raw.length) throw new Error("map payload has " + (raw.length - offset) + " bytes no entry owns");
    return maps;
  }

  function checkPayload(payload) {
    if (!payload || payload.v !== 1) throw new Error("map payload version is not 1");
    if (payload.enc !== "u8" && payload.enc !== "u8z") throw new Error("map payload encoding is not u8 or u8z");
  }

  // Payload -> maps {key, h, w, lo, hi, values: Float64Array(h * w)}, synchronously; "u8" payloads only.
  function decodeSync(payload) {
    checkPayload(payload);
    if (payload.enc !== "u8") throw new Error("a u8z payload decodes asynchronously: use CamMaps.decode");
    return unpack(payload.maps, base64Bytes(payload.data));
  }

  // Payload -> Promise of maps, either encoding.
  function decode(payload) {
    try {
      checkPayload(payload);
      if (payload.enc === "u8") return Promise.resolve(decodeSync(payload));
      return inflate(base64Bytes(payload.data)).then(function (raw) { return unpack(payload.maps, raw); });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // ---- 2. normalise --------------------------------------------------------------------------------------------

  // Map -> Float64Array(h * w) in [0, 1]. mode "minmax" (default) or "signed" (needs scale > 0).
  function normalize(map, mode, scale) {
    var v = map.values, n = v.length, out = new Float64Array(n), i, x, lo, hi, range, twice;
    if (mode === undefined || mode === "minmax") {
      lo = Infinity;
      hi = -Infinity;
      for (i = 0; i < n; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
      }
      if (hi === lo) return out;  // a constant map: all 0
      range = hi - lo;
      for (i = 0; i < n; i++) out[i] = (v[i] - lo) / range;
      return out;
    }
    if (mode === "signed") {
      if (!(scale > 0 && isFinite(scale))) throw new Error("mode 'signed' needs a finite scale > 0");
      twice = 2 * scale;
      for (i = 0; i < n; i++) {
        x = 0.5 + v[i] / twice;
        out[i] = x > 0 ? (x < 1 ? x : 1) : 0;
      }
      return out;
    }
    throw new Error("mode must be 'minmax' or 'signed', got " + mode);
  }

  // ---- 3. upsample ---------------------------------------------------------------------------------------------

  // For nOut output pixels over nIn source pixels: first and second source index, and the second's weight.
  function taps(nIn, nOut) {
    var i0 = new Int32Array(nOut), i1 = new Int32Array(nOut), f = new Float64Array(nOut), x, s, k;
    for (x = 0; x < nOut; x++) {
      s = (x + 0.5) * nIn / nOut - 0.5;
      s = s > 0 ? (s < nIn - 1 ? s : nIn - 1) : 0;
      k = Math.floor(s);
      i0[x] = k;
      i1[x] = k + 1 < nIn ? k + 1 : nIn - 1;
      f[x] = s - k;
    }
    return { i0: i0, i1: i1, f: f };
  }

  // Row pass of the bilinear rule: (h, w) values -> (h, width) values, row-major.
  function alongRows(v, h, w, width) {
    var t = taps(w, width), rows = new Float64Array(h * width), y, x, o, fx;
    for (y = 0; y < h; y++) {
      o = y * w;
      for (x = 0; x < width; x++) {
        fx = t.f[x];
        rows[y * width + x] = v[o + t.i0[x]] * (1 - fx) + v[o + t.i1[x]] * fx;
      }
    }
    return rows;
  }

  // Values (h * w, row-major) -> Float64Array(width * height), bilinear with half-pixel centres.
  function resample(v, h, w, width, height) {
    var rows = alongRows(v, h, w, width), t = taps(h, height), out = new Float64Array(width * height);
    var y, x, a, b, fy, gy, o;
    for (y = 0; y < height; y++) {
      a = t.i0[y] * width;
      b = t.i1[y] * width;
      fy = t.f[y];
      gy = 1 - fy;
      o = y * width;
      for (x = 0; x < width; x++) out[o + x] = rows[a + x] * gy + rows[b + x] * fy;
    }
    return out;
  }

  // Map -> its raw values upsampled to width x height (Float64Array, row-major).
  function upsample(map, width, height) {
    return resample(map.values, map.h, map.w, width, height);
  }

  // ---- 4. colour -----------------------------------------------------------------------------------------------

  var tables = {};  // name -> {rgb: Uint8Array(768), packed: Uint32Array(256) as ImageData pixels}
  var littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

  function table(name) {
    if (Object.prototype.hasOwnProperty.call(tables, name)) return tables[name];
    var src = window.CAM_COLORMAPS;
    if (!src || !Object.prototype.hasOwnProperty.call(src, name)) {
      throw new Error("unknown colormap " + name + " (is colormaps.js loaded?)");
    }
    var rgb = base64Bytes(src[name]), packed = new Uint32Array(256), i, r, g, b;
    if (rgb.length !== 768) throw new Error("colormap " + name + " is not 256 RGB triples");
    for (i = 0; i < 256; i++) {
      r = rgb[3 * i];
      g = rgb[3 * i + 1];
      b = rgb[3 * i + 2];
      // One 32-bit store per pixel; ImageData is RGBA in memory, so the word's byte order depends on the CPU.
      packed[i] = littleEndian ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0
                               : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
    }
    tables[name] = { rgb: rgb, packed: packed };
    return tables[name];
  }

  // Colormap name -> a copy of its 256 RGB triples (Uint8Array(768)).
  function lut(name) {
    return new Uint8Array(table(name).rgb);
  }

  // Fills the canvas (its own width x height) with the map's opaque heat colours.
  // opts: {cmap: "jet" | "viridis" | "RdBu_r", mode: "minmax" | "signed", scale}.
  function paint(canvas, map, opts) {
    opts = opts || {};
    var width = canvas.width, height = canvas.height;
    if (!width || !height) return;
    var colours = table(opts.cmap || "jet").packed;
    var rows = alongRows(normalize(map, opts.mode, opts.scale), map.h, map.w, width);
    var t = taps(map.h, height);
    var ctx = canvas.getContext("2d");
    var image = ctx.createImageData(width, height);
    var pixels = new Uint32Array(image.data.buffer);
    var y, x, a, b, fy, gy, o, v, k;
    for (y = 0; y < height; y++) {
      a = t.i0[y] * width;
      b = t.i1[y] * width;
      fy = t.f[y];
      gy = 1 - fy;
      o = y * width;
      for (x = 0; x < width; x++) {
        v = rows[a + x] * gy + rows[b + x] * fy;
        v = v > 0 ? (v < 1 ? v : 1) : 0;  // clip to [0, 1]; NaN -> 0
        k = Math.floor(v * 256);
        pixels[o + x] = colours[k < 255 ? k : 255];
      }
    }
    ctx.putImageData(image, 0, 0);
  }

  // ---- 5. the CAM box ------------------------------------------------------------------------------------------

  // Map -> {x0, y0, x1, y1, area, mass} in fractions of the grid x grid network input, as overlay.cam_box.
  function box(map, threshold, grid) {
    if (threshold === undefined) threshold = 0.2;
    if (grid === undefined) grid = 224;
    if (!(threshold >= 0 && threshold <= 1)) throw new Error("threshold must be in [0, 1]");
    var n = grid * grid, up = upsample(map, grid, grid), i, lo = Infinity, top = -Infinity;
    for (i = 0; i < n; i++) if (up[i] < lo) lo = up[i];
    for (i = 0; i < n; i++) {
      up[i] = up[i] - lo;
      if (up[i] > top) top = up[i];
    }
    if (!(top > 0)) return { x0: 0, y0: 0, x1: 1, y1: 1, area: 1, mass: 1 };  // a flat map points nowhere
    var cut = threshold * top;
    // 4-connected regions by flood fill from each unvisited pixel in raster order: the same regions, in the same
    // order, as scipy.ndimage.label, so "the first of equal sizes" means the same region on both sides.
    var seen = new Uint8Array(n), stack = new Int32Array(n);
    var best = 0, bx0 = 0, by0 = 0, bx1 = 0, by1 = 0;
    var start, size, sp, p, px, py, rx0, ry0, rx1, ry1;
    for (start = 0; start < n; start++) {
      if (seen[start] || !(up[start] >= cut)) continue;
      seen[start] = 1;
      stack[0] = start;
      sp = 1;
      size = 0;
      rx0 = ry0 = grid;
      rx1 = ry1 = -1;
      while (sp > 0) {
        p = stack[--sp];
        size++;
        py = (p / grid) | 0;
        px = p - py * grid;
        if (px < rx0) rx0 = px;
        if (px > rx1) rx1 = px;
        if (py < ry0) ry0 = py;
        if (py > ry1) ry1 = py;
        if (px > 0 && !seen[p - 1] && up[p - 1] >= cut) { seen[p - 1] = 1; stack[sp++] = p - 1; }
        if (px < grid - 1 && !seen[p + 1] && up[p + 1] >= cut) { seen[p + 1] = 1; stack[sp++] = p + 1; }
        if (py > 0 && !seen[p - grid] && up[p - grid] >= cut) { seen[p - grid] = 1; stack[sp++] = p - grid; }
        if (py < grid - 1 && !seen[p + grid] && up[p + grid] >= cut) { seen[p + grid] = 1; stack[sp++] = p + grid; }
      }
      if (size > best) {  // strictly larger: ties keep the earlier region
        best = size;
        bx0 = rx0; by0 = ry0; bx1 = rx1 + 1; by1 = ry1 + 1;
      }
    }
    var inside = 0, total = 0, x, y;
    for (i = 0; i < n; i++) total += up[i];
    for (y = by0; y < by1; y++) for (x = bx0; x < bx1; x++) inside += up[y * grid + x];
    return {
      x0: bx0 / grid, y0: by0 / grid, x1: bx1 / grid, y1: by1 / grid,
      area: (by1 - by0) * (bx1 - bx0) / (grid * grid), mass: inside / total
    };
  }

  window.CamMaps = {
    decode: decode,
    decodeSync: decodeSync,
    normalize: normalize,
    upsample: upsample,
    paint: paint,
    box: box,
    lut: lut
  };
})();
