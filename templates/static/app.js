// Progressive enhancement: every page works without this file; the maps need it (CamMaps, maps.js).
// No network: the data comes from script files beside the pages (sets/<set>/photos.js) or from JSON script
// elements in the page, so this works the same from file:// and from a web server. Names only ever reach the DOM
// through textContent and attribute setters, never through innerHTML.
(function () {
  "use strict";

  var Maps = window.CamMaps;
  var LANG = document.documentElement.lang || "en";

  function store(kind) {
    // sessionStorage/localStorage can throw (disabled storage, some file:// setups): treat as absent.
    try { var s = window[kind]; s.getItem("x"); return s; } catch (e) { return null; }
  }
  function load(kind, key) {
    var s = store(kind);
    if (!s) return null;
    try { return JSON.parse(s.getItem(key) || "null"); } catch (e) { return null; }
  }
  function save(kind, key, value) {
    var s = store(kind);
    if (!s) return;
    try { if (value === null) s.removeItem(key); else s.setItem(key, JSON.stringify(value)); } catch (e) { /* full */ }
  }
  function json(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }
  // "%(name)s" placeholders, as in the Python catalogs.
  function fill(template, values) {
    return String(template).replace(/%\((\w+)\)s/g, function (_m, k) { return values[k]; });
  }
  var pctFormat = new Intl.NumberFormat(LANG, { style: "percent", maximumFractionDigits: 1, minimumFractionDigits: 1 });
  var pct0Format = new Intl.NumberFormat(LANG, { style: "percent", maximumFractionDigits: 0 });
  function pct(v) { return v === null || v === undefined ? "–" : pctFormat.format(v); }
  function fmt(n) { return Number(n).toLocaleString(LANG); }
  function byKey(maps) {
    var out = {};
    for (var i = 0; i < maps.length; i++) out[maps[i].key] = maps[i];
    return out;
  }

  // ---- Keyboard navigation on photo pages: links carry data-key. -----------------------------------------------
  var KEYS = { ArrowLeft: 1, ArrowRight: 1, Escape: 1 };
  document.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.defaultPrevented) return;
    if (!Object.prototype.hasOwnProperty.call(KEYS, ev.key)) return;
    var t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable)) {
      // Escape leaves a control (e.g. a slider) instead of the page: press it again to go back.
      if (ev.key === "Escape" && t.blur) t.blur();
      return;
    }
    var links = document.querySelectorAll("a[data-key]");
    for (var i = 0; i < links.length; i++) {
      if (links[i].getAttribute("data-key") === ev.key) {
        ev.preventDefault();
        window.location.href = links[i].href;
        return;
      }
    }
  });
  var keys = document.querySelector(".crumbs .keys");
  if (keys) keys.hidden = false;

  if (!Maps) return;
  var cmapPref = load("localStorage", "cam-cmap");
  var defaultCmap = typeof cmapPref === "string" ? cmapPref : null;

  // ---- Canvases drawn from a JSON payload on the page (error pairs, layer strips). -------------------------------
  // <canvas class="cam" data-src="ID" data-photo="SLUG" data-key="cam/3/0">: the map `key` of the payload in the
  // script element ID: {"payload": ...} (one photo), {"photos": {slug: payload}} or {slug: payload}.
  var decoded = {};  // "ID/SLUG" -> Promise of {key: map}
  function mapsOf(src, photo) {
    var id = src + "/" + (photo || "");
    if (!decoded[id]) {
      var data = json(src) || {};
      var payload = data.payload || (data.photos ? data.photos[photo] : data[photo]);
      decoded[id] = payload && payload.v ? Maps.decode(payload).then(byKey) : Promise.resolve({});
    }
    return decoded[id];
  }
  // The layer strip: one row of small maps per method, inserted above the probes' row (see macros.html).
  function buildStrip(table) {
    var data = json(table.getAttribute("data-src")) || {};
    var methods = data.methods || [];
    var size = (table.getAttribute("data-size") || "64,64").split(",");
    var pred = table.getAttribute("data-pred");
    var taps = table.querySelectorAll("thead th").length - 1;
    var probeRow = table.querySelector("tr.probe");
    var labels = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.firstChild ? th.firstChild.textContent : "";
    });
    methods.forEach(function (m) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = m.title;
      tr.appendChild(th);
      for (var t = 0; t < taps; t++) {
        var td = document.createElement("td");
        if ((m.last_tap_only && t < taps - 1) || (m.no_last && t === taps - 1)) {  // no_last: no CAM there
          td.textContent = "–";
          td.className = "na";
        } else {
          var stack = document.createElement("span");
          stack.className = "stack";
          var img = document.createElement("img");
          img.src = table.getAttribute("data-thumb");
          img.alt = "";
          img.width = Number(size[0]);
          img.height = Number(size[1]);
          var c = document.createElement("canvas");
          c.className = "heat cam";
          c.width = Number(size[0]);
          c.height = Number(size[1]);
          c.hidden = true;
          c.setAttribute("role", "img");
          c.setAttribute("aria-label", fill(table.getAttribute("data-label-template"),
                                            { method: m.title, tap: labels[t + 1] }));
          c.setAttribute("data-src", table.getAttribute("data-src"));
          c.setAttribute("data-photo", table.getAttribute("data-photo"));
          c.setAttribute("data-key", m.name + "/" + t + (m.per_class ? "/" + pred : ""));
          stack.appendChild(img);
          stack.appendChild(c);
          td.appendChild(stack);
        }
        tr.appendChild(td);
      }
      probeRow.parentNode.insertBefore(tr, probeRow);
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.strip[data-src]"), buildStrip);
  function paintStatic(cmap) {
    var canvases = document.querySelectorAll("canvas.cam[data-src]");
    var jobs = [];
    Array.prototype.forEach.call(canvases, function (c) {
      jobs.push(mapsOf(c.getAttribute("data-src"), c.getAttribute("data-photo")).then(function (maps) {
        var m = maps[c.getAttribute("data-key")];
        if (!m) return;
        Maps.paint(c, m, { cmap: cmap, mode: "minmax" });
        c.hidden = false;
      }));
    });
    return Promise.all(jobs);
  }

  // ---- Photo page: method, class or evidence view, live CAM box, opacity, colours. --------------------------------
  var camForm = document.getElementById("cam-controls");
  var photoData = json("photo-data");
  if (camForm && photoData) {
    var heat = document.getElementById("heat");
    var boxEl = document.getElementById("cam-box");
    var facts = document.getElementById("box-facts");
    var caption = document.getElementById("view-caption");
    var threshold = document.getElementById("cam-threshold");
    var thresholdOut = document.getElementById("cam-threshold-value");
    var opacity = document.getElementById("cam-opacity");
    var opacityOut = document.getElementById("cam-opacity-value");
    var cmapSelect = document.getElementById("cam-cmap");
    var viewChoice = document.getElementById("view-choice");
    var main = document.getElementById("main-view");
    var last = photoData.taps.length - 1;
    var methods = {};
    photoData.methods.forEach(function (m) { methods[m.name] = m; });
    var captionTexts = {};
    Array.prototype.forEach.call(camForm.querySelectorAll("input[name=view], input[name=method]"), function (r) {
      captionTexts[r.name + ":" + r.value] = r.parentNode.textContent.replace(/\s+/g, " ").trim();
    });
    if (defaultCmap && cmapSelect.querySelector('option[value="' + defaultCmap + '"]')) cmapSelect.value = defaultCmap;

    var state = function () {
      var method = camForm.querySelector("input[name=method]:checked").value;
      var view = camForm.querySelector("input[name=view]:checked").value;
      return { method: method, view: view, cmap: cmapSelect.value, threshold: Number(threshold.value) / 100 };
    };
    var current = null;  // the map object on the main canvas
    var mapsPromise = Maps.decode(photoData.payload).then(byKey);

    var mainMap = function (maps, st) {
      var m = methods[st.method];
      if (!m.per_class) return maps[st.method + "/" + last];
      if (st.view !== "signed") return maps[st.method + "/" + last + "/" + st.view];
      var a = maps[st.method + "/" + last + "/" + photoData.pred];
      var other = photoData.other !== undefined ? photoData.other : (photoData.pred === 0 ? 1 : 0);  // the runner-up
      var b = maps[st.method + "/" + last + "/" + other];
      var values = new Float64Array(a.values.length), lo = Infinity, hi = -Infinity;
      for (var i = 0; i < values.length; i++) {
        values[i] = a.values[i] - b.values[i];
        if (values[i] < lo) lo = values[i];
        if (values[i] > hi) hi = values[i];
      }
      return { key: "signed", h: a.h, w: a.w, lo: lo, hi: hi, values: values };
    };
    var drawBox = function () {
      if (!current || !boxEl) return;
      var st = state();
      var b = Maps.box(current, st.threshold, photoData.grid);
      boxEl.style.left = (100 * b.x0) + "%";
      boxEl.style.top = (100 * b.y0) + "%";
      boxEl.style.width = (100 * (b.x1 - b.x0)) + "%";
      boxEl.style.height = (100 * (b.y1 - b.y0)) + "%";
      boxEl.setAttribute("data-box", [b.x0, b.y0, b.x1, b.y1].join(","));
      thresholdOut.textContent = pct0Format.format(st.threshold);
      facts.textContent = fill(facts.getAttribute("data-template"),
                               { t: pct0Format.format(st.threshold), area: pct(b.area), mass: pct(b.mass) });
    };
    var signedKey = document.getElementById("signed-key");
    var draw = function () {
      var st = state();
      var m = methods[st.method];
      viewChoice.hidden = !m.per_class;
      mapsPromise.then(function (maps) {
        current = mainMap(maps, st);
        if (!current) return;
        var signed = m.per_class && st.view === "signed";
        var scale = photoData.signedScale[last];
        Maps.paint(heat, current, signed ? { cmap: "RdBu_r", mode: "signed", scale: scale } :
                                           { cmap: st.cmap, mode: "minmax" });
        heat.hidden = false;
        main.setAttribute("data-view", st.method + ":" + st.view);
        caption.textContent = captionTexts["method:" + st.method] +
          (m.per_class ? " · " + captionTexts["view:" + st.view] : "");
        if (signedKey) signedKey.hidden = !signed;
        heat.setAttribute("aria-label", caption.textContent);
        drawBox();
        if (window.performance && performance.mark) performance.mark("photo-maps-drawn");
      });
    };
    var setOpacity = function (v) {
      v = Math.max(0, Math.min(100, Number(v)));
      if (isNaN(v)) v = 50;
      opacity.value = String(v);
      opacityOut.textContent = v + "%";
      document.documentElement.style.setProperty("--cam-opacity", String(v / 100));
    };
    var saved = load("localStorage", "cam-opacity");
    if (typeof saved === "number") setOpacity(saved);
    opacity.addEventListener("input", function () {
      setOpacity(opacity.value);
      save("localStorage", "cam-opacity", Number(opacity.value));
    });
    threshold.addEventListener("input", drawBox);
    camForm.addEventListener("change", function (ev) {
      if (ev.target === cmapSelect) {
        save("localStorage", "cam-cmap", cmapSelect.value);
        paintStatic(cmapSelect.value);
      }
      if (ev.target !== threshold && ev.target !== opacity) draw();
    });
    camForm.addEventListener("submit", function (ev) { ev.preventDefault(); });
    camForm.hidden = false;
    draw();
    paintStatic(cmapSelect.value);
  } else {
    paintStatic(defaultCmap || "jet");
  }

  // ---- Gallery: filter by tag, label and prediction; sort; across every page of the set; maps on thumbnails. ---
  var form = document.getElementById("filters");
  var gallery = document.getElementById("gallery");
  var photos = window.CAM_PHOTOS;  // from sets/<set>/photos.js, loaded by the gallery page
  if (!form || !gallery || !Array.isArray(photos)) return;

  var root = form.getAttribute("data-root") || "";
  var pageNo = Number(form.getAttribute("data-page")) || 1;
  var pages = Number(form.getAttribute("data-pages")) || 1;
  var stateKey = "cam-filters:" + (form.getAttribute("data-set") || "");
  var count = document.getElementById("count");
  var noMatch = document.getElementById("no-match");
  var pagers = document.querySelectorAll(".pager");
  var original = Array.prototype.slice.call(gallery.children);  // this page's server-rendered thumbnails
  var FIELDS = ["tag", "label", "pred", "loc"];
  var SORTS = { "": 1, "conf-desc": 1, "conf-asc": 1, name: 1, "head-asc": 1, "pet-asc": 1 };
  var words = json("words") || {};
  var cmap = defaultCmap || "jet";
  function word(w) { return words[w] || w; }

  var bySlug = {};
  for (var n = 0; n < photos.length; n++) {
    photos[n].i = n;
    bySlug[photos[n].slug] = photos[n];
  }
  // Thumbnail maps: the last stage's CAM of the predicted class, decoded once per photo.
  function paintThumb(fig) {
    var p = bySlug[fig.id];
    var canvas = fig.querySelector("canvas.heat");
    if (!p || !p.map || !canvas) return;
    var maps = Maps.decodeSync(p.map);
    Maps.paint(canvas, maps[0], { cmap: cmap, mode: "minmax" });
    canvas.hidden = !form.elements.maps.checked;
  }
  function paintAll() {
    var t0 = window.performance ? performance.now() : 0;
    Array.prototype.forEach.call(gallery.querySelectorAll(".thumb"), paintThumb);
    if (window.performance && performance.measure) {
      gallery.setAttribute("data-paint-ms", (performance.now() - t0).toFixed(1));
    }
  }

  function readState() {
    var st = {};
    for (var i = 0; i < FIELDS.length; i++) {
      var el = form.querySelector('input[name="' + FIELDS[i] + '"]:checked');
      st[FIELDS[i]] = el ? el.value : "";
    }
    st.sort = form.elements.sort.value;
    return st;
  }
  function writeState(st) {
    for (var i = 0; i < FIELDS.length; i++) {
      var want = (st && typeof st[FIELDS[i]] === "string") ? st[FIELDS[i]] : "";
      var radios = form.querySelectorAll('input[name="' + FIELDS[i] + '"]');
      var found = false;
      for (var j = 0; j < radios.length; j++) if (radios[j].value === want) found = true;
      if (!found) want = "";
      for (var k = 0; k < radios.length; k++) radios[k].checked = radios[k].value === want;
    }
    form.elements.sort.value = st && Object.prototype.hasOwnProperty.call(SORTS, st.sort) ? st.sort : "";
  }
  function isDefault(st) { return !st.tag && !st.label && !st.pred && !st.loc && !st.sort; }

  function matches(p, st) {
    if (st.tag && p.tag !== st.tag) return false;
    if (st.label === "-" ? p.label : (st.label && p.label !== st.label)) return false;
    if (st.pred && p.pred !== st.pred) return false;
    // ground truth (photos.js "loc": [peak off the head, off the pet, mass on the head, on the pet], 1 = off)
    if (st.loc === "off-head" && !(p.loc && p.loc[0] === 1)) return false;
    if (st.loc === "off-pet" && !(p.loc && p.loc[1] === 1)) return false;
    return true;
  }
  var byName = function (a, b) {
    return a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" }) || (a.i - b.i);
  };
  var conf = function (p) { return typeof p.conf === "number" ? p.conf : -1; };
  var SORTERS = {
    "conf-desc": function (a, b) { return (conf(b) - conf(a)) || (a.i - b.i); },
    "conf-asc": function (a, b) { return (conf(a) - conf(b)) || (a.i - b.i); },
    name: byName,
    "head-asc": function (a, b) { return (mass(a, 2) - mass(b, 2)) || (a.i - b.i); },
    "pet-asc": function (a, b) { return (mass(a, 3) - mass(b, 3)) || (a.i - b.i); }
  };
  // the share of the map on the region; photos without ground truth sort last
  function mass(p, k) { return p.loc && typeof p.loc[k] === "number" ? p.loc[k] : 2; }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // The same markup as the thumb() macro in templates/macros.html, built with DOM APIs.
  function thumb(p) {
    var fig = el("figure", "thumb " + p.tag);
    fig.id = p.slug;
    fig.setAttribute("data-tag", p.tag);
    var a = el("a");
    a.href = root + p.page;
    var stack = el("span", "stack");
    var img = el("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = fill(word("alt"), { name: p.name, pred: word(p.pred), conf: pct(p.conf) }) +
      (p.label ? fill(word("alt-label"), { label: word(p.label) }) : "");
    if (p.thumb) img.src = root + p.thumb;
    stack.appendChild(img);
    if (p.map && p.size) {
      var canvas = el("canvas", "heat");
      canvas.width = p.size[0];
      canvas.height = p.size[1];
      canvas.setAttribute("aria-hidden", "true");
      stack.appendChild(canvas);
    }
    a.appendChild(stack);
    fig.appendChild(a);
    var cap = el("figcaption");
    var mark = el("span", "mark", p.tag === "correct" ? "✓" : (p.tag === "wrong" ? "✗" : (p.tag === "neither" ? "∅" : "")));
    mark.setAttribute("aria-hidden", "true");
    cap.appendChild(mark);
    cap.appendChild(document.createTextNode(" "));
    cap.appendChild(el("b", null, word(p.pred)));
    cap.appendChild(document.createTextNode(" " + pct(p.conf) + " "));
    if (p.label) cap.appendChild(el("span", "label", fill(word("label"), { label: word(p.label) })));
    if (p.tag === "neither") cap.appendChild(el("span", "label", word("neither")));
    var fname = el("span", "fname", p.name);
    fname.title = p.name;
    cap.appendChild(fname);
    fig.appendChild(cap);
    return fig;
  }

  function replaceChildren(parent, nodes) {
    while (parent.firstChild) parent.removeChild(parent.firstChild);
    var frag = document.createDocumentFragment();
    for (var i = 0; i < nodes.length; i++) frag.appendChild(nodes[i]);
    parent.appendChild(frag);
  }

  var filtered = false;
  function apply(st, scroll) {
    var shown;
    if (isDefault(st)) {
      if (filtered) replaceChildren(gallery, original);
      filtered = false;
      shown = original.length;
      count.textContent = fill(count.getAttribute("data-photos"), { n: fmt(photos.length) }) +
        (pages > 1 ? " · " + fill(count.getAttribute("data-page"), { page: pageNo, pages: pages }) : "");
    } else {
      var list = photos.filter(function (p) { return matches(p, st); });
      if (SORTERS[st.sort]) list.sort(SORTERS[st.sort]);
      replaceChildren(gallery, list.map(thumb));
      filtered = true;
      shown = list.length;
      count.textContent = fill(count.getAttribute("data-showing"), { k: fmt(list.length), n: fmt(photos.length) }) +
        (pages > 1 ? ", " + fill(count.getAttribute("data-all-pages"), { pages: pages }) : "");
    }
    paintAll();
    count.setAttribute("data-count", String(shown));
    gallery.setAttribute("data-filtered", filtered ? "true" : "false");
    noMatch.hidden = shown > 0;
    for (var i = 0; i < pagers.length; i++) pagers[i].hidden = filtered;
    save("sessionStorage", stateKey, filtered ? st : null);
    if (scroll && location.hash.length > 1) {
      var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) target.scrollIntoView();
    }
  }

  form.addEventListener("change", function (ev) {
    if (ev.target && ev.target.name === "maps") {
      var show = form.elements.maps.checked;
      Array.prototype.forEach.call(gallery.querySelectorAll("canvas.heat"), function (c) { c.hidden = !show; });
      save("localStorage", "cam-thumb-maps", show);
      return;
    }
    apply(readState(), false);
  });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); });
  form.addEventListener("reset", function (ev) {
    ev.preventDefault();
    writeState(null);
    apply(readState(), false);
  });

  // A link such as index.html?tag=wrong opens the gallery filtered; coming back from a photo page (Escape)
  // restores the filters of this set and scrolls to the photo.
  var query = {};
  location.search.replace(/^\?/, "").split("&").forEach(function (kv) {
    var parts = kv.split("=");
    if (parts[0]) query[decodeURIComponent(parts[0])] = decodeURIComponent(parts[1] || "");
  });
  var fromQuery = query.tag || query.label || query.pred || query.loc || query.sort ? query : null;
  var restored = fromQuery || load("sessionStorage", stateKey);
  var showMaps = load("localStorage", "cam-thumb-maps");
  if (typeof showMaps === "boolean") form.elements.maps.checked = showMaps;
  writeState(restored);
  form.hidden = false;
  apply(readState(), !!restored);
})();
