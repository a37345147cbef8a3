// Progressive enhancement only: every page works without this file.
// No network: the gallery's data comes from a script file beside it (sets/<set>/photos.js), no fetch,
// so this works the same from file:// and from a web server. Names only ever reach the DOM through textContent
// and attribute setters, never through innerHTML.
(function () {
  "use strict";

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

  // ---- Keyboard navigation on photo pages: links carry data-key. ---------------------------------------------
  var KEYS = { ArrowLeft: 1, ArrowRight: 1, Escape: 1 };
  document.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.defaultPrevented) return;
    if (!Object.prototype.hasOwnProperty.call(KEYS, ev.key)) return;
    var t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable)) {
      // Escape leaves a control (e.g. the opacity slider) instead of the page: press it again to go back.
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

  // ---- Photo page: CAM opacity slider and class switch. ------------------------------------------------------
  var camForm = document.getElementById("cam-controls");
  var views = document.getElementById("views");
  if (camForm && views) {
    var slider = document.getElementById("cam-opacity");
    var shown = document.getElementById("cam-opacity-value");
    var setOpacity = function (v) {
      v = Math.max(0, Math.min(100, Number(v)));
      if (isNaN(v)) v = 50;
      slider.value = String(v);
      shown.textContent = v + "%";
      views.style.setProperty("--cam-opacity", String(v / 100));
    };
    var showClass = function (c) {
      var figs = views.querySelectorAll(".view");
      var any = false;
      for (var i = 0; i < figs.length; i++) if (figs[i].getAttribute("data-class") === c) any = true;
      if (!any) c = "";
      for (var j = 0; j < figs.length; j++) figs[j].hidden = c !== "" && figs[j].getAttribute("data-class") !== c;
      views.classList.toggle("single", c !== "");
      var radios = camForm.querySelectorAll('input[name="cam-class"]');
      for (var k = 0; k < radios.length; k++) radios[k].checked = radios[k].value === c;
    };
    var saved = load("localStorage", "cam-opacity");
    if (typeof saved === "number") setOpacity(saved);
    slider.addEventListener("input", function () {
      setOpacity(slider.value);
      save("localStorage", "cam-opacity", Number(slider.value));
    });
    camForm.addEventListener("change", function (ev) {
      if (ev.target && ev.target.name === "cam-class") showClass(ev.target.value);
    });
    camForm.addEventListener("submit", function (ev) { ev.preventDefault(); });
    camForm.hidden = false;
  }

  // ---- Gallery: filter by tag, label and prediction; sort; across every page of the set. -------------------
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
  var FIELDS = ["tag", "label", "pred"];
  var SORTS = { "": 1, "conf-desc": 1, "conf-asc": 1, name: 1 };

  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"; }
  function fmt(n) { return Number(n).toLocaleString("en-US"); }

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
  function isDefault(st) { return !st.tag && !st.label && !st.pred && !st.sort; }

  function matches(p, st) {
    if (st.tag && p.tag !== st.tag) return false;
    if (st.label === "-" ? p.label : (st.label && p.label !== st.label)) return false;
    if (st.pred && p.pred !== st.pred) return false;
    return true;
  }
  var byName = function (a, b) {
    return a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" }) || (a.i - b.i);
  };
  var conf = function (p) { return typeof p.conf === "number" ? p.conf : -1; };
  var SORTERS = {
    "conf-desc": function (a, b) { return (conf(b) - conf(a)) || (a.i - b.i); },
    "conf-asc": function (a, b) { return (conf(a) - conf(b)) || (a.i - b.i); },
    name: byName
  };
  for (var n = 0; n < photos.length; n++) photos[n].i = n;

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
    var img = el("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = p.name + ": predicted " + p.pred + " (" + pct(p.conf) + ")" + (p.label ? ", labeled " + p.label : "") +
      "; CAM of the predicted class overlaid";
    if (p.thumb) img.src = root + p.thumb;
    a.appendChild(img);
    fig.appendChild(a);
    var cap = el("figcaption");
    var mark = el("span", "mark", p.tag === "correct" ? "✓" : (p.tag === "wrong" ? "✗" : ""));
    mark.setAttribute("aria-hidden", "true");
    cap.appendChild(mark);
    cap.appendChild(document.createTextNode(" "));
    cap.appendChild(el("b", null, p.pred));
    cap.appendChild(document.createTextNode(" " + pct(p.conf) + " "));
    if (p.label) { cap.appendChild(el("span", "label", "label " + p.label)); }
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
      count.textContent = fmt(photos.length) + " photos" + (pages > 1 ? " · page " + pageNo + " of " + pages +
        " (filters and sorting cover every page)" : "");
    } else {
      var list = photos.filter(function (p) { return matches(p, st); });
      if (SORTERS[st.sort]) list.sort(SORTERS[st.sort]);
      replaceChildren(gallery, list.map(thumb));
      filtered = true;
      shown = list.length;
      count.textContent = "Showing " + fmt(list.length) + " of " + fmt(photos.length) + " photos" +
        (pages > 1 ? ", from all " + pages + " pages" : "");
    }
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

  form.addEventListener("change", function () { apply(readState(), false); });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); });
  form.addEventListener("reset", function (ev) {
    ev.preventDefault();
    writeState(null);
    apply(readState(), false);
  });

  // Coming back from a photo page (Escape) restores the filters of this set and scrolls to the photo.
  var restored = load("sessionStorage", stateKey);
  writeState(restored);
  form.hidden = false;
  apply(readState(), !!restored);
})();
