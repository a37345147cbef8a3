// Ground truth over the photo (templates/photo_truth.html): the head box, the pet outline and the map's peak,
// drawn from #truth-data exactly as generator/evaluate/truth.py computed them (fractions of the photo; the peak
// in pixels of the photo, drawn at the pixel's centre). An SVG in the photo's stack, shown by a toggle.
(function () {
  "use strict";
  var node = document.getElementById("truth-data");
  var stack = document.querySelector("#main-view .stack");
  var toggle = document.getElementById("truth-toggle");
  if (!node || !stack || !toggle) return;
  var d = JSON.parse(node.textContent);
  var NS = "http://www.w3.org/2000/svg";
  var svg = document.createElementNS(NS, "svg");
  svg.setAttribute("id", "truth-overlay");
  svg.setAttribute("class", "truth-overlay");
  svg.setAttribute("viewBox", "0 0 1 1");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  function add(tag, attrs) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    svg.appendChild(e);
    return e;
  }
  if (d.outline && d.outline.length > 2) {
    add("polygon", { "class": "pet", points: d.outline.map(function (p) { return p[0] + "," + p[1]; }).join(" ") });
  }
  var head = d.boxes && d.boxes.head;
  if (head) add("rect", { "class": "head", x: head[0], y: head[1], width: head[2] - head[0], height: head[3] - head[1] });
  if (d.peak && d.w && d.h) {
    var x = (d.peak[0] + 0.5) / d.w, y = (d.peak[1] + 0.5) / d.h, r = 0.025;
    add("path", { "class": "peak", d: "M" + (x - r) + "," + y + "H" + (x + r) + "M" + x + "," + (y - r) + "V" + (y + r),
                  "data-x": x, "data-y": y });
  }
  stack.appendChild(svg);
  function show() { svg.style.display = toggle.checked ? "" : "none"; }
  toggle.addEventListener("change", show);
  show();
})();
